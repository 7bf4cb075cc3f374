"""Kafka for Spark and for plain Python: seqstream's connector, clients, admin and test broker.

This package stands on its own (it imports nothing of the rest of seqstream but its errors), so
it can be read, tested and reused as a Kafka connector:

- ``datasource``: the ``seqstream-kafka`` Spark data source (Spark's Kafka connector contract),
  with its readers in ``source`` (their plans by ``planner`` and ``ranges``), writers in ``sink``,
  options in ``options``, columns in ``schema``;
- ``connector``: pick Spark's JVM ``kafka`` format or ``seqstream-kafka``;
- ``offsets``: one partition-range type, Spark's offset constants and offset JSON;
- ``clients``: the client (confluent-kafka or kafka-python) and what every client shares;
  ``producer`` produces with delivery accounting, ``reader`` reads exact offset ranges,
  ``properties`` translates Kafka property names for kafka-python;
- ``admin``: topics and true offsets (working around brokers whose answers are off);
- ``transactions``: exactly-once output, a batch's records and source offsets in one transaction;
- ``broker``: the embedded Kafka-compatible broker for demos and tests, its node's files in
  ``broker_config``, its process in ``broker_process``.
"""

from seqstream.pipeline.kafka.admin import TopicAdmin, TopicInfo
from seqstream.pipeline.kafka.broker import EmbeddedBroker
from seqstream.pipeline.kafka.connector import kafka_format, kafka_options
from seqstream.pipeline.kafka.datasource import SHORT_NAME, KafkaDataSource
from seqstream.pipeline.kafka.offsets import (
    EARLIEST,
    LATEST,
    PartitionRange,
    TopicPartition,
    assign_json,
    offsets_json,
)
from seqstream.pipeline.kafka.producer import RecordProducer, open_producer, raise_for_failures
from seqstream.pipeline.kafka.reader import Record, read_range

__all__ = [
    "EARLIEST",
    "LATEST",
    "SHORT_NAME",
    "EmbeddedBroker",
    "KafkaDataSource",
    "PartitionRange",
    "Record",
    "RecordProducer",
    "TopicAdmin",
    "TopicInfo",
    "TopicPartition",
    "assign_json",
    "kafka_format",
    "kafka_options",
    "offsets_json",
    "open_producer",
    "raise_for_failures",
    "read_range",
]
