"""Backfill planning as pure functions: chunks and times (no broker, no Spark)."""

from __future__ import annotations

import pytest

from seqstream.pipeline.backfill.plan import parse_time, split_chunks
from seqstream.pipeline.errors import SeqstreamError
from seqstream.pipeline.kafka import PartitionRange


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
