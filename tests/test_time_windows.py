"""The streaming job's event-time mode: tumbling windows closed by the watermark, each scored once
from its last events in event-time order, equal to an independent reference; late events counted."""

from __future__ import annotations

import threading
import time
from collections import defaultdict

import numpy as np
import pyarrow.parquet as pq

from seqstream.pipeline.config import EventSchema
from seqstream.pipeline.kafka.producer import open_producer
from seqstream.pipeline.sources.events import Event, event_message
from seqstream.pipeline.sources.producer import produce_messages
from seqstream.pipeline.sources.replay import SyntheticSpec, synthetic_stream
from seqstream.pipeline.stream import build_query, run_until_stopped

from helpers import LENGTH, MIN_LENGTH, log_of, settings_for

WINDOW_MS = 10 * 60_000  # "10 minutes", tumbling, aligned to the epoch as Spark aligns them
WATERMARK_MS = 60_000


def expected_windows(log, reference_scorer) -> dict[tuple[str, int], float | None]:  # type: ignore[no-untyped-def]
    """(key, window end ms) -> score (None: too few events) for every window the watermark closed."""
    events = [(m.event, position) for position, m in log.items() if m.event is not None]
    watermark = max(e.ts_ms for e, _ in events) - WATERMARK_MS
    by_window: dict[tuple[str, int], list] = defaultdict(list)
    for event, position in events:
        by_window[(event.key, event.ts_ms - event.ts_ms % WINDOW_MS + WINDOW_MS)].append(
            (event.ts_ms, position, event.features)
        )
    expected = {}
    for (key, end), members in by_window.items():
        if end <= watermark:
            values = np.asarray([f for _, _, f in sorted(members)[-LENGTH:]], np.float32)
            expected[(key, end)] = reference_scorer(values) if len(values) >= MIN_LENGTH else None
    return expected


def windows_topic(  # type: ignore[no-untyped-def]
    name: str,
    spec: SyntheticSpec,
    bootstrap_servers: str,
    admin,
    reference_scorer,
    tmp_path,
    **stream,
):
    """A 3-partition topic holding ``spec``'s synthetic events: its name, its log, the windows the
    reference closes, and event-time settings for it (10-minute windows, 1-minute watermark)."""
    topic = f"{name}-{int(time.time() * 1000)}"
    admin.create_topic(topic, 3)
    messages = synthetic_stream(spec, EventSchema()).messages
    producer = open_producer(bootstrap_servers)
    produce_messages(messages, producer, topic)
    producer.close()
    log = log_of(bootstrap_servers, topic, admin, messages)
    settings = settings_for(
        tmp_path,
        topic,
        bootstrap_servers,
        mode="time",
        time_window="10 minutes",
        watermark="1 minute",
        max_offsets_per_trigger=100_000,
        **stream,
    )
    return topic, log, expected_windows(log, reference_scorer), settings


def run_until_windows(spark, settings, bootstrap: str, windows: int, events: int):  # type: ignore[no-untyped-def]
    query, metrics = build_query(spark, settings, bootstrap)
    stop = threading.Event()
    deadline = time.monotonic() + 240
    while (
        (
            sum(m.windows for m in metrics.history) < windows
            or sum(m.events_in for m in metrics.history) < events
        )
        and query.isActive
        and time.monotonic() < deadline
    ):
        time.sleep(0.2)
    stop.set()
    run_until_stopped(query, stop, metrics)
    return metrics.history


def test_event_time_windows_score_each_closed_window_once_like_the_reference(
    spark, bootstrap_servers, admin, reference_scorer, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    spec = SyntheticSpec(
        keys=4, events_per_key=90, step_ms=45_000, late_rate=0.05, malformed_rate=0.03, seed=7
    )
    topic, log, expected, settings = windows_topic(
        "time", spec, bootstrap_servers, admin, reference_scorer, tmp_path
    )
    history = run_until_windows(spark, settings, bootstrap_servers, len(expected), len(log))
    assert sum(m.windows for m in history) == len(expected)
    assert sum(m.scored for m in history) == sum(1 for s in expected.values() if s is not None)
    assert sum(m.dead_lettered for m in history) == sum(1 for m in log.values() if m.event is None)
    assert (
        sum(m.late for m in history) == 0
    )  # one micro-batch of data: nothing behind the watermark yet
    rows = pq.read_table(tmp_path / "scores").to_pylist()
    got = {(r["key"], int(r["event_time"].timestamp() * 1000)): r for r in rows}
    assert len(got) == len(rows), "a window was scored twice"
    assert set(got) == {w for w, s in expected.items() if s is not None}
    assert max(abs(r["score"] - expected[w]) for w, r in got.items()) < 1e-5

    # Every valid event entered its window (none was behind the watermark when it was read).
    assert sum(m.windowed for m in history) == sum(1 for m in log.values() if m.event is not None)

    # Five events of one key and window, behind the watermark, sent together after it moved:
    # each is dropped and counted (Spark's window aggregation alone would count one late group).
    oldest = min(m.event.ts_ms for m in log.values() if m.event is not None)
    late = [event_message(Event("key-0", oldest + i, (1.0,)), EventSchema()) for i in range(5)]
    producer = open_producer(bootstrap_servers)
    produce_messages(late, producer, topic)
    producer.close()
    again = run_until_windows(spark, settings, bootstrap_servers, 0, 5)
    assert sum(m.events_in for m in again) == 5 and sum(m.late for m in again) == 5
    assert sum(m.windowed for m in again) == 0 and sum(m.windows for m in again) == 0
    admin.delete_topic(topic)


def test_an_available_now_run_scores_the_windows_the_watermark_closed_and_keeps_the_open_ones(
    spark, bootstrap_servers, admin, reference_scorer, tmp_path, caplog
) -> None:  # type: ignore[no-untyped-def]
    spec = SyntheticSpec(keys=4, events_per_key=80, step_ms=45_000, malformed_rate=0.03, seed=11)
    topic, log, expected, settings = windows_topic(
        "time-now",
        spec,
        bootstrap_servers,
        admin,
        reference_scorer,
        tmp_path,
        trigger_interval="available-now",
    )

    def run():  # type: ignore[no-untyped-def]
        query, metrics = build_query(spark, settings, bootstrap_servers)
        run_until_stopped(query, threading.Event(), metrics)  # the run ends by itself
        assert not query.isActive
        return metrics.history

    history = run()
    assert sum(m.events_in for m in history) == len(log)
    assert sum(m.windows for m in history) == len(expected)
    rows = pq.read_table(tmp_path / "scores").to_pylist()
    got = {(r["key"], int(r["event_time"].timestamp() * 1000)): r["score"] for r in rows}
    assert set(got) == {w for w, s in expected.items() if s is not None}
    assert max(abs(score - expected[w]) for w, score in got.items()) < 1e-5
    # The windows still open wait in state, counted as windows (keys are not counted here).
    open_at_end = {
        (e.key, e.ts_ms - e.ts_ms % WINDOW_MS + WINDOW_MS)
        for e in (m.event for m in log.values())
        if e is not None
    } - set(expected)
    assert history[-1].windows_in_state == len(open_at_end) > 0
    assert history[-1].keys_in_state is None
    # A run with nothing new ends at once, scores nothing and has no batch to wait for.
    with caplog.at_level("WARNING", logger="seqstream"):
        assert run() == []
    assert not [r.message for r in caplog.records if "never reached" in r.message]
    admin.delete_topic(topic)
