"""Offset ranges of a backfill: what the user asked for, resolved against what the broker holds.

A range is given as Spark's Kafka options give one (``earliest``/``latest`` or per-partition JSON
``{"topic": {"0": 23, "1": -2}}`` with -2 earliest and -1 latest) or as start/end times (epoch
ms: the first offset whose record timestamp is at or after). Everything is checked against the
log's real bounds before a record is read, and large ranges are cut into chunks.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from pipeline.errors import SeqstreamError
from pipeline.topics import TopicAdmin

EARLIEST, LATEST = -2, -1


@dataclass(frozen=True)
class PartitionRange:
    """Offsets ``start`` (included) to ``end`` (excluded) of one topic partition."""

    topic: str
    partition: int
    start: int
    end: int

    @property
    def events(self) -> int:
        return self.end - self.start


def _positions(spec: str, side: str, topic: str, partitions: list[int]) -> dict[int, int]:
    """Per partition: an offset, EARLIEST or LATEST, from ``earliest``/``latest`` or JSON."""
    if spec.strip().lower() in ("earliest", "latest"):
        return dict.fromkeys(partitions, EARLIEST if spec.strip().lower() == "earliest" else LATEST)
    try:
        given = json.loads(spec)
        per_topic = {str(t): {int(p): int(o) for p, o in ps.items()} for t, ps in given.items()}
    except (ValueError, TypeError, AttributeError):
        raise SeqstreamError(f'{side} must be earliest, latest or JSON like {{"topic":{{"0":23,"1":-2}}}}, got {spec!r}') from None
    if topic not in per_topic:
        raise SeqstreamError(f"{side} {spec} names no offsets for topic {topic!r}")
    missing = sorted(set(partitions) - set(per_topic[topic]))
    if missing:
        raise SeqstreamError(f"{side} gives no offset for {topic} partition(s) {missing}: give one for "
                             "every partition (-2 earliest, -1 latest)")  # fmt: skip
    unknown = sorted(set(per_topic[topic]) - set(partitions))
    if unknown:
        raise SeqstreamError(f"{side} names {topic} partition(s) {unknown}, which do not exist ({len(partitions)} partitions)")
    return per_topic[topic]


def resolve_ranges(
    admin: TopicAdmin, topics: list[str], *, starting: str = "earliest", ending: str = "latest",
    start_time_ms: int | None = None, end_time_ms: int | None = None,
) -> list[PartitionRange]:  # fmt: skip
    """Every partition's [start, end) in offsets the broker holds now, or a precise error."""
    if start_time_ms is not None and end_time_ms is not None and end_time_ms < start_time_ms:
        raise SeqstreamError(f"the end time ({end_time_ms}) is before the start time ({start_time_ms})")
    ranges = []
    for topic in topics:
        partitions = list(range(admin.describe_topic(topic).partitions))  # unknown topic: TopicError
        lows, highs = admin.beginning_offsets(topic), admin.end_offsets(topic)
        starts = (admin.offsets_for_times(topic, start_time_ms) if start_time_ms is not None
                  else _positions(starting, "the start (startingOffsets)", topic, partitions))  # fmt: skip
        ends = (admin.offsets_for_times(topic, end_time_ms) if end_time_ms is not None
                else _positions(ending, "the end (endingOffsets)", topic, partitions))  # fmt: skip
        for p in partitions:
            low, high = lows[p], highs[p]
            start = {EARLIEST: low, LATEST: high}.get(starts[p], starts[p])
            end = {EARLIEST: low, LATEST: high}.get(ends[p], ends[p])
            name = f"{topic} partition {p}"
            if start < low:
                raise SeqstreamError(
                    f"the range starts at offset {start} of {name}, but the broker only holds offsets "
                    f"{low}..{high - 1} (older records were deleted by retention or the topic was "
                    f"re-created): start at {low} or later, or at 'earliest'"
                )
            if end > high:
                raise SeqstreamError(f"the range ends at offset {end} of {name}, past its end ({high}): end at {high} or 'latest'")
            if end < start:
                raise SeqstreamError(f"the range of {name} ends (offset {end}) before it starts (offset {start})")
            ranges.append(PartitionRange(topic, p, start, end))
    return ranges


def split_chunks(ranges: list[PartitionRange], chunk_events: int) -> list[list[PartitionRange]]:
    """Cut the ranges into chunks of about ``chunk_events`` offsets: chunk k holds the k-th equal
    slice of every partition, so each chunk reads all partitions in parallel and chunks follow
    each other in log order."""
    total = sum(r.events for r in ranges)
    count = max(1, math.ceil(total / chunk_events))
    chunks = []
    for k in range(count):
        chunk = []
        for r in ranges:
            a = r.start + r.events * k // count
            b = r.start + r.events * (k + 1) // count
            if b > a:
                chunk.append(PartitionRange(r.topic, r.partition, a, b))
        chunks.append(chunk)
    return [c for c in chunks if c] or [[]]


def offsets_json(ranges: list[PartitionRange], side: str) -> str:
    """Spark's ``startingOffsets``/``endingOffsets`` JSON for exactly these partitions."""
    out: dict[str, dict[str, int]] = {}
    for r in ranges:
        out.setdefault(r.topic, {})[str(r.partition)] = r.start if side == "start" else r.end
    return json.dumps(out)


def assign_json(ranges: list[PartitionRange]) -> str:
    out: dict[str, list[int]] = {}
    for r in ranges:
        out.setdefault(r.topic, []).append(r.partition)
    return json.dumps(out)
