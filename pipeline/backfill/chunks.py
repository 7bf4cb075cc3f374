"""The backfill's Spark steps: read offset ranges, score them as the streaming job does, write
them, and carry every key's state from chunk to chunk.

A key lives in one Kafka partition, so each Spark partition of the Kafka read is scored where it
was read (``mapInPandas``, no shuffle) by the shared scoring step (``scoring.step``), with its
keys' state shipped in the closure (``state.buckets``' codec, one bucket per Kafka partition).
Before the first chunk, each key's state at the range start is rebuilt: a window model's last
N - 1 events (read back until every key of the range has them, or the log begins), a carry
model's LSTM state (replayed from each partition's earliest offset).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from functools import partial
from typing import Any

import pandas as pd
from pyspark.sql import functions as F
from pyspark.sql.types import BinaryType, BooleanType, StructField, StructType

from seqstream.pipeline.backfill.plan import split_chunks
from seqstream.pipeline.backfill.progress import ChunkCounts, States
from seqstream.pipeline.bootstrap import connector_options
from seqstream.pipeline.config import Settings, StreamSettings
from seqstream.pipeline.errors import SeqstreamError
from seqstream.pipeline.kafka import (
    SHORT_NAME,
    PartitionRange,
    TopicPartition,
    assign_json,
    kafka_format,
    offsets_json,
)
from seqstream.pipeline.records.parsing import parse_events
from seqstream.pipeline.records.rows import SCORED_COLUMNS, SCORED_SCHEMA, kafka_columns
from seqstream.pipeline.scoring.step import ScoringStep
from seqstream.pipeline.sinks.outputs import BatchWriter
from seqstream.pipeline.state.buckets import (
    Carried,
    decode_bucket,
    encode_bucket,
    merge_buckets,
    state_lookup,
)

log = logging.getLogger("seqstream.backfill")

_SCORES_SCHEMA = StructType(
    [
        *SCORED_SCHEMA.fields,
        StructField("is_state", BooleanType()),
        StructField("state", BinaryType()),  # a state row's encoded bucket of its partition
    ]
)


def partition_scores(
    batches: Iterator[pd.DataFrame],
    *,
    step: ScoringStep,
    states: States,
    emit_from: dict[TopicPartition, int],
) -> Iterator[pd.DataFrame]:
    """One Spark partition of a chunk's Kafka read (whole topic-partitions, each in offset order,
    as the streaming job's micro-batches see them): the scored rows of the events at or after
    ``emit_from``, then per topic-partition one ``is_state`` row with the state of every key
    that had events (an encoded bucket). No shuffle: the Kafka read's partitions are the units
    of state."""
    state_of: dict[TopicPartition, Any] = {}
    updated: dict[TopicPartition, dict[str, Carried]] = {}
    last_offset: dict[TopicPartition, int] = {}
    for batch in batches:
        for (topic, partition), rows in batch.groupby(["topic", "partition"], sort=False):
            where, first = TopicPartition(str(topic), int(partition)), int(rows["offset"].min())
            if first <= last_offset.get(where, -1):
                raise SeqstreamError(
                    f"backfill read {where} out of offset order (at {first}): "
                    "each topic-partition must be one Spark partition (no minPartitions)"
                )
            last_offset[where] = int(rows["offset"].max())
            if where not in state_of:
                stored = state_lookup(states.get(where), step.state_width)
                mine = updated[where] = {}
                state_of[where] = lambda key, mine=mine, stored=stored: (
                    mine[key].state if key in mine else stored(key)
                )
            made = step.score(
                rows.rename(columns={"timestamp": "kafka_timestamp"}),
                state_of[where],
                emit_from=emit_from.get(where, 0),
            )
            updated[where].update((k, Carried(0, s)) for k, s in made.states.items())
            if len(made.rows):
                yield made.rows.assign(is_state=False, state=None)
    for where, entries in updated.items():
        if entries:
            yield _state_row(where, encode_bucket(entries))


def _state_row(where: TopicPartition, blob: bytes) -> pd.DataFrame:
    row = pd.DataFrame({"topic": [where.topic], "partition": [where.partition], "state": [blob]})
    row = row.reindex(columns=[*SCORED_COLUMNS, "state"])
    for column in SCORED_COLUMNS:
        if column not in ("topic", "partition"):
            row[column] = None  # absent, not NaN: list and string columns cannot take a float
    return row.assign(is_state=True)


class Backfill:
    """The Spark steps of one backfill run: reading, scoring, writing, carrying state."""

    def __init__(
        self, spark: Any, settings: Settings, bootstrap: str, step: ScoringStep, *, run_id: str
    ) -> None:
        """``run_id``: the plan's, naming its exactly-once Kafka transactions."""
        self.spark = spark
        self.settings = settings
        self.step = step
        self.format = kafka_format(spark, settings.kafka.connector)
        self.options = connector_options(settings, bootstrap, self.format)
        prefix = settings.kafka.transactional_id_prefix
        self.writer = BatchWriter(
            self.sink_settings(),
            self.format,
            self.options,
            transactional_id=f"{prefix}-backfill-{run_id}",
            transaction_options=connector_options(settings, bootstrap, SHORT_NAME),
        )

    def read_kafka(self, ranges: list[PartitionRange]) -> Any:
        """Exactly these offset ranges, as Spark's Kafka batch read gives them."""
        return (
            self.spark.read.format(self.format)
            .options(**self.options)
            .option("assign", assign_json(ranges))
            .option("startingOffsets", offsets_json(ranges, "start"))
            .option("endingOffsets", offsets_json(ranges, "end"))
            .option("includeHeaders", "true")  # a dead letter keeps its record's headers
            .load()
        )

    def read_parsed(self, ranges: list[PartitionRange]) -> Any:
        """Parsed events as their own Spark step (the scoring step parses inside its own)."""
        return parse_events(
            kafka_columns(self.read_kafka(ranges)),
            self.settings.events,
            self.settings.stream.max_event_bytes,
        )

    def scores(
        self,
        ranges: list[PartitionRange],
        emit_from: dict[TopicPartition, int],
        states: States,
    ) -> Any:
        """Scored rows of ``ranges`` from ``emit_from`` on, plus per topic-partition the state of
        every key that had events (``is_state`` rows)."""
        fn = partial(partition_scores, step=self.step, states=states, emit_from=emit_from)
        return kafka_columns(self.read_kafka(ranges)).mapInPandas(fn, _SCORES_SCHEMA)

    def collect_states(self, scores: Any, before: States) -> States:
        """``before``, with the state of every key that had events replaced."""
        rows = scores.where("is_state").select("topic", "partition", "state").collect()
        after = dict(before)
        for row in rows:
            where = TopicPartition(row["topic"], row["partition"])
            blob = bytes(row["state"])
            after[where] = merge_buckets(after.get(where), blob, self.step.state_width)
        return after

    def state_before(self, ranges: list[PartitionRange], lows: dict[TopicPartition, int]) -> States:
        """Every range key's state at its partition's range start."""
        need = [r for r in ranges if r.start > lows[r.topic_partition] and r.events]
        history = self.step.history
        if history is None:
            return self.replayed_state(need, lows)
        if history == 0 or not need:
            return {}
        return self.last_events_before(need, lows, history)

    def last_events_before(
        self, need: list[PartitionRange], lows: dict[TopicPartition, int], history: int
    ) -> States:
        """Each range key's last ``history`` events before its partition's start: look back
        ``history`` x keys offsets, then four times further for partitions where a key still has
        too few, until every key has them or the log begins."""
        keys = (
            self.read_parsed(need)
            .where("reason IS NULL")
            .select("topic", "partition", "key")
            .distinct()
            .toPandas()
        )
        wanted = {
            TopicPartition(str(t), int(p)): set(group["key"])
            for (t, p), group in keys.groupby(["topic", "partition"])
        }
        lookback = {
            r.topic_partition: history * max(len(wanted.get(r.topic_partition, ())), 1)
            for r in need
        }
        found: States = {}
        while need:
            reads = [
                PartitionRange(
                    r.topic,
                    r.partition,
                    max(lows[r.topic_partition], r.start - lookback[r.topic_partition]),
                    r.start,
                )
                for r in need
            ]
            read = self.collect_states(
                self.scores(reads, {r.topic_partition: r.end for r in reads}, {}), {}
            )
            pending = []
            for r, at in zip(need, reads, strict=True):
                where, mine = r.topic_partition, wanted.get(r.topic_partition, set())
                blob = read.get(where)
                entries = (
                    decode_bucket(blob, self.step.state_width, now_ms=0, ttl_ms=None).entries
                    if blob
                    else {}
                )
                entries = {k: c for k, c in entries.items() if k in mine}
                full = sum(len(c.state) == history for c in entries.values())
                if full < len(mine) and at.start > lows[where]:
                    lookback[where] *= 4
                    pending.append(r)
                    continue
                if entries:
                    found[where] = encode_bucket(entries)
                log.info(
                    "state of %s: %d keys, read back from offset %d", where, len(entries), at.start
                )
            need = pending
        return found

    def replayed_state(self, need: list[PartitionRange], lows: dict[TopicPartition, int]) -> States:
        """Every key's state at its partition's range start, rebuilt by scoring the partition
        from the earliest offset the broker holds (written nowhere), in chunks of
        ``backfill.chunk_events`` with a progress line each. A key whose first events retention
        has dropped starts from zeros at the earliest one held."""
        reads = [
            PartitionRange(r.topic, r.partition, lows[r.topic_partition], r.start)
            for r in need
            if r.start > lows[r.topic_partition]
        ]
        chunks = split_chunks(reads, self.settings.backfill.chunk_events) if reads else []
        total = sum(r.events for r in reads)
        states: States = {}
        done, started = 0, time.monotonic()
        for index, chunk in enumerate(chunks):
            if not chunk:
                continue
            emit_from = {r.topic_partition: r.end for r in chunk}
            states = self.collect_states(self.scores(chunk, emit_from, states), states)
            done += sum(r.events for r in chunk)
            log.info(
                "replay for carried state %d/%d: %d/%d events before the range (nothing "
                "written), %.0f events/s",
                index + 1,
                len(chunks),
                done,
                total,
                done / max(time.monotonic() - started, 1e-9),
            )
        return states

    def run_chunk(
        self,
        index: int,
        chunk: list[PartitionRange],
        states: States,
        event_times: tuple[int | None, int | None] = (None, None),
    ) -> tuple[ChunkCounts, States]:
        """Score and write one chunk; returns its counts and every key's state after it. With
        ``event_times`` (low, high) only events of event time in [low, high) are written (and
        dead letters, which have none)."""
        started = time.monotonic()
        scores = self.scores(chunk, {}, states).persist()
        try:
            out = scores.where(~F.col("is_state")).drop("is_state", "state")
            written = F.col("reason").isNotNull() | _inside(*event_times)
            totals = out.agg(
                F.count(F.lit(1)).alias("events"),
                F.count("reason").alias("dead"),
                F.count(F.when(written, F.col("score"))).alias("scored"),
                F.count_if(~written).alias("outside"),
            ).first()
            self.writer(out.where(written), index)
            after = self.collect_states(scores, states)
        finally:
            scores.unpersist()
        counts = ChunkCounts(
            index,
            totals["events"],
            totals["scored"],
            totals["events"] - totals["dead"] - totals["scored"] - totals["outside"],
            totals["dead"],
            round(time.monotonic() - started, 3),
            totals["outside"],
        )
        return counts, after

    def sink_settings(self) -> StreamSettings:
        b = self.settings.backfill
        return self.settings.stream.model_copy(
            update={
                "parquet_path": b.parquet_path,
                "output_topic": b.output_topic,
                "dead_letter_path": b.dead_letter_path,
                "dead_letter_topic": b.dead_letter_topic,
            }
        )


def _inside(low: int | None, high: int | None) -> Any:
    """Events of event time in [low, high) (either end open when None)."""
    inside = F.lit(True)
    if low is not None:
        inside = inside & (F.col("event_time_ms") >= low)
    if high is not None:
        inside = inside & (F.col("event_time_ms") < high)
    return inside
