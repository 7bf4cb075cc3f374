"""Writing one micro-batch of the streaming job (``foreachBatch``): scores and dead letters to
Parquet and/or Kafka. The batch's counts come from ``pipeline.metrics`` (observed metrics).

Parquet is exactly-once: each batch's rows are written with dynamic partition overwrite under
``batch_id=<id>``, so a batch re-run after a crash replaces its own output and nothing else.
Kafka is at-least-once; a re-run batch sends its records again, recognisable by
(topic, partition, offset) of the source event.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from seqstream.pipeline.config import StreamSettings
from seqstream.pipeline.errors import SeqstreamError
from seqstream.pipeline.kafka.schema import HEADERS_TYPE
from seqstream.pipeline.rows import DEAD_LETTER_COLUMNS, SCORE_COLUMNS

# Said at the start of a job without a dead-letter output, and by the backfill's --dry-run.
NO_DEAD_LETTER_OUTPUT = (
    "no dead-letter output ({section}.dead_letter_path / {section}.dead_letter_topic): events "
    "that cannot be scored (malformed, wrong types, missing key) are only counted "
    "(dead_lettered), not written anywhere"
)


def on_local_disk(path: str | Path | None) -> bool:
    """True for a plain path or a ``file:`` URI; False for other file systems (``s3a://``...)."""
    text = str(path)
    return text.startswith("file:") or not re.match(r"[A-Za-z][A-Za-z0-9+.-]*://", text)


def check_folder(path: str | Path, name: str) -> None:
    """Fail before Spark starts when ``path`` cannot be (or become) a folder this process writes
    to, naming the setting; Spark would only find out after reading data. Paths on other file
    systems (``s3a://``, ``hdfs://``...) are left to Spark."""
    text = str(path)
    if not on_local_disk(text):
        return
    folder = Path(text.removeprefix("file://")).absolute()
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if existing == folder and not folder.is_dir():
        raise SeqstreamError(f"{name} {folder} exists and is not a folder")
    if not existing.is_dir():
        raise SeqstreamError(
            f"{name} {folder} cannot be created: {existing} is a file, not a folder"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise SeqstreamError(f"{name} {folder}: {existing} is not writable by this user")


def _write_parquet(frame: DataFrame, path: str, batch_id: int, partition_by: list[str]) -> None:
    (
        frame.withColumn("batch_id", F.lit(batch_id))
        .write.mode("overwrite")
        .option("partitionOverwriteMode", "dynamic")
        .partitionBy(*partition_by, "batch_id")
        .parquet(path)
    )


def dead_letter_records(dead: DataFrame, max_bytes: int) -> DataFrame:
    """Dead letters as Kafka records: the original key, value bytes and headers, then
    ``seqstream.error.*`` headers saying where the record came from and why it is dead (UTF-8
    text, as Kafka Connect's dead-letter queue writes its ``__connect.errors.*``). A value over
    ``max_bytes`` is cut to it, so that no value can make the record too large for the broker,
    and flagged with ``seqstream.error.value.truncated`` and the whole value's sha256."""
    cut = F.coalesce(F.length("value") > max_bytes, F.lit(False))
    ours = {
        "seqstream.error.reason": F.col("reason"),
        "seqstream.error.topic": F.col("topic"),
        "seqstream.error.partition": F.col("partition"),
        "seqstream.error.offset": F.col("offset"),
        "seqstream.error.timestamp": F.unix_millis("kafka_timestamp"),  # the record's, epoch ms
        "seqstream.error.value.length": F.length("value"),  # bytes; absent for a null value
        "seqstream.error.processing.time": F.date_format(
            "processing_time", "yyyy-MM-dd'T'HH:mm:ss.SSSXXX"
        ),
        "seqstream.error.value.truncated": F.when(cut, F.lit("true")),
        "seqstream.error.value.sha256": F.when(cut, F.sha2("value", 256)),
    }
    added = F.filter(
        F.array(
            *[
                F.struct(
                    F.lit(name).alias("key"), value.cast("string").cast("binary").alias("value")
                )
                for name, value in ours.items()
            ]
        ),
        lambda header: header["value"].isNotNull(),
    )
    return dead.select(
        F.col("kafka_key").alias("key"),
        F.when(cut, F.substring("value", 1, max_bytes)).otherwise(F.col("value")).alias("value"),
        F.concat(F.coalesce("headers", F.array().cast(HEADERS_TYPE)), added).alias("headers"),
    )


class BatchWriter:
    """The ``foreachBatch`` function: picklable settings, no open resources between batches."""

    def __init__(
        self, settings: StreamSettings, kafka_format: str, kafka_options: dict[str, str]
    ) -> None:
        self.settings = settings
        self.kafka_format = kafka_format
        self.kafka_options = kafka_options

    def _to_kafka(self, records: DataFrame, topic: str) -> None:
        """``records`` (columns of Spark's Kafka sink) to ``topic``."""
        (
            records.write.format(self.kafka_format)
            .options(**self.kafka_options)
            .option("topic", topic)
            .mode("append")
            .save()
        )

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        s = self.settings
        batch = batch.withColumn("processing_time", F.current_timestamp())
        outputs = sum(
            1
            for out in (s.parquet_path, s.output_topic, s.dead_letter_path, s.dead_letter_topic)
            if out
        )
        if outputs > 1:  # each write reads the batch: compute it once (one write needs no cache)
            batch = batch.persist()
        try:
            scores = (
                batch.where(F.col("score").isNotNull())
                .withColumn("event_time", F.timestamp_millis("event_time_ms"))
                .select(*SCORE_COLUMNS)
            )
            dead = batch.where(F.col("reason").isNotNull()).select(*DEAD_LETTER_COLUMNS)
            if s.parquet_path:
                _write_parquet(
                    scores.withColumn("date", F.to_date("event_time")),
                    str(s.parquet_path),
                    batch_id,
                    ["date"],
                )
            if s.output_topic:
                scores_json = F.to_json(F.struct(*scores.columns))
                self._to_kafka(scores.select("key", scores_json.alias("value")), s.output_topic)
            if s.dead_letter_path:
                _write_parquet(dead, str(s.dead_letter_path), batch_id, [])
            if s.dead_letter_topic:
                self._to_kafka(
                    dead_letter_records(dead, s.dead_letter_max_bytes), s.dead_letter_topic
                )
        finally:
            if outputs > 1:
                batch.unpersist()
