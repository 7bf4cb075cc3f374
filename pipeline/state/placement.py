"""Which Spark state partition holds each Kafka partition's windows.

Spark puts a stateful group in state partition ``pmod(hash(grouping columns), N)``. Grouped by
``(topic, partition)`` alone that is a lottery for a handful of Kafka partitions: 4 of them
hashed into 4 state partitions left one task with two and another with none, so every
micro-batch waited for the busy task while the empty one still paid for opening its state store
(about 0.1-0.2 s a task on two cores). A third grouping column, ``state_slot``, is chosen per
Kafka partition so that the hash lands where round-robin puts it: the Kafka partitions of a
topic spread evenly over the N state partitions, and N can be the executors' cores instead of
the Kafka partition count. The slot is a pure function of (topic, partition, N), so a restarted
query finds its state under the same keys; N is read from the checkpoint, which fixes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pyspark.sql import Column
from pyspark.sql import functions as F

from seqstream.pipeline.kafka import TopicPartition

SLOT_COLUMN = "state_slot"
SLOT_CANDIDATES_PER_PARTITION = 16  # a miss leaves (1 - 1/N)^(16 N) < 1e-6: slot 0, still exact
MAX_SLOT_CANDIDATES = 4096


def _candidates(partitions: int) -> int:
    return min(SLOT_CANDIDATES_PER_PARTITION * partitions, MAX_SLOT_CANDIDATES)


def _target(partitions: int) -> Column:
    """Round-robin within a topic, each topic starting at its own offset."""
    return F.pmod(F.col("partition") + F.crc32(F.col("topic").cast("binary")), F.lit(partitions))


def _searched_slot(partitions: int) -> Column:
    """The first slot whose hash with (topic, partition) lands on the target, or 0."""
    target = _target(partitions)
    hits = F.transform(
        F.sequence(F.lit(0), F.lit(_candidates(partitions) - 1)),
        lambda slot: F.pmod(F.hash("topic", "partition", slot), F.lit(partitions)) == target,
    )
    return F.greatest(F.array_position(hits, F.lit(True)) - 1, F.lit(0)).cast("int")


def slot_column(spark: Any, topic_partitions: dict[str, int], partitions: int) -> Column:
    """``state_slot`` for the Kafka rows: looked up for the partitions known at start (found by
    one small batch query), searched row by row for partitions added while the query runs (the
    same function, so a restart keeps their slots)."""
    keys: Sequence[TopicPartition] = [
        TopicPartition(topic, p)
        for topic, count in sorted(topic_partitions.items())
        for p in range(count)
    ]
    column = _searched_slot(partitions)
    if not keys:
        return column
    found = (
        spark.createDataFrame(keys, "topic string, partition int")
        .select("topic", "partition", _searched_slot(partitions).alias("slot"))
        .collect()
    )
    slots = {(row.topic, row.partition): row.slot for row in found}
    for topic, count in sorted(topic_partitions.items()):
        known = F.array(*[F.lit(slots[(topic, p)]) for p in range(count)])
        column = F.when(
            (F.col("topic") == topic) & (F.col("partition") < count),
            F.element_at(known, F.col("partition") + 1),
        ).otherwise(column)
    return column.cast("int")
