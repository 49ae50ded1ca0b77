"""Produce the worked example's events with Confluent's own Python client.

A third-party producer for e2e/registry_test.go: confluent-kafka's Producer
(librdkafka) and AvroSerializer, which registers each writer schema in the
Schema Registry under the subject its naming strategy gives and frames the
value in the Confluent wire format. user.registered events use
TopicNameStrategy (subject <topic>-value), order.placed events
RecordNameStrategy (subject fanout.example.OrderPlaced).

Usage: python produce_avro.py '{"bootstrap": ..., "registry": ..., "topic": ...,
        "user_avsc": PATH, "order_avsc": PATH, "n": N}'
Prints one line: the number of events acknowledged by the broker.
"""
import datetime
import decimal
import json
import sys

from confluent_kafka.schema_registry import (
    SchemaRegistryClient,
    record_subject_name_strategy,
    topic_subject_name_strategy,
)
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from produce import produce_all


def main():
    a = json.loads(sys.argv[1])
    topic, n = a["topic"], a["n"]
    registry = SchemaRegistryClient({"url": a["registry"]})
    with open(a["user_avsc"]) as f:
        users = AvroSerializer(registry, f.read(), conf={"subject.name.strategy": topic_subject_name_strategy})
    with open(a["order_avsc"]) as f:
        orders = AvroSerializer(registry, f.read(), conf={"subject.name.strategy": record_subject_name_strategy})
    ctx = SerializationContext(topic, MessageField.VALUE)
    base = datetime.datetime(2026, 11, 27, 12, 0, tzinfo=datetime.timezone.utc)

    def records():
        for i in range(n):
            uid = "00000000-0000-4000-8000-%012d" % i
            user = {"id": uid, "email": "user%d@example.com" % i, "name": "User %d" % i,
                    "plan": ["FREE", "PRO", "ENTERPRISE"][i % 3],
                    "created_at": base + datetime.timedelta(milliseconds=i),
                    "referrer": None if i % 2 else "campaign-%d" % (i % 7), "metadata": {"i": str(i)}}
            yield uid, users(user, ctx)
            oid = "00000000-0000-4000-9000-%012d" % i
            order = {"id": oid, "user_id": uid, "amount": decimal.Decimal("%d.50" % i), "currency": "EUR",
                     "items": [{"sku": "sku-%d" % i, "quantity": 1 + i % 3}],
                     "placed_at": base + datetime.timedelta(seconds=i), "coupon": None, "signature": None}
            yield oid, orders(order, ctx)

    produce_all(a["bootstrap"], topic, records())


if __name__ == "__main__":
    main()
