"""The readers of ``seqstream-kafka``: batch and streaming reads planned on the driver.

Offsets are planned on the driver (``_Planner``, with admission control for streaming) and each
Spark partition reads its exact ``PartitionRange`` inside ``read()`` with assign + seek, so a
micro-batch replayed from a checkpoint reads the same records.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, TypeVar

import pyarrow as pa
from pyspark.sql.datasource import DataSourceReader, DataSourceStreamReader, InputPartition
from pyspark.sql.streaming.datasource import (
    ReadAllAvailable,
    ReadLimit,
    ReadMaxRows,
    ReadMinRows,
    SupportsTriggerAvailableNow,
)

from seqstream.pipeline.errors import SeqstreamError
from seqstream.pipeline.kafka.admin import TopicAdmin
from seqstream.pipeline.kafka.clients import Record, read_range
from seqstream.pipeline.kafka.offsets import (
    EARLIEST,
    LATEST,
    Offsets,
    PartitionRange,
    TopicPartition,
    from_json_offsets,
    to_json_offsets,
)
from seqstream.pipeline.kafka.options import OffsetSpec, SourceOptions
from seqstream.pipeline.kafka.retry import Backoff, is_transient, retrying
from seqstream.pipeline.kafka.schema import arrow_schema

log = logging.getLogger(__name__)
T = TypeVar("T")


# --- planning on the driver --------------------------------------------------------------------


# How long the driver trusts the topics and partition counts it looked up (Kafka clients'
# metadata.max.age.ms is 5 minutes; a new partition is picked up within this).
METADATA_MAX_AGE_S = 10.0


class _Planner:
    """Resolves topics, partitions and offsets against the cluster; lives on the driver only.

    Per micro-batch it asks the broker only what it must: the topics and partition counts are
    kept for ``METADATA_MAX_AGE_S`` (and looked up again after an error), and the end offsets
    cost one ListOffsets request, plus one tail fetch for the partitions that moved
    (``TopicAdmin.end_offsets``)."""

    def __init__(self, options: SourceOptions) -> None:
        self.options = options
        self.records_skipped = 0  # data-loss counters, for failOnDataLoss=false
        self.partitions_lost = 0
        kafka = options.kafka
        self.admin = TopicAdmin(
            kafka.bootstrap,
            client=kafka.client,
            timeout_s=kafka.timeout_s,
            options=kafka.properties,
        )
        self._metadata: dict[str, int] = {}
        self._metadata_at = -float("inf")

    def topics(self, *, fresh: bool = False) -> dict[str, int]:
        """Topic -> partition count, from a lookup at most ``METADATA_MAX_AGE_S`` old."""
        if fresh or time.monotonic() - self._metadata_at > METADATA_MAX_AGE_S:
            self._metadata = self.admin.topic_partitions()
            self._metadata_at = time.monotonic()
        return self._metadata

    def partitions(self, *, fresh: bool = False) -> list[TopicPartition]:
        opts = self.options
        if opts.strategy == "assign":
            return sorted((t, p) for t, ps in opts.assigned.items() for p in ps)
        sizes = self.topics(fresh=fresh)
        if opts.strategy == "subscribe":
            topics = [t for t in opts.topics if t in sizes]
        else:
            topics = sorted(t for t in sizes if opts.matches(t))
        return [(t, p) for t in topics for p in range(sizes[t])]

    def existing(self, keys: Sequence[TopicPartition]) -> set[TopicPartition]:
        """Those of ``keys`` whose topic and partition exist on the cluster now."""
        sizes = self.topics(fresh=True)
        return {(t, p) for t, p in keys if p < sizes.get(t, 0)}

    def _per_topic(
        self,
        keys: Sequence[TopicPartition],
        lookup: Callable[[str, list[int]], Mapping[int, int]],
    ) -> Offsets:
        result: Offsets = {}
        for topic in sorted({t for t, _ in keys}):
            partitions = sorted(p for t, p in keys if t == topic)
            found = lookup(topic, partitions)
            result.update({(topic, p): found[p] for p in partitions})
        return result

    def earliest(self, keys: Sequence[TopicPartition]) -> Offsets:
        return self._per_topic(keys, self.admin.beginning_offsets)

    def latest(self, keys: Sequence[TopicPartition]) -> Offsets:
        return self._per_topic(keys, self.admin.end_offsets)

    def latest_everywhere(self) -> Offsets:
        """The end offsets of every partition read; a lookup that fails for a reason other than
        an outage (a topic deleted since the metadata was read) is redone on fresh metadata."""
        try:
            return self.latest(self.partitions())
        except Exception as exc:  # noqa: BLE001 - re-raised unless fresh metadata may fix it
            if is_transient(exc):
                raise
            return self.latest(self.partitions(fresh=True))

    def resolve(self, spec: OffsetSpec, keys: Sequence[TopicPartition], name: str) -> Offsets:
        """Concrete offsets for ``spec`` (an OffsetSpec) on ``keys``. A start timestamp that no
        record in a partition reaches fails, unless startingOffsetsByTimestampStrategy=latest
        (then that partition starts at its end, where an end timestamp always does)."""
        found = self._resolve(spec, keys, name)
        if (
            name == "startingOffsets"
            and spec.kind in ("timestamp", "timestamps")
            and self.options.timestamp_strategy == "error"
        ):
            ends = self.latest(list(found))
            unmatched = sorted(k for k in found if found[k] >= ends[k])
            if unmatched:
                option = (
                    "startingTimestamp"
                    if spec.kind == "timestamp"
                    else "startingOffsetsByTimestamp"
                )
                at = {
                    (t, p): spec.timestamp if spec.kind == "timestamp" else spec.offsets[t][p]
                    for t, p in unmatched
                }
                raise SeqstreamError(
                    f"{option}: no record at or after the timestamp in "
                    + ", ".join(f"{t}-{p} ({at[(t, p)]})" for t, p in unmatched)
                    + "; set startingOffsetsByTimestampStrategy=latest to start such partitions "
                    "at their latest offset"
                )
        return found

    def _resolve(self, spec: OffsetSpec, keys: Sequence[TopicPartition], name: str) -> Offsets:
        if spec.kind == "earliest":
            return self.earliest(keys)
        if spec.kind == "latest":
            return self.latest(keys)
        if spec.kind == "timestamp":
            at = spec.timestamp
            if at is None:
                raise SeqstreamError(f"{name}: a timestamp position needs a timestamp")
            return self._per_topic(keys, lambda t, ps: self.admin.offsets_for_times(t, at))
        given = {(t, p): v for t, parts in spec.offsets.items() for p, v in parts.items()}
        missing = sorted(set(keys) - set(given))
        unknown = sorted(set(given) - set(keys))
        if missing or unknown:
            raise SeqstreamError(
                f"{name} must name exactly the partitions read: missing {missing}, not read {unknown}"
            )
        if spec.kind == "timestamps":
            return {k: self.admin.offsets_for_times(k[0], ts)[k[1]] for k, ts in given.items()}
        earliest = self.earliest(keys) if EARLIEST in given.values() else {}
        latest = self.latest(keys) if LATEST in given.values() else {}
        return {
            k: earliest[k] if v == EARLIEST else latest[k] if v == LATEST else v
            for k, v in given.items()
        }

    def close(self) -> None:
        self.admin.close()


def split_ranges(
    ranges: Mapping[TopicPartition, tuple[int, int]], min_partitions: int | None
) -> list[PartitionRange]:
    """One Spark partition per non-empty range, big ranges cut so there are >= min_partitions
    (Spark's KafkaOffsetRangeCalculator: parts proportional to each range's share)."""
    ranges = {k: r for k, r in sorted(ranges.items()) if r[1] > r[0]}
    total = sum(end - start for start, end in ranges.values())
    result = []
    for (topic, partition), (start, end) in ranges.items():
        parts = 1
        if min_partitions and len(ranges) < min_partitions and total:
            parts = max(round((end - start) / total * min_partitions), 1)
        bounds = [start + (end - start) * i // parts for i in range(parts + 1)]
        result += [
            PartitionRange(topic, partition, a, b)
            for a, b in zip(bounds, bounds[1:], strict=False)
            if b > a
        ]
    return result


# A read task costs about as much as reading a few thousand records (a Python worker call, a
# consumer, a shuffle file): a small micro-batch reads its ranges in fewer tasks.
RECORDS_PER_READ_TASK = 4096


@dataclass(frozen=True)
class RangeGroup(InputPartition):
    """Several ranges read one after the other by one Spark task (streaming micro-batches only:
    the backfill keeps one task per range)."""

    ranges: tuple[PartitionRange, ...]


def group_ranges(
    ranges: Sequence[PartitionRange], per_task: int = RECORDS_PER_READ_TASK
) -> list[InputPartition]:
    """At most one task per ``per_task`` records, ranges dealt largest first to the task that
    has least to read; a range is never cut."""
    tasks = min(len(ranges), max(1, -(-sum(r.events for r in ranges) // per_task)))
    if tasks == len(ranges):
        return list(ranges)
    groups: list[list[PartitionRange]] = [[] for _ in range(tasks)]
    for r in sorted(ranges, key=lambda r: -r.events):
        min(groups, key=lambda g: sum(x.events for x in g)).append(r)
    return [RangeGroup(tuple(sorted(g, key=lambda r: (r.topic, r.partition)))) for g in groups]


def check_data_loss(
    options: SourceOptions,
    planner: _Planner,
    starts: Offsets,
    ends: Offsets,
    latest: Offsets | None = None,
) -> tuple[Offsets, Offsets]:
    """Ranges to read after checking that every start still exists.

    Lost: a partition that is gone (topic deleted), records deleted below a start (retention),
    or a log that restarted below a start (topic re-created). ``failOnDataLoss=true`` fails the
    query naming each; ``false`` logs a warning with the count and reads what is still there.
    ``latest``: end offsets just looked up (by ``latestOffset``), saving the lookup."""
    present = planner.existing(list(starts))
    gone = sorted(k for k in starts if k not in present)
    kept = [k for k in starts if k in present]
    earliest = planner.earliest(kept)
    if latest is None or any(k not in latest for k in kept):
        latest = planner.latest(kept)
    deleted = {k: (starts[k], earliest[k]) for k in kept if starts[k] < earliest[k]}
    reset = {k: (starts[k], latest[k]) for k in kept if starts[k] > latest[k]}
    if not (gone or deleted or reset):
        return starts, ends
    detail = "; ".join(
        [f"{t}-{p}: partition no longer exists" for t, p in gone]
        + [f"{t}-{p}: offsets [{a}, {b}) were deleted" for (t, p), (a, b) in deleted.items()]
        + [
            f"{t}-{p}: log ends at {b}, before the start {a} (topic re-created?)"
            for (t, p), (a, b) in reset.items()
        ]
    )
    if options.fail_on_data_loss:
        raise SeqstreamError(
            f"data loss: {detail}. Set failOnDataLoss=false to skip what is gone and go on."
        )
    skipped = sum(b - a for a, b in deleted.values())
    planner.records_skipped += skipped
    planner.partitions_lost += len(gone) + len(reset)
    log.warning(
        "failOnDataLoss=false: skipping %d deleted records and %d lost partitions (%s); "
        "so far in this query: %d records skipped, %d partitions lost",
        skipped,
        len(gone) + len(reset),
        detail,
        planner.records_skipped,
        planner.partitions_lost,
    )
    new_starts = {k: v for k, v in starts.items() if k in present}
    new_starts.update({k: b for k, (_, b) in deleted.items()})
    new_starts.update({k: earliest[k] for k in reset})
    new_ends = {k: max(v, new_starts[k]) for k, v in ends.items() if k in new_starts}
    return new_starts, new_ends


# --- reading on the executors ------------------------------------------------------------------


def _batches(
    records: Iterator[Record], include_headers: bool, size: int = 8192
) -> Iterator[pa.RecordBatch]:
    schema = arrow_schema(include_headers)
    chunk: list[Record] = []

    def flush() -> pa.RecordBatch:
        columns: list[Any] = [
            [r.key for r in chunk],
            [r.value for r in chunk],
            [r.topic for r in chunk],
            [r.partition for r in chunk],
            [r.offset for r in chunk],
            [datetime.fromtimestamp(r.timestamp_ms / 1000, tz=timezone.utc) for r in chunk],
            [r.timestamp_type for r in chunk],
        ]
        if include_headers:
            columns.append([[{"key": k, "value": v} for k, v in r.headers] for r in chunk])
        return pa.RecordBatch.from_arrays(
            [pa.array(c, type=f.type) for c, f in zip(columns, schema, strict=False)], schema=schema
        )

    for record in records:
        chunk.append(record)
        if len(chunk) >= size:
            yield flush()
            chunk = []
    if chunk:
        yield flush()


def read_partition(options: SourceOptions, partition: InputPartition) -> Iterator[pa.RecordBatch]:
    if isinstance(partition, PartitionRange):
        parts = [partition]
    elif isinstance(partition, RangeGroup):
        parts = list(partition.ranges)
    else:  # Spark's placeholder when nothing to read
        return iter(())
    by_topic: dict[str, dict[int, tuple[int, int]]] = {}
    for r in parts:
        by_topic.setdefault(r.topic, {})[r.partition] = (r.start, r.end)
    records = (
        record
        for topic, ranges in by_topic.items()
        for record in _read_resuming(options, topic, ranges)
    )
    return _batches(records, options.include_headers)


def _read_resuming(
    options: SourceOptions, topic: str, ranges: Mapping[int, tuple[int, int]]
) -> Iterator[Record]:
    """The ranges' records, with one consumer for all of a topic's ranges; when the broker stops
    answering, read on from each partition's next offset with a new consumer, retrying for
    ``retry_timeout_s`` after the last record that came."""
    kafka = options.kafka
    position = {p: start for p, (start, _) in ranges.items()}
    backoff = Backoff(what="", bootstrap=kafka.bootstrap, timeout_s=kafka.retry_timeout_s)
    while left := {p: (position[p], end) for p, (_, end) in ranges.items() if position[p] < end}:
        try:
            for record in read_range(
                kafka.bootstrap,
                topic,
                left,
                client=kafka.client,
                options=kafka.properties,
                timeout_s=options.read_timeout_s,
                group_id=options.group_id,
            ):
                yield record
                position[record.partition] = record.offset + 1
                backoff.progress()
            return
        except Exception as exc:  # noqa: BLE001 - Backoff.failed re-raises what cannot be retried
            backoff.what = "reads of " + ", ".join(
                f"{topic}-{p} at offset {position[p]} (of [{start}, {end}))"
                for p, (start, end) in ranges.items()
                if position[p] < end
            )
            backoff.failed(exc)


class KafkaBatchReader(DataSourceReader):
    def __init__(self, options: SourceOptions) -> None:
        self.options = options

    def partitions(self) -> Sequence[InputPartition]:
        kafka = self.options.kafka
        return retrying(
            self._partitions,
            what="planning a read",
            bootstrap=kafka.bootstrap,
            timeout_s=kafka.retry_timeout_s,
            max_retries=self.options.offset_retries,
            interval_s=self.options.offset_retry_interval_s,
        )

    def _partitions(self) -> Sequence[InputPartition]:
        planner = _Planner(self.options)
        try:
            keys = planner.partitions()
            if not keys:
                raise SeqstreamError(
                    f"no topic to read: nothing on {self.options.kafka.bootstrap} matches {self._what()}"
                )
            starts = planner.resolve(self.options.starting, keys, "startingOffsets")
            ends = planner.resolve(self.options.ending, keys, "endingOffsets")
            starts, ends = check_data_loss(self.options, planner, starts, ends)
        finally:
            planner.close()
        backwards = sorted(k for k in starts if ends[k] < starts[k])
        if backwards:
            raise SeqstreamError(
                "endingOffsets before startingOffsets for "
                + ", ".join(f"{t}-{p} ({starts[(t, p)]} > {ends[(t, p)]})" for t, p in backwards)
            )
        return split_ranges({k: (starts[k], ends[k]) for k in starts}, self.options.min_partitions)

    def _what(self) -> str:
        o = self.options
        return {
            "subscribe": f"subscribe={list(o.topics)}",
            "subscribepattern": f"subscribePattern={o.pattern!r}",
            "assign": f"assign={o.assigned}",
        }[o.strategy]

    def read(self, partition: InputPartition) -> Iterator[pa.RecordBatch]:
        return read_partition(self.options, partition)


class KafkaStreamReader(DataSourceStreamReader, SupportsTriggerAvailableNow):
    """Offsets are Spark's per-partition JSON. Admission control: maxOffsetsPerTrigger,
    minOffsetsPerTrigger + maxTriggerDelay; Trigger.AvailableNow stops at the latest offsets
    seen when the query starts."""

    def __init__(self, options: SourceOptions) -> None:
        self.options = options
        self._planner: _Planner | None = None
        self._available_now: Offsets | None = None
        self._last_batch_at = time.monotonic()
        # The end offsets found by this trigger's latestOffset, for reportLatestOffset and for
        # the data-loss check of the micro-batch it plans.
        self._latest_seen: Offsets | None = None

    def __getstate__(self) -> dict[str, Any]:  # executors get the options only
        return {
            "options": self.options,
            "_planner": None,
            "_available_now": None,
            "_last_batch_at": 0.0,
            "_latest_seen": None,
        }

    @property
    def planner(self) -> _Planner:
        if self._planner is None:
            self._planner = _Planner(self.options)
        return self._planner

    def _retrying(self, what: str, call: Callable[[], T]) -> T:
        """Driver-side Kafka calls ride out a broker that is briefly away: a failed attempt
        drops the planner's clients, the next one opens new ones."""
        kafka = self.options.kafka
        return retrying(
            call,
            what=what,
            bootstrap=kafka.bootstrap,
            timeout_s=kafka.retry_timeout_s,
            reset=self.stop,
            max_retries=self.options.offset_retries,
            interval_s=self.options.offset_retry_interval_s,
        )

    def initialOffset(self) -> dict:
        return self._retrying("the offsets to start from", self._initial_offset)

    def _initial_offset(self) -> dict:
        keys = self.planner.partitions()
        return to_json_offsets(self.planner.resolve(self.options.starting, keys, "startingOffsets"))

    def getDefaultReadLimit(self) -> ReadLimit:
        if self.options.min_offsets_per_trigger is not None:
            return ReadMinRows(self.options.min_offsets_per_trigger)
        if self.options.max_offsets_per_trigger is not None:
            return ReadMaxRows(self.options.max_offsets_per_trigger)
        return ReadAllAvailable()

    def prepareForTriggerAvailableNow(self) -> None:
        self._available_now = self._retrying("the latest offsets", self.planner.latest_everywhere)

    def _starts(self, start: Offsets, keys: Sequence[TopicPartition]) -> Offsets:
        """Known partitions continue; new ones (a topic grew) start at their earliest offset."""
        new = [k for k in keys if k not in start]
        return {**start, **(self.planner.earliest(new) if new else {})}

    def latestOffset(self, start: dict, limit: ReadLimit) -> dict:
        return self._retrying("the latest offsets", lambda: self._latest_offset(start, limit))

    def _latest_offset(self, start: dict, limit: ReadLimit) -> dict:
        if self._available_now is not None:
            latest = dict(self._available_now)
        else:
            latest = self.planner.latest_everywhere()
            self._latest_seen = latest
        begin = self._starts(from_json_offsets(start), list(latest))
        if any(k not in latest for k in begin) or any(latest[k] < begin[k] for k in latest):
            # A partition vanished or its log went backwards: fail now (failOnDataLoss=true) or
            # plan a batch that reads what is there; partitions() applies the same adjustment.
            return to_json_offsets(check_data_loss(self.options, self.planner, begin, latest)[1])
        backlog = {k: latest[k] - begin[k] for k in latest}
        if not isinstance(limit, ReadAllAvailable):
            minimum = self.options.min_offsets_per_trigger
            waited_ms = (time.monotonic() - self._last_batch_at) * 1000
            if (
                minimum
                and sum(backlog.values()) < minimum
                and waited_ms < self.options.max_trigger_delay_ms
            ):
                return start  # not enough yet: no batch
            if self.options.max_offsets_per_trigger is not None:
                latest = rate_limit(begin, backlog, self.options.max_offsets_per_trigger)
        if any(backlog.values()):
            self._last_batch_at = time.monotonic()
        return to_json_offsets(latest)

    def reportLatestOffset(self) -> dict | None:
        """Spark asks right after ``latestOffset``: the answer that one found, not a new lookup."""
        if self._latest_seen is not None:
            return to_json_offsets(self._latest_seen)
        return self._retrying(
            "the latest offsets", lambda: to_json_offsets(self.planner.latest_everywhere())
        )

    def partitions(self, start: dict, end: dict) -> Sequence[InputPartition]:
        return self._retrying("planning a micro-batch", lambda: self._partitions(start, end))

    def _partitions(self, start: dict, end: dict) -> Sequence[InputPartition]:
        ends = from_json_offsets(end)
        starts = self._starts(from_json_offsets(start), list(ends))
        latest, self._latest_seen = self._latest_seen, None
        starts, ends = check_data_loss(self.options, self.planner, starts, ends, latest)
        ranges = split_ranges({k: (starts[k], ends[k]) for k in ends}, self.options.min_partitions)
        return ranges if self.options.min_partitions else group_ranges(ranges)

    def read(self, partition: InputPartition) -> Iterator[pa.RecordBatch]:
        return read_partition(self.options, partition)

    def stop(self) -> None:
        if self._planner is not None:
            planner, self._planner = self._planner, None
            planner.close()


def rate_limit(begin: Offsets, backlog: Mapping[TopicPartition, int], maximum: int) -> Offsets:
    """Ends that take at most ``maximum`` offsets in all, shared in proportion to each
    partition's backlog (the rounding remainder goes to the largest leftovers)."""
    total = sum(backlog.values())
    take = (
        dict(backlog) if total <= maximum else {k: maximum * b // total for k, b in backlog.items()}
    )
    spare = min(maximum, total) - sum(take.values())
    for k in sorted(backlog, key=lambda k: backlog[k] - take[k], reverse=True)[:spare]:
        take[k] += 1
    return {k: begin[k] + take[k] for k in backlog}
