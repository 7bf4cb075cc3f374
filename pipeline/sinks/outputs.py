"""Writing one micro-batch of the streaming job (``foreachBatch``): scores and dead letters to
Parquet and/or Kafka. The batch's counts come from ``pipeline.metrics`` (observed metrics).

Parquet is exactly-once: each batch's rows are written with dynamic partition overwrite under
``batch_id=<id>``, so a batch re-run after a crash replaces its own output and nothing else.
Kafka is at-least-once by default (a re-run batch sends its records again, recognisable by
(topic, partition, offset) of the source event), or exactly-once with ``kafka_delivery``: the
batch's records are one Kafka transaction (``kafka.transactions``), sent from the driver.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from seqstream.pipeline.config import Settings, StreamSettings
from seqstream.pipeline.errors import SeqstreamError
from seqstream.pipeline.kafka.options import parse_sink_options
from seqstream.pipeline.kafka.schema import HEADERS_TYPE
from seqstream.pipeline.kafka.transactions import (
    RECORD_COLUMNS,
    SOURCE_COLUMNS,
    TransactionalSender,
)
from seqstream.pipeline.records.rows import DEAD_LETTER_COLUMNS, SCORE_COLUMNS

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


# Written into each Parquet output folder by the job that owns it (Spark's readers skip files
# whose names start with "_"): the stream and the backfill both number their batch_id
# partitions from 0, so either writing into the other's folder would replace its rows.
OUTPUT_MARKER = "_seqstream.json"


def _batch_partitions(folder: Path) -> bool:
    return any(folder.glob("batch_id=*")) or any(folder.glob("*=*/batch_id=*"))


def check_owner(
    path: str | Path | None, name: str, owner: dict[str, str], *, adopt: bool = False
) -> None:
    """Refuse a Parquet output folder that another job owns: one whose marker names another
    job (or, for the stream, another checkpoint), or one holding batch_id partitions without a
    marker (written before markers, by a job this cannot tell) unless ``adopt`` says this job
    made them (a stream resuming its own checkpoint). Local folders only."""
    if path is None or not on_local_disk(path):
        return
    folder = Path(str(path).removeprefix("file://")).absolute()
    marker = folder / OUTPUT_MARKER
    if marker.is_file():
        found = json.loads(marker.read_text())
        if found != owner:
            whose = ", ".join(f"{k} {v}" for k, v in found.items())
            raise SeqstreamError(
                f"{name} {folder} holds the output of another job ({whose}; {OUTPUT_MARKER}): "
                "give this one its own folder, both number their batch_id partitions from 0 "
                "and would replace each other's rows"
            )
    elif folder.is_dir() and _batch_partitions(folder) and not adopt:
        raise SeqstreamError(
            f"{name} {folder} holds batch_id partitions of another job (a streaming job's or a "
            "backfill's output, written before they marked their folders): give this one its own "
            "folder, both number their batch_id partitions from 0 and would replace each "
            "other's rows"
        )


def claim_folder(
    path: str | Path | None, name: str, owner: dict[str, str], *, adopt: bool = False
) -> None:
    """``check_owner``, then mark the folder as this job's (``OUTPUT_MARKER``)."""
    check_owner(path, name, owner, adopt=adopt)
    if path is None or not on_local_disk(path):
        return
    folder = Path(str(path).removeprefix("file://")).absolute()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / OUTPUT_MARKER).write_text(json.dumps(owner) + "\n")


def check_delivery(settings: Settings, section: str) -> None:
    """Exactly-once Kafka output sends with confluent-kafka's transactional producer."""
    if settings.stream.kafka_delivery == "exactly-once" and settings.kafka.client == "kafka-python":
        raise SeqstreamError(
            f"stream.kafka_delivery exactly-once ({section}'s Kafka output) sends with "
            "confluent-kafka's transactional producer: set kafka.client to confluent or auto"
        )


def _write_parquet(
    frame: DataFrame, path: str, batch_id: int, partitions: dict[str, str] | None = None
) -> None:
    """``frame`` under ``batch_id=<id>``, below the ``partitions`` (name: SQL expression)."""
    added = {**(partitions or {}), "batch_id": str(int(batch_id))}
    (
        frame.selectExpr("*", *(f"{sql} AS {name}" for name, sql in added.items()))
        .write.mode("overwrite")
        .option("partitionOverwriteMode", "dynamic")
        .partitionBy(*added)
        .parquet(path)
    )


def _sources() -> list[Column]:
    """The source event's position beside a record (what an exactly-once batch commits)."""
    return [F.col(c.removeprefix("source_")).alias(c) for c in SOURCE_COLUMNS]


def dead_letter_records(dead: DataFrame, max_bytes: int, *, sources: bool = False) -> DataFrame:
    """Dead letters as Kafka records: the original key, value bytes and headers, then
    ``seqstream.error.*`` headers saying where the record came from and why it is dead (UTF-8
    text, as Kafka Connect's dead-letter queue writes its ``__connect.errors.*``). A value over
    ``max_bytes`` is cut to it, so that no value can make the record too large for the broker,
    and flagged with ``seqstream.error.value.truncated`` and the whole value's sha256.
    ``sources`` adds the dead event's position (``SOURCE_COLUMNS``)."""
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
        *(_sources() if sources else []),
    )


# Spark's local property holding the running query's id (kept in its checkpoint).
QUERY_ID_PROPERTY = "sql.streaming.queryId"


class BatchWriter:
    """The ``foreachBatch`` function: picklable settings; the only resource it keeps between
    batches is the exactly-once producer, whose transactional id fences earlier runs.
    ``transactional_id``: for exactly-once, else the prefix and the streaming query's id.
    ``transaction_options``: seqstream-kafka's options for the exactly-once producer (default:
    ``kafka_options``, when those are seqstream-kafka's too). It writes what the batch scored:
    which model scores a batch is the stream driver's choice (``ModelVersions.around``)."""

    def __init__(
        self,
        settings: StreamSettings,
        kafka_format: str,
        kafka_options: dict[str, str],
        *,
        transactional_id_prefix: str = "seqstream",
        transactional_id: str | None = None,
        transaction_options: dict[str, str] | None = None,
    ) -> None:
        self.settings = settings
        self.kafka_format = kafka_format
        self.kafka_options = kafka_options
        self.transaction_options = transaction_options or kafka_options
        self.transactional_id_prefix = transactional_id_prefix
        self.transactional_id = transactional_id
        self._sender: TransactionalSender | None = None

    def _transactions(self, batch: DataFrame) -> TransactionalSender:
        if self._sender is None:
            transactional_id = self.transactional_id
            if transactional_id is None:
                query = batch.sparkSession.sparkContext.getLocalProperty(QUERY_ID_PROPERTY)
                if not query:
                    raise SeqstreamError(
                        "exactly-once Kafka output needs a transactional id: none was given "
                        "and this batch is not part of a streaming query"
                    )
                transactional_id = f"{self.transactional_id_prefix}-{query}"
            client = parse_sink_options(self.transaction_options).kafka
            self._sender = TransactionalSender(client, transactional_id)
        return self._sender

    def _to_kafka_once(
        self, scores: DataFrame, dead: Callable[[], DataFrame], batch_id: int
    ) -> None:
        """Scores and dead letters to Kafka in one transaction (``kafka.transactions``)."""
        s = self.settings
        parts = []
        if s.output_topic:
            value = F.to_json(F.struct(*scores.columns)).cast("binary")
            parts.append(
                scores.select(
                    F.lit(s.output_topic).alias("topic"),
                    F.col("key").cast("binary").alias("key"),
                    value.alias("value"),
                    F.lit(None).cast(HEADERS_TYPE).alias("headers"),
                    *_sources(),
                )
            )
        if s.dead_letter_topic:
            records = dead_letter_records(dead(), s.dead_letter_max_bytes, sources=True)
            parts.append(
                records.select(
                    F.lit(s.dead_letter_topic).alias("topic"),
                    *RECORD_COLUMNS[1:],
                    *SOURCE_COLUMNS,
                )
            )
        if parts:
            union = parts[0] if len(parts) == 1 else parts[0].unionByName(parts[1])
            self._transactions(union).send(batch_id, union.toArrow())

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
        # One instant for the whole batch, as a literal: the same in every output. Each output
        # is one filter and one projection of the batch, in SQL text: every Column or DataFrame
        # made here costs py4j calls and an analysis on the driver, in every batch's fixed cost.
        now = f"timestamp_micros({time.time_ns() // 1000})"
        outputs = sum(
            1
            for out in (s.parquet_path, s.output_topic, s.dead_letter_path, s.dead_letter_topic)
            if out
        )
        if outputs > 1:  # each write reads the batch: compute it once (one write needs no cache)
            batch = batch.persist()
        try:
            scores = _scores(batch, now)
            if s.parquet_path:
                date = {"date": "to_date(event_time)"}
                _write_parquet(scores, str(s.parquet_path), batch_id, date)
            if s.dead_letter_path:
                _write_parquet(_dead_letters(batch, now), str(s.dead_letter_path), batch_id)
            if s.kafka_delivery == "exactly-once":
                self._to_kafka_once(scores, partial(_dead_letters, batch, now), batch_id)
            else:
                if s.output_topic:
                    scores_json = F.to_json(F.struct(*scores.columns))
                    self._to_kafka(scores.select("key", scores_json.alias("value")), s.output_topic)
                if s.dead_letter_topic:
                    self._to_kafka(
                        dead_letter_records(_dead_letters(batch, now), s.dead_letter_max_bytes),
                        s.dead_letter_topic,
                    )
        finally:
            if outputs > 1:
                batch.unpersist()


def _scores(batch: DataFrame, processing_time: str) -> DataFrame:
    """The batch's scored rows, as the outputs write them (``SCORE_COLUMNS``)."""
    made = {"event_time": "timestamp_millis(event_time_ms)", "processing_time": processing_time}
    columns = [f"{made[c]} AS {c}" if c in made else c for c in SCORE_COLUMNS]
    return batch.where("score IS NOT NULL").selectExpr(*columns)


def _dead_letters(batch: DataFrame, processing_time: str) -> DataFrame:
    """The batch's dead letters, as the outputs write them (``DEAD_LETTER_COLUMNS``)."""
    columns = [
        f"{processing_time} AS {c}" if c == "processing_time" else c for c in DEAD_LETTER_COLUMNS
    ]
    return batch.where("reason IS NOT NULL").selectExpr(*columns)
