"""Offset planning of the seqstream-kafka source, as pure functions: no broker, no Spark."""

from __future__ import annotations

import json

import pytest

from seqstream.pipeline.kafka.offsets import (
    PartitionRange,
    assign_json,
    from_json_offsets,
    offsets_json,
    to_json_offsets,
)
from seqstream.pipeline.kafka.ranges import rate_limit, split_ranges


def _covered(parts: list[PartitionRange]) -> dict[tuple[str, int], list[int]]:
    offsets: dict[tuple[str, int], list[int]] = {}
    for part in parts:
        offsets.setdefault((part.topic, part.partition), []).extend(range(part.start, part.end))
    return offsets


def test_split_ranges_gives_one_task_per_non_empty_range() -> None:
    parts = split_ranges({("t", 1): (0, 300), ("t", 0): (10, 110), ("t", 2): (5, 5)}, None)
    assert parts == [PartitionRange("t", 0, 10, 110), PartitionRange("t", 1, 0, 300)]


def test_split_ranges_cuts_in_proportion_to_reach_min_partitions() -> None:
    ranges = {("t", 0): (0, 100), ("t", 1): (1000, 1300), ("u", 0): (7, 7)}
    parts = split_ranges(ranges, 8)
    assert len(parts) == 8
    per_partition = [(p.topic, p.partition) for p in parts]
    assert per_partition.count(("t", 0)) == 2 and per_partition.count(("t", 1)) == 6
    # every offset read exactly once, each partition's pieces contiguous and in order
    assert _covered(parts) == {("t", 0): list(range(0, 100)), ("t", 1): list(range(1000, 1300))}


def test_split_ranges_leaves_enough_partitions_alone() -> None:
    ranges = {("t", p): (0, 10) for p in range(4)}
    assert len(split_ranges(ranges, 3)) == 4


def test_rate_limit_shares_the_maximum_by_backlog() -> None:
    begin = {("t", 0): 100, ("t", 1): 0}
    assert rate_limit(begin, {("t", 0): 30, ("t", 1): 10}, 20) == {("t", 0): 115, ("t", 1): 5}


def test_rate_limit_takes_everything_under_the_maximum() -> None:
    begin = {("t", 0): 0, ("t", 1): 50}
    assert rate_limit(begin, {("t", 0): 3, ("t", 1): 4}, 100) == {("t", 0): 3, ("t", 1): 54}


def test_rate_limit_gives_the_rounding_remainder_to_the_largest_leftovers() -> None:
    begin = dict.fromkeys([("t", 0), ("t", 1), ("t", 2)], 0)
    ends = rate_limit(begin, {("t", 0): 1, ("t", 1): 5, ("t", 2): 4}, 4)
    # shares 0.4, 2.0 and 1.6 round down to 0, 2 and 1; the spare offset goes to the largest
    # leftover backlog (3 and 3: the first of the tie)
    assert ends == {("t", 0): 0, ("t", 1): 3, ("t", 2): 1}


def test_offsets_json_is_sparks_format_and_round_trips() -> None:
    offsets = {("b", 1): 7, ("a", 0): 3, ("b", 0): 5}
    assert to_json_offsets(offsets) == {"a": {"0": 3}, "b": {"0": 5, "1": 7}}
    assert from_json_offsets(to_json_offsets(offsets)) == offsets
    ranges = [PartitionRange("a", 0, 3, 9), PartitionRange("b", 1, 7, 8)]
    assert json.loads(offsets_json(ranges, "start")) == {"a": {"0": 3}, "b": {"1": 7}}
    assert json.loads(offsets_json(ranges, "end")) == {"a": {"0": 9}, "b": {"1": 8}}
    assert json.loads(assign_json(ranges)) == {"a": [0], "b": [1]}


def test_a_partition_range_counts_its_events_and_is_hashable() -> None:
    r = PartitionRange("t", 2, 10, 25)
    assert r.events == 15
    assert {r, PartitionRange("t", 2, 10, 25)} == {r}
    with pytest.raises(AttributeError):
        r.start = 0  # type: ignore[misc]
