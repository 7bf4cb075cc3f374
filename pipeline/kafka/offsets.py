"""Offsets: one partition-range type, Spark's offset constants and its offset JSON.

Offsets specs follow Spark: ``earliest``, ``latest`` or ``{"topic": {"0": 23, "1": -2}}`` with
-2 = earliest and -1 = latest. A ``PartitionRange`` is both what a Spark task of the Kafka source
reads and what the backfill plans, so the two never disagree on what a range is.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

from pyspark.sql.datasource import InputPartition

EARLIEST, LATEST = -2, -1


class TopicPartition(NamedTuple):
    """One partition of a topic: the project's one name for it (a dict key, a plan entry, a
    Spark offset JSON entry). Printed as Kafka prints it, ``topic-partition``."""

    topic: str
    partition: int

    def __str__(self) -> str:
        return f"{self.topic}-{self.partition}"


Offsets = dict[TopicPartition, int]


@dataclass(frozen=True)
class PartitionRange(InputPartition):
    """Offsets ``start`` (included) to ``end`` (excluded) of one topic partition. Picklable: one
    Spark task of the Kafka source reads exactly one."""

    topic: str
    partition: int
    start: int
    end: int

    @property
    def events(self) -> int:
        return self.end - self.start

    @property
    def topic_partition(self) -> TopicPartition:
        return TopicPartition(self.topic, self.partition)


def to_json_offsets(offsets: Offsets) -> dict[str, dict[str, int]]:
    """Spark's offset JSON: {"topic": {"0": 23}}."""
    result: dict[str, dict[str, int]] = {}
    for (topic, partition), offset in sorted(offsets.items()):
        result.setdefault(topic, {})[str(partition)] = offset
    return result


def from_json_offsets(offsets: Mapping[str, Mapping[str, int]]) -> Offsets:
    return {
        TopicPartition(topic, int(p)): int(o)
        for topic, parts in offsets.items()
        for p, o in parts.items()
    }


def parse_partition_json(raw: str) -> dict[str, dict[int, int]]:
    """Spark's per-partition JSON, ``{"topic": {"0": 23, "1": -2}}`` with integer values (-2
    earliest, -1 latest; whether an offset exists is the broker's to say). ValueError when it is
    not; each caller words it for its option."""
    try:
        parsed = json.loads(raw)
        if not isinstance(parsed, dict) or not all(isinstance(p, dict) for p in parsed.values()):
            raise ValueError
        result = {str(t): {int(p): o for p, o in ps.items()} for t, ps in parsed.items()}
    except (ValueError, TypeError):
        raise ValueError(raw) from None
    if any(
        not isinstance(o, int) or isinstance(o, bool) for ps in result.values() for o in ps.values()
    ):
        raise ValueError(raw)
    return result


def parse_positions(raw: str) -> str | dict[str, dict[int, int]]:
    """The one offsets parser: ``earliest``, ``latest`` (returned lower-cased) or Spark's
    per-partition JSON (``parse_partition_json``); ValueError otherwise."""
    named = raw.strip().lower()
    return named if named in ("earliest", "latest") else parse_partition_json(raw)


def offsets_json(ranges: Iterable[PartitionRange], side: str) -> str:
    """Spark's ``startingOffsets`` (``side="start"``) or ``endingOffsets`` JSON for these ranges."""
    return json.dumps(
        to_json_offsets({r.topic_partition: r.start if side == "start" else r.end for r in ranges})
    )


def assign_json(ranges: Iterable[PartitionRange]) -> str:
    """Spark's ``assign`` JSON naming exactly the partitions of ``ranges``."""
    out: dict[str, list[int]] = {}
    for r in ranges:
        out.setdefault(r.topic, []).append(r.partition)
    return json.dumps(out)
