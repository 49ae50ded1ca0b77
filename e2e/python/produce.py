"""The producing half of the Python producers: confluent-kafka's Producer
(librdkafka), idempotent with acks=all."""

import sys

from confluent_kafka import Producer


def produce_all(bootstrap, topic, records):
    """Produce every (key, value) of records to topic, wait for the broker's
    acknowledgements and print their number on one line; exit naming the first
    errors if any record failed or was not flushed within 60s."""
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True})
    acked, failed = [0], []

    def report(err, msg):
        if err is not None:
            failed.append(str(err))
        else:
            acked[0] += 1

    for key, value in records:
        producer.produce(topic, key=key, value=value, on_delivery=report)
        producer.poll(0)
    left = producer.flush(60)
    if failed or left:
        sys.exit("produce failed: %d not flushed, errors %s" % (left, failed[:3]))
    print(acked[0])
