"""The Kafka source's offset arithmetic, with no call to the cluster: how many offsets a
trigger admits (``rate_limit``, maxOffsetsPerTrigger), how offsets are cut into ranges
(``split_ranges``, minPartitions) and how ranges are dealt to Spark tasks (``group_ranges``).

Apart from the planning that asks the cluster (``planner``) and from the readers (``source``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pyspark.sql.datasource import InputPartition

from seqstream.pipeline.kafka.offsets import Offsets, PartitionRange, TopicPartition


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
