"""What a backfill will do, decided before anything is read: the request, its offset ranges
resolved against what the broker holds, the chunks, and the outputs checked.

A range is given as Spark's Kafka options give one (``earliest``/``latest`` or per-partition JSON
``{"topic": {"0": 23, "1": -2}}`` with -2 earliest and -1 latest) or as start/end times (epoch
ms: the first offset whose record timestamp is at or after). Everything is checked against the
log's real bounds before a record is read, and large ranges are cut into chunks.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from seqstream.pipeline.bootstrap import kafka_admin
from seqstream.pipeline.config import Settings
from seqstream.pipeline.errors import SeqstreamError
from seqstream.pipeline.kafka import EARLIEST, LATEST, PartitionRange, TopicAdmin, TopicPartition
from seqstream.pipeline.kafka.offsets import parse_positions
from seqstream.pipeline.sinks.outputs import (
    NO_DEAD_LETTER_OUTPUT,
    check_delivery,
    check_folder,
    check_owner,
)

# How the backfill marks its Parquet folders (``outputs.OUTPUT_MARKER``).
BACKFILL_OWNER = {"job": "backfill"}

# Where a backfill keeps its progress unless backfill.progress_dir names a folder: one folder
# per request under it.
DEFAULT_PROGRESS_ROOT = Path(".seqstream/backfill")


@dataclass(frozen=True)
class Request:
    """What the user asked for; a re-run with the same request resumes the same plan."""

    topics: list[str]
    starting_offsets: str = "earliest"
    ending_offsets: str = "latest"
    start_time_ms: int | None = None
    end_time_ms: int | None = None
    # Of the range read, write only the events whose event time (events.time_field) is in
    # [start_event_time_ms, end_event_time_ms); the others are read for their windows and counted.
    start_event_time_ms: int | None = None
    end_event_time_ms: int | None = None


# The plan.json layout this version writes and resumes; a progress folder of another is refused.
PLAN_FORMAT = 2


@dataclass(frozen=True)
class BackfillPlan:
    """The request resolved against the broker, stored as ``plan.json`` before the first chunk
    and read back to resume: each partition's range and earliest offset (``lows``), the chunks,
    and what the run is bound to (the model's sha256, the outputs, the run id that names its
    exactly-once Kafka transactions)."""

    request: Request
    ranges: tuple[PartitionRange, ...]
    lows: dict[TopicPartition, int]
    chunks: tuple[tuple[PartitionRange, ...], ...]
    model: str = ""
    outputs: dict[str, str | None] = field(default_factory=dict)
    run_id: str = ""

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": PLAN_FORMAT,
                "request": asdict(self.request),
                "ranges": [asdict(r) for r in self.ranges],
                "lows": [
                    {"topic": t, "partition": p, "offset": o} for (t, p), o in self.lows.items()
                ],
                "chunks": [[asdict(r) for r in chunk] for chunk in self.chunks],
                "model": self.model,
                "outputs": self.outputs,
                "run_id": self.run_id,
            },
            indent=1,
        )

    @classmethod
    def from_json(cls, text: str) -> BackfillPlan:
        """The plan ``to_json`` wrote; ValueError for one of another format."""
        raw = json.loads(text)
        if not isinstance(raw, dict) or raw.get("format") != PLAN_FORMAT:
            raise ValueError(f"plan format {raw.get('format') if isinstance(raw, dict) else None}")
        return cls(
            request=Request(**raw["request"]),
            ranges=tuple(PartitionRange(**r) for r in raw["ranges"]),
            lows={TopicPartition(x["topic"], x["partition"]): x["offset"] for x in raw["lows"]},
            chunks=tuple(tuple(PartitionRange(**r) for r in chunk) for chunk in raw["chunks"]),
            model=raw["model"],
            outputs=raw["outputs"],
            run_id=raw["run_id"],
        )

    @property
    def events(self) -> int:
        return sum(r.events for r in self.ranges)

    def replay(self, budget: int | None = None) -> list[tuple[PartitionRange, int]]:
        """Each non-empty range with the events before it back to its partition's earliest
        offset (what a model whose state stands for a key's whole history replays), those over
        ``budget`` only if one is given."""
        before = [(r, r.start - self.lows.get(r.topic_partition, r.start)) for r in self.ranges]
        return [(r, n) for r, n in before if r.events and (budget is None or n > budget)]


def _positions(spec: str, side: str, topic: str, partitions: list[int]) -> dict[int, int]:
    """Per partition: an offset, EARLIEST or LATEST, from ``earliest``/``latest`` or JSON."""
    try:
        per_topic = parse_positions(spec)
    except ValueError:
        raise SeqstreamError(
            f'{side} must be earliest, latest or JSON like {{"topic":{{"0":23,"1":-2}}}}, got {spec!r}'
        ) from None
    if isinstance(per_topic, str):
        return dict.fromkeys(partitions, EARLIEST if per_topic == "earliest" else LATEST)
    if topic not in per_topic:
        raise SeqstreamError(f"{side} {spec} names no offsets for topic {topic!r}")
    missing = sorted(set(partitions) - set(per_topic[topic]))
    if missing:
        raise SeqstreamError(
            f"{side} gives no offset for {topic} partition(s) {missing}: give one for "
            "every partition (-2 earliest, -1 latest)"
        )
    unknown = sorted(set(per_topic[topic]) - set(partitions))
    if unknown:
        raise SeqstreamError(
            f"{side} names {topic} partition(s) {unknown}, which do not exist ({len(partitions)} partitions)"
        )
    return per_topic[topic]


def resolve_ranges(
    admin: TopicAdmin,
    topics: list[str],
    *,
    starting: str = "earliest",
    ending: str = "latest",
    start_time_ms: int | None = None,
    end_time_ms: int | None = None,
) -> list[PartitionRange]:
    """Every partition's [start, end) in offsets the broker holds now, or a precise error."""
    if start_time_ms is not None and end_time_ms is not None and end_time_ms < start_time_ms:
        raise SeqstreamError(
            f"the end time ({end_time_ms}) is before the start time ({start_time_ms})"
        )
    ranges = []
    for topic in topics:
        partitions = list(
            range(admin.describe_topic(topic).partitions)
        )  # unknown topic: TopicError
        lows, highs = admin.beginning_offsets(topic), admin.end_offsets(topic)
        starts = (
            admin.offsets_for_times(topic, start_time_ms)
            if start_time_ms is not None
            else _positions(starting, "the start (startingOffsets)", topic, partitions)
        )
        ends = (
            admin.offsets_for_times(topic, end_time_ms)
            if end_time_ms is not None
            else _positions(ending, "the end (endingOffsets)", topic, partitions)
        )
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
                raise SeqstreamError(
                    f"the range ends at offset {end} of {name}, past its end ({high}): end at {high} or 'latest'"
                )
            if end < start:
                raise SeqstreamError(
                    f"the range of {name} ends (offset {end}) before it starts (offset {start})"
                )
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


def plan_backfill(settings: Settings, bootstrap: str, request: Request) -> BackfillPlan:
    """Resolve the request against the broker: ranges, chunks and each partition's first offset
    (the model, outputs and run id are the caller's to add)."""
    low, high = request.start_event_time_ms, request.end_event_time_ms
    if low is not None and high is not None and high <= low:
        raise SeqstreamError(
            f"the end event time ({high}) is not after the start event time ({low}): no event "
            "could be written"
        )
    with kafka_admin(settings, bootstrap) as admin:
        ranges = resolve_ranges(
            admin,
            request.topics,
            starting=request.starting_offsets,
            ending=request.ending_offsets,
            start_time_ms=request.start_time_ms,
            end_time_ms=request.end_time_ms,
        )
        lows = {
            TopicPartition(t, p): o
            for t in request.topics
            for p, o in admin.beginning_offsets(t).items()
        }
    chunks = split_chunks(ranges, settings.backfill.chunk_events)
    return BackfillPlan(request, tuple(ranges), lows, tuple(tuple(c) for c in chunks))


def _time(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat().replace("+00:00", "Z")


def describe_request(request: Request) -> str:
    """One line for a request."""
    start = (
        f"record time {_time(request.start_time_ms)}"
        if request.start_time_ms is not None
        else f"offsets {request.starting_offsets}"
    )
    end = (
        f"record time {_time(request.end_time_ms)}"
        if request.end_time_ms is not None
        else f"offsets {request.ending_offsets}"
    )
    described = f"topics {', '.join(request.topics)} from {start} to {end}"
    low, high = request.start_event_time_ms, request.end_event_time_ms
    if low is not None or high is not None:
        described += (
            f", writing events of event time {_time(low) if low is not None else 'any'} to "
            f"{_time(high) if high is not None else 'any'}"
        )
    return described


def describe_plan(
    plan: BackfillPlan,
    settings: Settings,
    *,
    progress: Path,
    model: str,
    resumed: int = 0,
    history: int | None = 0,
) -> str:
    """What ``--dry-run`` prints: the request with its times resolved, every range, what is read
    before it (``history``: the events a key's state stands for; None for all, replayed), the
    model, the outputs and the progress folder."""
    b = settings.backfill
    lines = [
        describe_request(plan.request),
        f"{'topic':<24} {'partition':>9} {'start':>12} {'end':>12} {'events':>12}",
    ]
    for r in plan.ranges:
        lines.append(f"{r.topic:<24} {r.partition:>9} {r.start:>12} {r.end:>12} {r.events:>12,}")
    replay = sum(n for _, n in plan.replay())
    before = (
        f"plus a replay of {replay:,} earlier events from each partition's earliest offset to "
        f"rebuild the carry model's state (backfill.replay_max_events {b.replay_max_events:,} "
        "per partition), nothing written"
        if history is None
        else "plus up to window length - 1 earlier events per key read as their state"
    )
    lines += [
        f"{plan.events:,} events (offsets) in {len(plan.chunks)} chunk(s) of about {b.chunk_events:,}; "
        + before,
        f"scores      -> parquet: {b.parquet_path or '-'}   kafka: {b.output_topic or '-'}",
        f"dead letters -> parquet: {b.dead_letter_path or '-'}   kafka: {b.dead_letter_topic or '-'}",
        f"model       -> {model}",
        f"progress    -> {progress}"
        + (f" (resumes after chunk {resumed} of {len(plan.chunks)})" if resumed else ""),
    ]
    if not (b.dead_letter_path or b.dead_letter_topic):
        lines.append(NO_DEAD_LETTER_OUTPUT.format(section="backfill"))
    return "\n".join(lines)


def check_sinks(settings: Settings) -> None:
    b, s = settings.backfill, settings.stream
    if not (b.parquet_path or b.output_topic):
        raise SeqstreamError("no output: set backfill.parquet_path and/or backfill.output_topic")
    for mine, theirs, name in (
        (b.parquet_path, s.parquet_path, "parquet_path"),
        (b.dead_letter_path, s.dead_letter_path, "dead_letter_path"),
    ):
        if (
            mine is not None
            and theirs is not None
            and Path(mine).resolve() == Path(theirs).resolve()
        ):
            raise SeqstreamError(
                f"backfill.{name} is stream.{name} ({mine}): give the backfill its own "
                "folder, both number their batch_id partitions from 0"
            )
    for name in ("parquet_path", "dead_letter_path", "progress_dir"):
        path = getattr(b, name)
        if path is not None:
            check_folder(path, f"backfill.{name}")
    for name in ("parquet_path", "dead_letter_path"):
        check_owner(getattr(b, name), f"backfill.{name}", BACKFILL_OWNER)
    check_delivery(settings, "backfill")


def parse_time(text: str | None) -> int | None:
    """Epoch milliseconds, or an ISO-8601 time (UTC when it names no zone)."""
    if text is None:
        return None
    if text.strip().lstrip("-").isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise SeqstreamError(
            f"a time must be epoch milliseconds or ISO-8601 (2026-11-01T00:00:00Z), got {text!r}"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp() * 1000)


def check_replay(plan: BackfillPlan, budget: int) -> None:
    """A model whose state stands for a key's whole history (a carry model) is backfilled by
    replaying each partition from its earliest offset to the range start: refuse, before
    anything runs, a replay over ``budget`` events in a partition."""
    over = plan.replay(budget)
    if over:
        raise SeqstreamError(
            "a carry model's backfill replays each partition from its earliest offset to "
            "rebuild every key's state, and "
            + ", ".join(
                f"{r.topic_partition} [{r.start - n}, {r.start}) is {n:,} events" for r, n in over
            )
            + f", over backfill.replay_max_events ({budget:,}): raise it, or start the "
            "range at the earliest offsets (--starting-offsets earliest)"
        )
