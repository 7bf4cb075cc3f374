"""The backfill: re-score a bounded range of Kafka history exactly as the streaming job scored it.

    seqstream backfill --start-time 2026-11-01T00:00:00Z --end-time 2026-11-02T00:00:00Z
    spark-submit jobs/backfill.py --config seqstream.yaml --starting-offsets earliest

The plan (request, ranges, chunks, output checks) is ``backfill_plan``'s. Same parsing,
windowing and scoring (``scoring.score_partition``) and sinks as the streaming job, as batch jobs.
Windows at the range start are complete: before the first chunk, each key's last N-1 events
before the start are read (looking back until every key of the range has them, or the log
begins). The range is cut into chunks (every partition's k-th slice, read
in parallel); each key's carried events pass from chunk to chunk as the streaming state does.
A key lives in one Kafka partition, so each Spark partition of the Kafka read is windowed where
it was read (``mapInPandas``, no shuffle), with its keys' carried events shipped in the closure.

Progress lives in ``backfill.progress_dir``: the resolved plan, and per finished chunk its
counts and carried events. A re-run with the same request resumes after the last finished
chunk; a chunk that was cut short is written again and replaces its own Parquet partition
(``batch_id`` = chunk number), so nothing is duplicated there. Kafka output is at least once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, BooleanType, DoubleType, StructField, StructType

from seqstream.model.carry import CarryLayout
from seqstream.model.spec import ModelSpec
from seqstream.pipeline.backfill.plan import (
    BACKFILL_OWNER,
    DEFAULT_PROGRESS_ROOT,
    Request,
    check_sinks,
    describe_request,
    plan_backfill,
    split_chunks,
)
from seqstream.pipeline.bootstrap import connector_options, create_output_topics
from seqstream.pipeline.config import EventSchema, Settings, StreamSettings
from seqstream.pipeline.errors import SeqstreamError
from seqstream.pipeline.kafka import (
    SHORT_NAME,
    PartitionRange,
    assign_json,
    kafka_format,
    offsets_json,
)
from seqstream.pipeline.records.parsing import parse_events
from seqstream.pipeline.records.rows import SCORED_COLUMNS, SCORED_SCHEMA, kafka_columns
from seqstream.pipeline.scoring.model_versions import check_model
from seqstream.pipeline.scoring.step import ModelRef, score_partition
from seqstream.pipeline.sinks.outputs import NO_DEAD_LETTER_OUTPUT, BatchWriter, claim_folder

log = logging.getLogger("seqstream.backfill")


@dataclass(frozen=True)
class ChunkCounts:
    chunk: int
    events_in: int
    scored: int
    not_yet_scoreable: int
    dead_lettered: int
    seconds: float
    # Events read but outside the request's event-time range: not written (and not counted as
    # scored or not yet scoreable). events_in = scored + not_yet_scoreable + dead_lettered + this.
    outside_event_time: int = 0


# --- windows over a chunk ----------------------------------------------------------------------


@dataclass(frozen=True)
class PackedContexts:
    """One topic-partition's carried events, packed so a large state pickles fast: ``keys[i]``
    holds ``flat[bounds[i]:bounds[i + 1]]`` (events x features, flattened)."""

    keys: list[str]
    flat: np.ndarray
    bounds: np.ndarray


def pack_state(state: pd.DataFrame) -> dict[str, PackedContexts]:
    """Carried state (``empty_state()`` columns) by ``topic:partition``, for a chunk's tasks:
    200,000 keys pickle in 0.1 s packed, 1.5 s as arrays of their own. Float64: a carry model's
    state is (a window model's float32 events are exact in it)."""
    packed = {}
    for name, group in state.groupby(_names(state), sort=False):
        parts = [np.asarray(c, np.float64).ravel() for c in group["context"]]
        bounds = np.cumsum([0, *(len(p) for p in parts)], dtype=np.int64)
        packed[name] = PackedContexts(group["key"].tolist(), np.concatenate(parts), bounds)
    return packed


class _PartitionContexts:
    """Each key's carried events in one topic-partition: what the chunk started with, overlaid
    by what this task's batches left (``updated``, the only part sent back)."""

    def __init__(self, packed: PackedContexts | None, width: int) -> None:
        self.packed = packed
        self.index = {k: i for i, k in enumerate(packed.keys)} if packed else {}
        self.width = width
        self.updated: dict[str, np.ndarray] = {}

    def get(self, key: str) -> np.ndarray | None:
        if key in self.updated:
            return self.updated[key]
        i = self.index.get(key)
        if i is None or self.packed is None:
            return None
        return self.packed.flat[self.packed.bounds[i] : self.packed.bounds[i + 1]].reshape(
            -1, self.width
        )


def partition_windows(
    batches: Iterator[pd.DataFrame],
    *,
    carried: dict[str, PackedContexts],
    emit_from: dict[str, int],
    length: int,
    schema: EventSchema,
    max_bytes: int,
    ref: ModelRef,
    carry_state_size: int | None = None,
) -> Iterator[pd.DataFrame]:
    """One Spark partition of a chunk's Kafka read (whole topic-partitions, each in offset order,
    as the streaming job's micro-batches see them): the scored rows of the events at or after
    ``emit_from``, then the carried state of every key that had events (``is_state`` rows, the
    state flat in ``state``: a window model's last events, or a carry model's state vector when
    ``carry_state_size`` is given). No shuffle: the Kafka read's partitions are the units of
    state."""

    width = carry_state_size or len(schema.features)
    contexts: dict[tuple[str, int], _PartitionContexts] = {}
    last_offset: dict[tuple[str, int], int] = {}
    for batch in batches:
        for (topic, partition), rows in batch.groupby(["topic", "partition"], sort=False):
            where, name, first = (
                (str(topic), int(partition)),
                f"{topic}:{partition}",
                int(rows["offset"].min()),
            )
            if first <= last_offset.get(where, -1):
                raise SeqstreamError(
                    f"backfill read {topic}-{partition} out of offset order (at {first}): "
                    "each topic-partition must be one Spark partition (no minPartitions)"
                )
            last_offset[where] = int(rows["offset"].max())
            mine = contexts.setdefault(where, _PartitionContexts(carried.get(name), width))
            made = score_partition(
                rows.rename(columns={"timestamp": "kafka_timestamp"}),
                mine.get,
                carry=carry_state_size is not None,
                length=length,
                schema=schema,
                max_bytes=max_bytes,
                ref=ref,
                emit_from=emit_from.get(name, 0),
            )
            mine.updated.update(made.states)
            if len(made.rows):
                yield made.rows.assign(is_state=False, state=None)
    for (topic, partition), mine in contexts.items():
        if not mine.updated:
            continue
        state = pd.DataFrame(
            {
                "key": list(mine.updated),
                "topic": topic,
                "partition": partition,
                "state": [np.asarray(c, np.float64).ravel() for c in mine.updated.values()],
            }
        ).reindex(columns=[*SCORED_COLUMNS, "state"])
        for column in SCORED_COLUMNS:
            if column not in ("key", "topic", "partition"):
                state[column] = None  # absent, not NaN: list and string columns cannot take a float
        yield state.assign(is_state=True)


class Backfill:
    """One backfill run: the plan, the Spark steps and the progress files."""

    def __init__(
        self,
        spark: Any,
        settings: Settings,
        bootstrap: str,
        model: tuple[ModelRef, ModelSpec] | None = None,
        *,
        run_id: str = "",
    ) -> None:
        """``model``: the driver's check of the model, if made already (else made here);
        ``run_id``: the plan's, naming its exactly-once Kafka transactions."""
        self.spark = spark
        self.settings = settings
        self.ref, self.spec = model or check_model(settings)
        self.carry = self.spec.kind == "carry"
        self.length = 0 if self.carry else self.spec.window_spec.length
        self.features = len(self.spec.features)
        # A window model carries its last N-1 events per key, a carry model its state vector.
        self.state_size = CarryLayout.of(self.spec).size if self.carry else None
        self.format = kafka_format(spark, settings.kafka.connector)
        self.options = connector_options(settings, bootstrap, self.format)
        prefix = settings.kafka.transactional_id_prefix
        self.writer = BatchWriter(
            self.sink_settings(),
            self.format,
            self.options,
            transactional_id=f"{prefix}-backfill-{run_id or uuid.uuid4().hex}",
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
        """Parsed events as their own Spark step (the windows parse inside theirs)."""

        return parse_events(
            kafka_columns(self.read_kafka(ranges)),
            self.settings.events,
            self.settings.stream.max_event_bytes,
        )

    def windows(
        self, ranges: list[PartitionRange], emit_from: dict[str, int], state: pd.DataFrame
    ) -> Any:
        """Scored windows of ``ranges`` from ``emit_from`` on, plus the carried events of every key
        that had events (``is_state`` rows)."""

        schema = StructType(
            [
                *SCORED_SCHEMA.fields,
                StructField("is_state", BooleanType()),
                StructField("state", ArrayType(DoubleType())),
            ]
        )
        fn = partial(
            partition_windows,
            carried=pack_state(state),
            emit_from=emit_from,
            length=self.length,
            schema=self.settings.events,
            max_bytes=self.settings.stream.max_event_bytes,
            ref=self.ref,
            carry_state_size=self.state_size,
        )
        return kafka_columns(self.read_kafka(ranges)).mapInPandas(fn, schema)

    @staticmethod
    def carried_events(windows: Any, before: pd.DataFrame) -> pd.DataFrame:
        """``before``, with the carried events of every key that had events replaced."""
        rows = (
            windows.where("is_state")
            .selectExpr("topic", "partition", "key", "state AS context")
            .toPandas()
        )
        if not len(rows):
            return before
        merged = (
            pd.concat([before, rows], ignore_index=True) if len(before) else rows
        )  # no concat with an empty frame
        return merged.drop_duplicates(["topic", "partition", "key"], keep="last", ignore_index=True)

    def context_before(self, ranges: list[PartitionRange], lows: dict[str, int]) -> pd.DataFrame:
        """Each range key's last N-1 events before its partition's start: look back (N-1) x keys
        offsets, then four times further for partitions where a key still has too few, until
        every key has them or the log begins."""
        need = [r for r in ranges if r.start > lows[_name(r)] and r.events]
        if self.carry:
            return self.replayed_state(need, lows)
        if self.length == 1 or not need:
            return empty_state()
        keys = (
            self.read_parsed(need)
            .where("reason IS NULL")
            .select("topic", "partition", "key")
            .distinct()
            .toPandas()
        )
        wanted = {
            name: set(group["key"])
            for name, group in keys.assign(name=_names(keys)).groupby("name")
        }
        lookback = {
            _name(r): (self.length - 1) * max(len(wanted.get(_name(r), ())), 1) for r in need
        }
        found: list[pd.DataFrame] = []
        while need:
            reads = [
                PartitionRange(
                    r.topic, r.partition, max(lows[_name(r)], r.start - lookback[_name(r)]), r.start
                )
                for r in need
            ]
            carried = self.carried_events(
                self.windows(reads, {_name(r): r.end for r in reads}, empty_state()), empty_state()
            )
            carried = carried.assign(name=_names(carried))
            pending = []
            for r, read in zip(need, reads, strict=False):
                mine = carried[
                    (carried["name"] == _name(r)) & carried["key"].isin(wanted.get(_name(r), set()))
                ]
                full = sum(len(c) == (self.length - 1) * self.features for c in mine["context"])
                if full < len(wanted.get(_name(r), ())) and read.start > lows[_name(r)]:
                    lookback[_name(r)] *= 4
                    pending.append(r)
                else:
                    found.append(mine.drop(columns="name"))
                    log.info(
                        "context of %s: %d keys, read back from offset %d",
                        _name(r),
                        len(mine),
                        read.start,
                    )
            need = pending
        return pd.concat(found, ignore_index=True) if found else empty_state()

    def replayed_state(self, need: list[PartitionRange], lows: dict[str, int]) -> pd.DataFrame:
        """Carry models: every key's state at its partition's range start, rebuilt by scoring the
        partition from the earliest offset the broker holds (written nowhere), in chunks of
        ``backfill.chunk_events`` with a progress line each. A key whose first events retention
        has dropped starts from zeros at the earliest one held."""
        reads = [
            PartitionRange(r.topic, r.partition, lows[_name(r)], r.start)
            for r in need
            if r.start > lows[_name(r)]
        ]
        chunks = split_chunks(reads, self.settings.backfill.chunk_events) if reads else []
        total = sum(r.events for r in reads)
        state, done, started = empty_state(), 0, time.monotonic()
        for index, chunk in enumerate(chunks):
            if not chunk:
                continue
            state = self.carried_events(
                self.windows(chunk, {_name(r): r.end for r in chunk}, state), state
            )
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
        return state

    def run_chunk(
        self,
        index: int,
        chunk: list[PartitionRange],
        state: pd.DataFrame,
        event_times: tuple[int | None, int | None] = (None, None),
    ) -> tuple[ChunkCounts, pd.DataFrame]:
        """Score and write one chunk; returns its counts and the carried events after it. With
        ``event_times`` (low, high) only events of event time in [low, high) are written (and
        dead letters, which have none)."""

        started = time.monotonic()
        windows = self.windows(chunk, {}, state).persist()
        try:
            out = windows.where(~F.col("is_state")).drop("is_state", "state")
            low, high = event_times
            inside = F.lit(True)
            if low is not None:
                inside = inside & (F.col("event_time_ms") >= low)
            if high is not None:
                inside = inside & (F.col("event_time_ms") < high)
            written = F.col("reason").isNotNull() | inside
            totals = out.agg(
                F.count(F.lit(1)).alias("events"),
                F.count("reason").alias("dead"),
                F.count(F.when(written, F.col("score"))).alias("scored"),
                F.count_if(~written).alias("outside"),
            ).first()
            self.writer(out.where(written), index)
            carried = self.carried_events(windows, state)
        finally:
            windows.unpersist()
        counts = ChunkCounts(
            index,
            totals["events"],
            totals["scored"],
            totals["events"] - totals["dead"] - totals["scored"] - totals["outside"],
            totals["dead"],
            round(time.monotonic() - started, 3),
            totals["outside"],
        )
        return counts, carried

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


def backfill_outputs(settings: Settings) -> dict[str, str | None]:
    """Where a backfill writes, as recorded in its plan (folders resolved to absolute paths)."""
    b = settings.backfill
    return {
        "parquet_path": str(Path(b.parquet_path).resolve()) if b.parquet_path else None,
        "output_topic": b.output_topic,
        "dead_letter_path": str(Path(b.dead_letter_path).resolve()) if b.dead_letter_path else None,
        "dead_letter_topic": b.dead_letter_topic,
    }


def _name(r: PartitionRange) -> str:
    return f"{r.topic}:{r.partition}"


def _names(frame: pd.DataFrame) -> pd.Series:
    return frame["topic"].astype(str) + ":" + frame["partition"].astype(str)


def empty_state() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "topic": pd.Series(dtype=str),
            "partition": pd.Series(dtype="int32"),
            "key": pd.Series(dtype=str),
            "context": pd.Series(dtype=object),
        }
    )


# --- progress ----------------------------------------------------------------------------------


class Progress:
    """``plan.json``, then per finished chunk ``chunk-NNNNN.json`` (counts) and
    ``chunk-NNNNN.state.parquet`` (the carried events after it); ``context.state.parquet`` holds
    those before the range. A file appears only once complete (written aside, then renamed)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def plan(self) -> dict[str, Any] | None:
        path = self.folder / "plan.json"
        return json.loads(path.read_text()) if path.exists() else None

    def start(self, plan: dict[str, Any]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._write(self.folder / "plan.json", json.dumps(plan, indent=1).encode())

    def clear(self) -> None:
        if self.folder.exists():
            shutil.rmtree(self.folder)

    def finished(self) -> list[ChunkCounts]:
        done = []
        for index in range(len((self.plan() or {}).get("chunks", []))):
            path = self.folder / f"chunk-{index:05d}.json"
            if not path.exists():
                break
            done.append(ChunkCounts(**json.loads(path.read_text())))
        return done

    def state(self, name: str) -> pd.DataFrame | None:
        path = self.folder / f"{name}.state.parquet"
        return pq.read_table(path).to_pandas() if path.exists() else None

    def save_state(self, name: str, state: pd.DataFrame) -> None:
        schema = pa.schema(
            [
                ("topic", pa.string()),
                ("partition", pa.int32()),
                ("key", pa.string()),
                ("context", pa.list_(pa.float64())),
            ]
        )
        table = pa.Table.from_pandas(
            state[["topic", "partition", "key", "context"]], schema=schema, preserve_index=False
        )
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        self._write(self.folder / f"{name}.state.parquet", sink.getvalue().to_pybytes())

    def finish_chunk(self, counts: ChunkCounts, state: pd.DataFrame) -> None:
        self.save_state(f"chunk-{counts.chunk:05d}", state)
        self._write(
            self.folder / f"chunk-{counts.chunk:05d}.json", json.dumps(asdict(counts)).encode()
        )

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        aside = path.with_name(path.name + ".tmp")
        aside.write_bytes(data)
        aside.replace(path)


# --- the job -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Prepared:
    """A backfill checked and planned: ``plan`` is the stored one to resume (``fresh`` False)
    or a new one, not yet stored."""

    plan: dict[str, Any]
    fresh: bool
    progress: Progress
    model: ModelRef
    spec: ModelSpec


def prepare_backfill(
    settings: Settings, bootstrap: str, request: Request, *, restart: bool = False
) -> Prepared:
    """Every check a backfill makes before it reads a record (outputs, model, the progress
    folder, the ranges against the broker), without Spark and creating nothing: ``--dry-run``
    runs exactly this."""
    check_sinks(settings)
    ref, spec = check_model(settings)
    progress = Progress(progress_folder(settings, request))
    outputs = backfill_outputs(settings)
    plan = progress.plan()
    if plan is not None and not restart:
        # The outputs are part of the request: finished chunks were written to the recorded ones.
        # (A plan from before outputs were recorded is taken to have written to these.)
        recorded = plan.get("outputs", outputs)
        if plan["request"] != asdict(request) or plan.get("model") != ref.sha256:
            raise SeqstreamError(
                f"{progress.folder} holds the progress of another backfill "
                f"({describe_request(plan['request'])}, model sha256 "
                f"{str(plan.get('model'))[:12]}): pass --restart to discard it, or give this one "
                "its own --progress-dir (backfill.progress_dir)"
            )
        if recorded != outputs:
            changed = {
                k: f"{recorded.get(k)} -> {v}" for k, v in outputs.items() if recorded.get(k) != v
            }
            raise SeqstreamError(
                f"{progress.folder} holds a backfill whose finished chunks were written to other "
                f"outputs ({changed}): resume it with the outputs it had, or pass --restart to "
                "score the whole range into the new ones"
            )
        return Prepared(plan, False, progress, ref, spec)
    planned = plan_backfill(settings, bootstrap, request)
    if spec.kind == "carry":
        check_replay(planned, settings.backfill.replay_max_events)
    plan = {
        **planned,
        "model": ref.sha256,
        "outputs": outputs,
        "run_id": uuid.uuid4().hex,  # names its exactly-once transactions (``kafka.transactions``)
    }
    return Prepared(plan, True, progress, ref, spec)


def check_replay(plan: dict[str, Any], budget: int) -> None:
    """A carry model's backfill replays each partition from its earliest offset to the range
    start (``Backfill.replayed_state``): refuse, before anything runs, a replay over ``budget``
    events in a partition."""
    over = [
        (f"{r['topic']}-{r['partition']}", plan["lows"][f"{r['topic']}:{r['partition']}"], r)
        for r in plan["ranges"]
        if r["end"] > r["start"]
        and r["start"] - plan["lows"][f"{r['topic']}:{r['partition']}"] > budget
    ]
    if over:
        raise SeqstreamError(
            "a carry model's backfill replays each partition from its earliest offset to "
            "rebuild every key's state, and "
            + ", ".join(
                f"{name} [{low}, {r['start']}) is {r['start'] - low:,} events"
                for name, low, r in over
            )
            + f", over backfill.replay_max_events ({budget:,}): raise it, or start the "
            "range at the earliest offsets (--starting-offsets earliest)"
        )


def plan_run_id(plan: dict[str, Any]) -> str:
    """The plan's run id (a plan stored before run ids: a digest of it, as stable)."""
    if "run_id" in plan:
        return str(plan["run_id"])
    return hashlib.sha256(json.dumps(plan, sort_keys=True).encode()).hexdigest()[:32]


def progress_folder(settings: Settings, request: Request) -> Path:
    """``backfill.progress_dir``; by default a folder of the request's own under
    ``.seqstream/backfill``, so that different backfills do not share one."""
    if settings.backfill.progress_dir is not None:
        return Path(settings.backfill.progress_dir)
    digest = hashlib.sha256(json.dumps(asdict(request), sort_keys=True).encode()).hexdigest()
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", "+".join(request.topics))[:60]
    return DEFAULT_PROGRESS_ROOT / f"{name}-{digest[:12]}"


def run_backfill(
    spark: Any,
    settings: Settings,
    bootstrap: str,
    request: Request,
    *,
    restart: bool = False,
    prepared: Prepared | None = None,
) -> list[ChunkCounts]:
    """Run (or resume) the backfill; returns the counts of every chunk, resumed ones included.
    ``prepared``: ``prepare_backfill``'s result for this request, if the caller made it already
    (the checks, the model load and the broker lookups are then not made twice)."""
    prepared = prepared or prepare_backfill(settings, bootstrap, request, restart=restart)
    progress, plan = prepared.progress, prepared.plan
    if not (settings.backfill.dead_letter_path or settings.backfill.dead_letter_topic):
        log.warning(NO_DEAD_LETTER_OUTPUT.format(section="backfill"))
    job = Backfill(
        spark, settings, bootstrap, (prepared.model, prepared.spec), run_id=plan_run_id(plan)
    )
    create_output_topics(settings.model_copy(update={"stream": job.sink_settings()}), bootstrap)
    for name in ("parquet_path", "dead_letter_path"):
        claim_folder(getattr(settings.backfill, name), f"backfill.{name}", BACKFILL_OWNER)
    if prepared.fresh:
        progress.clear()
        progress.start(plan)
    chunks = [[PartitionRange(**r) for r in chunk] for chunk in plan["chunks"]]
    done = progress.finished()
    if done:
        log.info("resuming after chunk %d of %d", len(done), len(chunks))
        state = progress.state(f"chunk-{len(done) - 1:05d}")
    else:
        state = progress.state("context")
        if state is None:
            state = job.context_before([PartitionRange(**r) for r in plan["ranges"]], plan["lows"])
            progress.save_state("context", state)
    total = sum(r.events for chunk in chunks for r in chunk)
    started, done_before = (
        time.monotonic(),
        sum(r.events for chunk in chunks[: len(done)] for r in chunk),
    )
    for index in range(len(done), len(chunks)):
        counts, state = job.run_chunk(
            index,
            chunks[index],
            state,
            (request.start_event_time_ms, request.end_event_time_ms),
        )
        progress.finish_chunk(counts, state)
        done.append(counts)
        offsets_done = sum(r.events for chunk in chunks[: index + 1] for r in chunk)
        rate = (offsets_done - done_before) / max(time.monotonic() - started, 1e-9)
        log.info(
            "chunk %d/%d: %d events (%d scored, %d not yet scoreable, %d dead-lettered) in %.1fs; "
            "%d/%d done, %.0f events/s, %.0fs left",
            index + 1,
            len(chunks),
            counts.events_in,
            counts.scored,
            counts.not_yet_scoreable,
            counts.dead_lettered,
            counts.seconds,
            offsets_done,
            total,
            rate,
            (total - offsets_done) / rate if rate else 0.0,
        )
    return done
