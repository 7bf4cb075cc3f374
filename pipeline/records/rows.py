"""The shapes a row takes on its way from Kafka to a score or a dead letter.

Follow one Kafka record through the streaming job (the backfill takes the same path):

1. ``KAFKA_COLUMNS``: what the Python step reads of the Kafka source's row: the message key
   (``kafka_key``), the value bytes and the record's position (topic, partition, offset) and
   Kafka timestamp.
2. ``WINDOW_SCHEMA``: after parsing (``parsing``) and windowing (``scoring.step``): the event's key
   and event time and the length of its window, or, for a value that is not an event, the
   original bytes in ``value`` and the ``reason``. Every record gives exactly one such row.
3. ``SCORED_SCHEMA``: the same row after scoring (``scoring``): ``score``, ``prediction`` and
   ``model_version`` where the window was long enough, plus two columns only the batch metrics
   read (``scoring_s``, ``model_batch``). The window arrays themselves never leave Python.
4. ``SCORE_COLUMNS`` / ``DEAD_LETTER_COLUMNS``: what the outputs (``outputs``) write: a scored
   row as a score record, a row with a reason as a dead letter. A valid event whose window is
   still too short is counted (``not_yet_scoreable``) and written nowhere.

``PARSED_DDL`` is the shape of parsing as a Spark step of its own (event-time windows and the
backfill's key scan), between 1 and 2.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import (
    ArrayType,
    BinaryType,
    BooleanType,
    DoubleType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from seqstream.pipeline.kafka.schema import HEADERS_TYPE

KAFKA_COLUMNS = ["kafka_key", "value", "topic", "partition", "offset", "timestamp", "headers"]

PARSED_DDL = (
    "kafka_key binary, value binary, topic string, partition int, offset long, "
    "timestamp timestamp, headers array<struct<key: string, value: binary>>, key string, "
    "event_time_ms long, features array<float>, reason string, key_mismatch boolean"
)


def kafka_columns(kafka: DataFrame) -> DataFrame:
    """The Kafka source's rows as the Python step reads them (``KAFKA_COLUMNS``; the message key
    renamed ``kafka_key``, as ``key`` names the event key from here on). The source must be read
    with ``includeHeaders``: a dead letter keeps its record's headers."""
    return kafka.select(F.col("key").alias("kafka_key"), *KAFKA_COLUMNS[1:])


WINDOW_SCHEMA = StructType(
    [
        StructField("key", StringType()),
        StructField("event_time_ms", LongType()),
        StructField("topic", StringType()),
        StructField("partition", IntegerType()),
        StructField("offset", LongType()),
        StructField("kafka_timestamp", TimestampType()),
        StructField("window_length", IntegerType()),
        StructField("value", BinaryType()),
        StructField("reason", StringType()),
        # events.key_mismatch=warn: the event's JSON and Kafka keys differ (counted, not written)
        StructField("key_mismatch", BooleanType()),
        # A dead letter's Kafka key and headers, as they were (null for events, like ``value``)
        StructField("kafka_key", BinaryType()),
        StructField("headers", HEADERS_TYPE),
    ]
)
WINDOW_COLUMNS = [f.name for f in WINDOW_SCHEMA.fields]

SCORED_SCHEMA = StructType(
    [
        *WINDOW_SCHEMA.fields,
        StructField("score", DoubleType()),
        StructField("prediction", ArrayType(DoubleType())),
        StructField("model_version", StringType()),
        # For the batch metrics (``metrics``), not written out: this row's share of its Arrow
        # batch's scoring seconds, and the size of the model batch it was scored in.
        StructField("scoring_s", DoubleType()),
        StructField("model_batch", IntegerType()),
        # Streaming per-event mode: the keys held in this row's Kafka partition's window state
        # after the batch (the state holds buckets of keys, so Spark's row count is not it).
        StructField("state_keys", LongType()),
        # ... and the keys found expired there this batch (idle for stream.state_ttl_s): their
        # history starts again from nothing at their next event.
        StructField("keys_expired", LongType()),
    ]
)
SCORED_COLUMNS = [f.name for f in SCORED_SCHEMA.fields]

# Kafka headers (an array of structs per row) cost Spark's shuffle and Arrow path into and out
# of a Python stateful step far more than their bytes (bench/README.md): the streaming job's
# state step takes and gives them as JSON text instead, null for a record without any
# (``headers_as_json``, ``headers_from_json``; exact, binary values in base64). Python only
# carries them over to dead letters.
SCORED_JSON_HEADERS_SCHEMA = StructType(
    [StructField(f.name, StringType()) if f.name == "headers" else f for f in SCORED_SCHEMA.fields]
)


def headers_as_json(kafka_rows: DataFrame) -> DataFrame:
    """``kafka_rows`` with ``headers`` as JSON text, null where there are none."""
    json = F.when(F.size("headers") > 0, F.to_json("headers"))
    return kafka_rows.withColumn("headers", json)


def headers_from_json(scored: DataFrame) -> DataFrame:
    """``scored`` (``SCORED_JSON_HEADERS_SCHEMA``) in ``SCORED_SCHEMA``: a dead letter's headers
    parsed back (an empty array where it had none); null for scored rows, which drop them."""
    parsed = F.coalesce(F.from_json("headers", HEADERS_TYPE), F.array().cast(HEADERS_TYPE))
    return scored.withColumn("headers", F.when(F.col("reason").isNotNull(), parsed))


SCORE_COLUMNS = [
    "key",
    "event_time",
    "topic",
    "partition",
    "offset",
    "kafka_timestamp",
    "window_length",
    "score",
    "prediction",
    "model_version",
    "processing_time",
]
DEAD_LETTER_COLUMNS = [
    "kafka_key",
    "value",
    "headers",
    "topic",
    "partition",
    "offset",
    "kafka_timestamp",
    "reason",
    "processing_time",
]
