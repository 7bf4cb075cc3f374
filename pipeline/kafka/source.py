"""The readers of ``seqstream-kafka``: batch and streaming reads planned on the driver.

Offsets are planned on the driver (``planner.Planner`` against the cluster, ``ranges`` for the
arithmetic; admission control for streaming in ``KafkaStreamReader``) and each Spark partition
reads its exact ``PartitionRange`` inside ``read()`` with assign + seek, so a micro-batch replayed
from a checkpoint reads the same records.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
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
from seqstream.pipeline.kafka.offsets import (
    Offsets,
    PartitionRange,
    TopicPartition,
    from_json_offsets,
    to_json_offsets,
)
from seqstream.pipeline.kafka.options import SourceOptions
from seqstream.pipeline.kafka.planner import Planner, check_data_loss
from seqstream.pipeline.kafka.ranges import RangeGroup, group_ranges, rate_limit, split_ranges
from seqstream.pipeline.kafka.reader import Record, read_range
from seqstream.pipeline.kafka.retry import Backoff, retrying
from seqstream.pipeline.kafka.schema import arrow_schema

T = TypeVar("T")


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
        planner = Planner(self.options)
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
                + ", ".join(f"{k} ({starts[k]} > {ends[k]})" for k in backwards)
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
        self._planner: Planner | None = None
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
    def planner(self) -> Planner:
        if self._planner is None:
            self._planner = Planner(self.options)
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
