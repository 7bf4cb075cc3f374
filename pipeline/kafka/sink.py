"""The ``seqstream-kafka`` sink: batch and streaming writes with Spark's Kafka sink columns.

Columns: ``value`` (required, string or binary), optional ``key`` (string or binary),
``topic`` (else the ``topic`` option), ``partition`` (int) and ``headers`` (array of
struct<key string, value binary>). Each Spark task sends with an idempotent producer and waits
for every acknowledgement; any failed delivery fails the task, so nothing is dropped silently.

Guarantee: at least once, like Spark's own Kafka sink. A retried task or a re-run micro-batch
sends its records again; consumers recognise duplicates by their content (seqstream's score
records carry the source topic, partition and offset).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow as pa
from pyspark.sql.datasource import (
    DataSourceArrowWriter,
    DataSourceStreamArrowWriter,
    WriterCommitMessage,
)
from pyspark.sql.types import BinaryType, IntegerType, StringType, StructType

from seqstream.pipeline.errors import OptionError
from seqstream.pipeline.kafka.options import SinkOptions
from seqstream.pipeline.kafka.producer import open_producer, raise_for_failures
from seqstream.pipeline.kafka.retry import retrying
from seqstream.pipeline.kafka.schema import HEADERS_TYPE

_ALLOWED = {
    "key": (StringType(), BinaryType()),
    "value": (StringType(), BinaryType()),
    "topic": (StringType(),),
    "partition": (IntegerType(),),
    "headers": (HEADERS_TYPE,),
}


@dataclass
class SentMessage(WriterCommitMessage):
    records: int


def check_sink_schema(options: SinkOptions, schema: StructType) -> None:
    """Fail at query start for a missing value column, unusable types or no topic at all."""
    fields = {f.name: f.dataType for f in schema.fields}
    if "value" not in fields:
        raise OptionError(
            f"writing to Kafka needs a 'value' column; the columns are {list(fields)}"
        )
    for name, data_type in fields.items():
        # Compared without nullability: a computed headers array is as good as a read one.
        if name in _ALLOWED and data_type.simpleString() not in {
            t.simpleString() for t in _ALLOWED[name]
        }:
            allowed = " or ".join(t.simpleString() for t in _ALLOWED[name])
            raise OptionError(f"column '{name}' must be {allowed}, not {data_type.simpleString()}")
    if options.topic is None and "topic" not in fields:
        raise OptionError("no topic: set the 'topic' option or give a 'topic' column")


def _as_bytes(value: str | bytes | None) -> bytes | None:
    return value.encode() if isinstance(value, str) else value


def send_batches(options: SinkOptions, batches: Iterator[pa.RecordBatch]) -> SentMessage:
    kafka = options.kafka
    producer = retrying(
        lambda: open_producer(
            kafka.bootstrap,
            client=kafka.client,
            options=kafka.properties,
            timeout_s=kafka.timeout_s,
            delivery_timeout_s=kafka.retry_timeout_s,
        ),
        what="a producer's connection",
        bootstrap=kafka.bootstrap,
        timeout_s=kafka.retry_timeout_s,
    )
    topics_seen: set[str] = set()
    try:
        for batch in batches:
            columns = batch.to_pydict()
            n = batch.num_rows
            values = columns["value"]
            keys = columns.get("key", [None] * n)
            topics = columns.get("topic", [None] * n)
            partitions = columns.get("partition", [None] * n)
            headers = columns.get("headers", [None] * n)
            for i in range(n):
                topic = topics[i] or options.topic
                if topic is None:
                    raise OptionError("a row has a null 'topic' and no 'topic' option is set")
                topics_seen.add(topic)
                row_headers = [(h["key"], h["value"]) for h in headers[i]] if headers[i] else None
                producer.send(
                    topic,
                    _as_bytes(values[i]),
                    key=_as_bytes(keys[i]),
                    partition=partitions[i],
                    headers=row_headers,
                )
        report = producer.flush(kafka.retry_timeout_s + kafka.timeout_s)
    finally:
        producer.close()
    raise_for_failures(report, ",".join(sorted(topics_seen)) or str(options.topic))
    return SentMessage(report.acked)


class _SendsToKafka:
    """What both writers do: check the schema on the driver, send each task's rows."""

    def __init__(self, options: SinkOptions, schema: StructType) -> None:
        check_sink_schema(options, schema)
        self.options = options

    def write(self, iterator: Iterator[pa.RecordBatch]) -> SentMessage:
        return send_batches(self.options, iterator)


class KafkaBatchWriter(_SendsToKafka, DataSourceArrowWriter):
    pass


class KafkaStreamWriter(_SendsToKafka, DataSourceStreamArrowWriter):
    def commit(self, messages: list[WriterCommitMessage | None], batchId: int) -> None:
        """Every record was acknowledged before its task ended; nothing is left to do."""

    def abort(self, messages: list[WriterCommitMessage | None], batchId: int) -> None:
        """Records already sent stay in Kafka (at-least-once); the batch is re-run on restart."""
