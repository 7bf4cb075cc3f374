"""The window state's Kafka partitions are spread evenly over Spark's state partitions, the same
way on every run (``state_placement``)."""

from __future__ import annotations

from collections import Counter

import pytest
from pyspark.sql import functions as F

from seqstream.pipeline.state.placement import SLOT_COLUMN, slot_column


@pytest.mark.parametrize("state_partitions", [1, 2, 3, 4, 7])
def test_each_topics_partitions_are_dealt_round_robin_over_the_state_partitions(
    spark, state_partitions: int
) -> None:  # type: ignore[no-untyped-def]
    counts = {"scores": 12, "clicks-eu": 5}
    rows = [(t, p) for t, n in counts.items() for p in range(n)]
    placed = (
        spark.createDataFrame(rows, "topic string, partition int")
        .withColumn(SLOT_COLUMN, slot_column(spark, counts, state_partitions))
        # Spark's hash partitioning, as the stateful operator's shuffle places its groups
        .repartition(state_partitions, "topic", "partition", SLOT_COLUMN)
        .select("topic", "partition", F.spark_partition_id().alias("task"))
        .collect()
    )
    assert sorted((r.topic, r.partition) for r in placed) == sorted(rows)
    for topic, n in counts.items():
        per_task = Counter(r.task for r in placed if r.topic == topic)
        assert sum(per_task.values()) == n
        assert (
            max(per_task.values()) - min(per_task.get(t, 0) for t in range(state_partitions)) <= 1
        )


def test_a_partition_added_while_running_gets_the_slot_a_restart_gives_it(spark) -> None:  # type: ignore[no-untyped-def]
    """Partitions unknown at start are searched row by row: the same function as the lookup, so
    their state is found again under the same key after a restart."""
    rows = [("scores", p) for p in range(10)]
    frame = spark.createDataFrame(rows, "topic string, partition int")
    started_with_4 = frame.select("partition", slot_column(spark, {"scores": 4}, 3).alias("slot"))
    started_with_10 = frame.select("partition", slot_column(spark, {"scores": 10}, 3).alias("slot"))
    assert sorted(started_with_4.collect()) == sorted(started_with_10.collect())
