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
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from seqstream.pipeline.config import StreamSettings
from seqstream.pipeline.errors import SeqstreamError
from seqstream.pipeline.rows import DEAD_LETTER_COLUMNS, SCORE_COLUMNS

# Said at the start of a job without a dead-letter output, and by the backfill's --dry-run.
NO_DEAD_LETTER_OUTPUT = (
    "no dead-letter output ({section}.dead_letter_path / {section}.dead_letter_topic): events "
    "that cannot be scored (malformed, wrong types, missing key) are only counted "
    "(dead_lettered), not written anywhere"
)


def check_folder(path: str | Path, name: str) -> None:
    """Fail before Spark starts when ``path`` cannot be (or become) a folder this process writes
    to, naming the setting; Spark would only find out after reading data. Paths on other file
    systems (``s3a://``, ``hdfs://``...) are left to Spark."""
    text = str(path)
    if re.match(r"[A-Za-z][A-Za-z0-9+.-]*://", text) and not text.startswith("file://"):
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


def dead_letter_envelope(dead: DataFrame, max_bytes: int) -> DataFrame:
    """Dead letters as their Kafka JSON carries them: the original value (base64 in the JSON, as
    Spark writes binary) cut to ``max_bytes``, so that no value can make the record too large for
    the broker, with ``value_length`` always and, when cut, ``truncated`` and the whole value's
    ``value_sha256``."""
    length = F.length("value")
    cut = F.coalesce(length > max_bytes, F.lit(False))
    return dead.select(
        F.when(cut, F.substring("value", 1, max_bytes)).otherwise(F.col("value")).alias("value"),
        length.alias("value_length"),
        cut.alias("truncated"),
        F.when(cut, F.sha2("value", 256)).alias("value_sha256"),
        *[c for c in dead.columns if c != "value"],
    )


class BatchWriter:
    """The ``foreachBatch`` function: picklable settings, no open resources between batches."""

    def __init__(
        self, settings: StreamSettings, kafka_format: str, kafka_options: dict[str, str]
    ) -> None:
        self.settings = settings
        self.kafka_format = kafka_format
        self.kafka_options = kafka_options

    def _to_kafka(self, frame: DataFrame, topic: str, key: Any) -> None:
        (
            frame.select(key.alias("key"), F.to_json(F.struct(*frame.columns)).alias("value"))
            .write.format(self.kafka_format)
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
                self._to_kafka(scores, s.output_topic, F.col("key"))
            if s.dead_letter_path:
                _write_parquet(dead, str(s.dead_letter_path), batch_id, [])
            if s.dead_letter_topic:
                self._to_kafka(
                    dead_letter_envelope(dead, s.dead_letter_max_bytes),
                    s.dead_letter_topic,
                    F.lit(None).cast("string"),
                )
        finally:
            if outputs > 1:
                batch.unpersist()
