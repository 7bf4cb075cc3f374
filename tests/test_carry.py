"""Carry models end to end: the stream (across micro-batches, a SIGKILL mid-batch and a graceful
restart) and the backfill (the whole topic, and a sub-range that replays each key's state) give
every row the score of docs/models.md's torch-only reference, one ``nn.LSTM`` call over the key's whole
history, on real NAB series of two scales."""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from seqstream.model.artifact import DEMO_CARRY_MODEL_DIR
from seqstream.pipeline.backfill.plan import Request
from seqstream.pipeline.backfill.run import run_backfill
from seqstream.pipeline.config import EventSchema, load_settings
from seqstream.pipeline.errors import SeqstreamError
from seqstream.pipeline.kafka import open_producer
from seqstream.pipeline.sources.events import Event, Message, event_message
from seqstream.pipeline.sources.producer import produce_messages
from seqstream.pipeline.sources.replay import MALFORMED_KINDS, _malformed_value, interleave
from seqstream.pipeline.sources.series import demo_series_files, read_series_csv
from seqstream.pipeline.stream import committed_offsets

from checkpoints import sigkill_mid_batch, start_stream_job
from helpers import log_of, run_until, settings_for, standalone_loader

EVENTS_PER_KEY = 240
MAX_PER_TRIGGER = 150
MODEL = str(DEMO_CARRY_MODEL_DIR)


@pytest.fixture(scope="session")
def carry_reference():  # type: ignore[no-untyped-def]
    """docs/models.md's torch-only carry reference over a key's whole history, for the carry demo model."""
    namespace: dict = {}
    exec(standalone_loader(), namespace)  # noqa: S102 - our own docs' snippets
    exec(standalone_loader("standalone-carry"), namespace)  # noqa: S102
    config, lstm, head = namespace["load_seqstream_model"](MODEL)
    return lambda events: namespace["carry_forecast_scores"](config, lstm, head, events)


def nab_messages() -> list[Message]:
    """The bundled NAB series' first events (CPU %), one of them also as a key of another scale
    (x 1000 + 15000, like a taxi count), with a malformed message after every 37th event."""
    schema = EventSchema()
    series = [read_series_csv(p, schema)[:EVENTS_PER_KEY] for p in demo_series_files()]
    series.append(
        [
            Event("scaled-" + e.key, e.ts_ms, tuple(v * 1000 + 15000 for v in e.features))
            for e in series[0]
        ]
    )
    messages = []
    for i, event in enumerate(interleave(series)):
        messages.append(event_message(event, schema))
        if i % 37 == 36:
            kind = MALFORMED_KINDS[i % len(MALFORMED_KINDS)]
            messages.append(Message(event.key, _malformed_value(kind, event, schema), None))
    return messages


@pytest.fixture(scope="module")
def carry_topic(bootstrap_servers, admin):  # type: ignore[no-untyped-def]
    topic = f"carry-{uuid.uuid4().hex[:10]}"
    admin.create_topic(topic, 3)
    messages = nab_messages()
    producer = open_producer(bootstrap_servers)
    produce_messages(messages, producer, topic)
    producer.close()
    yield topic, log_of(bootstrap_servers, topic, admin, messages)
    admin.delete_topic(topic)


def expected_scores(log, reference) -> dict[tuple[int, int], tuple[float, int]]:  # type: ignore[no-untyped-def]
    """(partition, offset) -> (reference score, the event's position in its key's history)."""
    history: dict[str, list[tuple[tuple[int, int], tuple[float, ...]]]] = defaultdict(list)
    for position in sorted(log):  # a key lives in one partition: offset order is its log order
        message = log[position]
        if message.event is not None:
            history[message.key].append((position, message.event.features))
    expected = {}
    for events in history.values():
        scores = reference(np.asarray([f for _, f in events], np.float32))
        for i, ((position, _), score) in enumerate(zip(events, scores, strict=True)):
            if not np.isnan(score):
                expected[position] = (float(score), i + 1)
    return expected


def rows_by_position(path: Path) -> dict[tuple[int, int], dict]:
    rows = pq.read_table(path).to_pylist() if path.exists() else []
    positions = [(r["partition"], r["offset"]) for r in rows]
    assert len(positions) == len(set(positions)), "a row was written twice"
    return dict(zip(positions, rows, strict=True))


def assert_exact(rows: dict, expected: dict, *, version: str) -> None:
    assert set(rows) == set(expected), "scored events differ from the reference's"
    worst = 0.0
    for position, row in rows.items():
        score, count = expected[position]
        assert row["window_length"] == count  # the events the score has read
        assert row["model_version"] == version
        # The documented bound: 1e-5 relative, and 1e-5 absolute below 1 (a score is in units of a
        # typical forecast error, and one near 0 is a difference of nearby float32 numbers)
        worst = max(worst, abs(row["score"] - score) / max(abs(score), 1.0))
    assert worst < 1e-5, f"largest score difference {worst} (relative, absolute below 1)"


@pytest.fixture(scope="module")
def carry_streamed(spark, bootstrap_servers, carry_topic, tmp_path_factory):  # type: ignore[no-untyped-def]
    """The streaming job over the whole topic with a carry model: SIGKILLed in micro-batch 2,
    restarted and stopped gracefully part-way, then restarted to the end."""
    topic, log = carry_topic
    folder = tmp_path_factory.mktemp("carry-stream")
    settings = settings_for(folder, topic, bootstrap_servers, model=MODEL)
    sets = [
        f"kafka.bootstrap_servers={bootstrap_servers}",
        f"stream.topics=[{topic}]",
        f"stream.model={MODEL}",
        f"stream.checkpoint={folder / 'cp'}",
        f"stream.parquet_path={folder / 'scores'}",
        f"stream.dead_letter_path={folder / 'dead'}",
        f"stream.max_offsets_per_trigger={MAX_PER_TRIGGER}",
        "stream.trigger_interval=0 seconds",
    ]
    child = start_stream_job(sets)
    sigkill_mid_batch(child, folder / "cp", batch=2, timeout_s=240)
    history = []

    def left() -> int:
        done = committed_offsets(folder / "cp").get(topic, {})
        ends: dict[int, int] = {}
        for partition, offset in log:
            ends[partition] = max(ends.get(partition, 0), offset + 1)
        return sum(end - int(done.get(str(p), 0)) for p, end in ends.items())

    history += run_until(spark, settings, bootstrap_servers, left(), stop_after=2 * MAX_PER_TRIGGER)
    history += run_until(spark, settings, bootstrap_servers, left())
    return topic, log, folder, history


def test_the_stream_scores_every_event_from_its_keys_whole_history(
    carry_streamed, carry_reference
) -> None:
    topic, log, folder, history = carry_streamed
    expected = expected_scores(log, carry_reference)
    assert_exact(rows_by_position(folder / "scores"), expected, version="nab-cpu-carry-2")
    dead = rows_by_position(folder / "dead")
    assert set(dead) == {p for p, m in log.items() if m.event is None}
    keys = {m.key for m in log.values() if m.event is not None}
    assert len(history) >= 4 and max(m.events_in for m in history) <= MAX_PER_TRIGGER
    assert history[-1].keys_in_state == len(keys)


def backfill_settings(folder: Path, topic: str, bootstrap: str, **backfill):  # type: ignore[no-untyped-def]
    return load_settings(
        None,
        {
            "kafka": {"bootstrap_servers": bootstrap},
            "stream": {"topics": [topic], "model": MODEL},
            "backfill": {
                "parquet_path": str(folder / "scores"),
                "dead_letter_path": str(folder / "dead"),
                "chunk_events": 300,
                "progress_dir": str(folder / "progress"),
                **backfill,
            },
        },
    )


def test_a_backfill_of_the_whole_topic_equals_the_stream(
    spark, bootstrap_servers, carry_streamed, carry_reference, tmp_path
) -> None:
    topic, log, folder, _ = carry_streamed
    settings = backfill_settings(tmp_path, topic, bootstrap_servers)
    counts = run_backfill(spark, settings, bootstrap_servers, Request([topic]))
    assert len(counts) >= 3 and sum(c.events_in for c in counts) == len(log)
    got = rows_by_position(tmp_path / "scores")
    assert_exact(got, expected_scores(log, carry_reference), version="nab-cpu-carry-2")
    stream = rows_by_position(folder / "scores")
    assert max(abs(got[p]["score"] - stream[p]["score"]) for p in got) < 1e-5


def test_a_sub_range_replays_each_keys_state_and_equals_the_stream(
    spark, bootstrap_servers, carry_streamed, carry_reference, tmp_path, caplog
) -> None:
    topic, log, _, _ = carry_streamed
    ends = dict.fromkeys(range(3), 0)
    for partition, offset in log:
        ends[partition] = max(ends[partition], offset + 1)
    starts = {p: end * 2 // 3 for p, end in ends.items()}
    request = Request(
        [topic], starting_offsets=json.dumps({topic: {str(p): o for p, o in starts.items()}})
    )
    caplog.set_level("INFO", logger="seqstream.backfill")
    counts = run_backfill(
        spark, backfill_settings(tmp_path, topic, bootstrap_servers), bootstrap_servers, request
    )
    in_range = {p for p in log if p[1] >= starts[p[0]]}
    assert sum(c.events_in for c in counts) == len(in_range)
    assert sum(c.not_yet_scoreable for c in counts) == 0  # every key's state was replayed
    expected = {p: v for p, v in expected_scores(log, carry_reference).items() if p in in_range}
    assert_exact(rows_by_position(tmp_path / "scores"), expected, version="nab-cpu-carry-2")
    replayed = sum(starts.values())
    assert f"/{replayed} events before the range (nothing written)" in caplog.text


def test_a_replay_over_the_budget_is_refused_with_what_it_would_take(
    spark, bootstrap_servers, carry_topic, tmp_path
) -> None:
    topic, log = carry_topic
    busiest = max(range(3), key=lambda p: sum(1 for q, _ in log if q == p))
    offsets = {str(p): 100 if p == busiest else 0 for p in range(3)}
    request = Request([topic], starting_offsets=json.dumps({topic: offsets}))
    settings = backfill_settings(tmp_path, topic, bootstrap_servers, replay_max_events=99)
    with pytest.raises(SeqstreamError) as error:
        run_backfill(spark, settings, bootstrap_servers, request)
    assert str(error.value) == (
        "a carry model's backfill replays each partition from its earliest offset to rebuild "
        f"every key's state, and {topic}-{busiest} [0, 100) is 100 events, over "
        "backfill.replay_max_events (99): raise it, or start the range at the earliest offsets "
        "(--starting-offsets earliest)"
    )
    assert not (tmp_path / "scores").exists() and not (tmp_path / "progress").exists()
