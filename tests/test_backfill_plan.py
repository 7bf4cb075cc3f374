"""Backfill planning as pure functions: chunks, times, the stored plan (no broker, no Spark)."""

from __future__ import annotations

import pytest

from seqstream.pipeline.backfill.plan import (
    BackfillPlan,
    Request,
    check_replay,
    parse_time,
    split_chunks,
)
from seqstream.pipeline.backfill.progress import Progress
from seqstream.pipeline.errors import SeqstreamError
from seqstream.pipeline.kafka import PartitionRange, TopicPartition


def test_chunks_hold_every_offset_once_in_log_order() -> None:
    ranges = [
        PartitionRange("t", 0, 0, 10),
        PartitionRange("t", 1, 5, 8),
        PartitionRange("u", 0, 3, 3),
    ]
    chunks = split_chunks(ranges, 4)
    assert len(chunks) == 4  # 13 offsets in chunks of about 4
    for r in ranges:
        pieces = [
            c for chunk in chunks for c in chunk if (c.topic, c.partition) == (r.topic, r.partition)
        ]
        offsets = [o for piece in pieces for o in range(piece.start, piece.end)]
        assert offsets == list(range(r.start, r.end))  # once each, in order, chunk after chunk
    assert all(chunk for chunk in chunks)


def test_one_chunk_when_it_fits_and_an_empty_range_gives_one_empty_chunk() -> None:
    ranges = [PartitionRange("t", 0, 0, 10), PartitionRange("t", 1, 0, 10)]
    assert split_chunks(ranges, 1_000) == [ranges]
    assert split_chunks([PartitionRange("t", 0, 4, 4)], 10) == [[]]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, None),
        ("1700000000000", 1_700_000_000_000),
        ("-5", -5),
        ("2026-11-01T00:00:00Z", 1_793_491_200_000),
        ("2026-11-01T00:00:00", 1_793_491_200_000),  # no zone: UTC
        ("2026-11-01T01:00:00+01:00", 1_793_491_200_000),
    ],
)
def test_times_are_epoch_ms_or_iso_8601(text: str | None, expected: int | None) -> None:
    assert parse_time(text) == expected


def test_an_unreadable_time_says_what_is_accepted() -> None:
    with pytest.raises(
        SeqstreamError, match=r"a time must be epoch milliseconds or ISO-8601 .* got 'yesterday'"
    ):
        parse_time("yesterday")


def test_a_plan_round_trips_through_its_json() -> None:
    ranges = (PartitionRange("t", 0, 3, 10), PartitionRange("t", 1, 0, 0))
    plan = BackfillPlan(
        Request(["t"], start_time_ms=5, end_event_time_ms=9),
        ranges,
        {TopicPartition("t", 0): 1, TopicPartition("t", 1): 0},
        tuple((r,) for r in ranges),
        model="ab" * 32,
        outputs={"parquet_path": "/x", "output_topic": None},
        run_id="r1",
    )
    back = BackfillPlan.from_json(plan.to_json())
    assert back == plan
    assert isinstance(back.request, Request) and isinstance(back.ranges[0], PartitionRange)
    assert list(back.lows) == [("t", 0), ("t", 1)]


def test_a_plan_of_another_format_is_refused_with_what_to_do(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A progress folder planned by another seqstream (here the 0.1 layout, no format) is not
    guessed at: the message says to --restart or use another folder."""
    (tmp_path / "plan.json").write_text('{"request": {"topics": ["t"]}, "chunks": []}')
    with pytest.raises(SeqstreamError) as raised:
        Progress(tmp_path).plan()
    assert str(raised.value) == (
        f"{tmp_path} holds the progress of a backfill planned by another seqstream version, "
        "which this one cannot resume: pass --restart to discard it, or give this one its own "
        "--progress-dir (backfill.progress_dir)"
    )


def test_a_replay_over_the_budget_is_refused_naming_each_partition() -> None:
    plan = BackfillPlan(
        Request(["t"]),
        (PartitionRange("t", 0, 500, 600), PartitionRange("t", 1, 20, 30)),
        {TopicPartition("t", 0): 100, TopicPartition("t", 1): 0},
        (),
    )
    check_replay(plan, 400)  # 400 events before t-0's range: within
    with pytest.raises(SeqstreamError) as raised:
        check_replay(plan, 399)
    assert str(raised.value).startswith(
        "a carry model's backfill replays each partition from its earliest offset to rebuild "
        "every key's state, and t-0 [100, 500) is 400 events, over backfill.replay_max_events (399)"
    )
