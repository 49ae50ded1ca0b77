"""Produce records whose schema references another subject, with
Confluent's own Python client, through a registry that requires basic auth.

A third-party producer for e2e/registry_test.go: the Address schema is
registered under its own subject (com.acme.Address) first; the Order
schema names com.acme.Address and is registered by confluent-kafka's
AvroSerializer under <topic>-value with a schema reference to that subject
(version 1), as Confluent documents for Avro references.

Usage: python produce_avro_refs.py '{"bootstrap": ..., "registry": ...,
        "user": ..., "password": ..., "topic": ..., "n": N}'
Prints one line: the number of records acknowledged by the broker.
"""
import json
import sys

from confluent_kafka.schema_registry import Schema, SchemaReference, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from produce import produce_all

ADDRESS = {"type": "record", "name": "Address", "namespace": "com.acme", "fields": [
    {"name": "street", "type": "string"}, {"name": "zip", "type": "int"}]}
ORDER = {"type": "record", "name": "Order", "namespace": "com.acme", "fields": [
    {"name": "id", "type": "string"},
    {"name": "ship_to", "type": "com.acme.Address"},
    {"name": "bill_to", "type": ["null", "Address"], "default": None}]}


def main():
    a = json.loads(sys.argv[1])
    topic, n = a["topic"], a["n"]
    registry = SchemaRegistryClient({"url": a["registry"], "basic.auth.user.info": a["user"] + ":" + a["password"]})
    registry.register_schema("com.acme.Address", Schema(json.dumps(ADDRESS), "AVRO"))
    order = Schema(json.dumps(ORDER), "AVRO", [SchemaReference("com.acme.Address", "com.acme.Address", 1)])
    orders = AvroSerializer(registry, order)
    ctx = SerializationContext(topic, MessageField.VALUE)

    def records():
        for i in range(n):
            oid = "order-%06d" % i
            rec = {"id": oid, "ship_to": {"street": "Main St %d" % i, "zip": 10000 + i},
                   "bill_to": None if i % 2 else {"street": "Billing Rd %d" % i, "zip": 20000 + i}}
            yield oid, orders(rec, ctx)

    produce_all(a["bootstrap"], topic, records())


if __name__ == "__main__":
    main()
