"""The Kafka source's planning on the driver: topics, partitions and offsets resolved against
the cluster (``Planner``), and the check that every planned start still exists
(``check_data_loss``).

Apart from the readers that use it (``source``) and from the offset arithmetic that needs no
cluster (``ranges``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence

from seqstream.pipeline.errors import SeqstreamError
from seqstream.pipeline.kafka.admin import TopicAdmin
from seqstream.pipeline.kafka.offsets import EARLIEST, LATEST, Offsets, TopicPartition
from seqstream.pipeline.kafka.options import OffsetSpec, SourceOptions
from seqstream.pipeline.kafka.retry import is_transient

# The logger the data-loss warning has always had (it lived in ``source``).
log = logging.getLogger("seqstream.pipeline.kafka.source")

# How long the driver trusts the topics and partition counts it looked up (Kafka clients'
# metadata.max.age.ms is 5 minutes; a new partition is picked up within this).
METADATA_MAX_AGE_S = 10.0


class Planner:
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
            return sorted(TopicPartition(t, p) for t, ps in opts.assigned.items() for p in ps)
        sizes = self.topics(fresh=fresh)
        if opts.strategy == "subscribe":
            topics = [t for t in opts.topics if t in sizes]
        else:
            topics = sorted(t for t in sizes if opts.matches(t))
        return [TopicPartition(t, p) for t in topics for p in range(sizes[t])]

    def existing(self, keys: Sequence[TopicPartition]) -> set[TopicPartition]:
        """Those of ``keys`` whose topic and partition exist on the cluster now."""
        sizes = self.topics(fresh=True)
        return {TopicPartition(t, p) for t, p in keys if p < sizes.get(t, 0)}

    def _per_topic(
        self,
        keys: Sequence[TopicPartition],
        lookup: Callable[[str, list[int]], Mapping[int, int]],
    ) -> Offsets:
        result: Offsets = {}
        for topic in sorted({t for t, _ in keys}):
            partitions = sorted(p for t, p in keys if t == topic)
            found = lookup(topic, partitions)
            result.update({TopicPartition(topic, p): found[p] for p in partitions})
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
        given = {
            TopicPartition(t, p): v for t, parts in spec.offsets.items() for p, v in parts.items()
        }
        missing = sorted(tuple(k) for k in set(keys) - set(given))  # printed as (topic, partition)
        unknown = sorted(tuple(k) for k in set(given) - set(keys))
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


def check_data_loss(
    options: SourceOptions,
    planner: Planner,
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
