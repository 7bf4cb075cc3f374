"""The streaming job end to end: accounting, exact scores against an independent reference
across micro-batches, a graceful restart and a SIGKILL, and dead letters."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from seqstream.pipeline.config import load_settings
from seqstream.pipeline.kafka.admin import TopicAdmin
from seqstream.pipeline.stream import build_query

from checkpoints import sigkill_mid_batch, start_stream_job
from helpers import (
    CONNECTORS,
    MIN_LENGTH,
    expected_scores,
    run_until,
    settings_for,
)


def read_scores(path: Path) -> list[dict]:
    table = pq.read_table(path).to_pylist() if path.exists() else []
    return table


def check_output(tmp_path: Path, log, expected) -> None:  # type: ignore[no-untyped-def]
    scores = read_scores(tmp_path / "scores")
    positions = [(r["partition"], r["offset"]) for r in scores]
    assert len(positions) == len(set(positions)), "a score was written twice"
    assert set(positions) == set(expected), "scored events differ from the reference's"
    worst = max(abs(r["score"] - expected[(r["partition"], r["offset"])]) for r in scores)
    assert worst < 1e-5, f"largest score difference {worst}"
    assert {r["model_version"] for r in scores} == {"nab-cpu-forecast-2"}
    dead = read_scores(tmp_path / "dead")
    dead_positions = sorted((r["partition"], r["offset"]) for r in dead)
    assert dead_positions == sorted(p for p, m in log.items() if m.event is None)
    assert all(r["reason"] and r["value"] == log[(r["partition"], r["offset"])].value for r in dead)


@pytest.mark.parametrize("connector", CONNECTORS)
def test_every_event_accounted_and_scores_exact_across_batches_and_a_restart(
    spark, bootstrap_servers, topic_in_halves, reference_scorer, tmp_path, connector
) -> None:
    topic = topic_in_halves.topic
    settings = settings_for(
        tmp_path, topic, bootstrap_servers, connector, output_topic=f"{topic}-scores"
    )
    # The first run sees half the topic; the second, after a graceful stop, the rest: state must
    # carry over.
    first = run_until(spark, settings, bootstrap_servers, topic_in_halves.first)
    assert sum(c.events_in for c in first) == topic_in_halves.first
    log = topic_in_halves.produce_rest()
    expected = expected_scores(log, reference_scorer)
    # The checkpoint keeps its state partitions (and so where each key's state is) whatever the
    # setting says on restart.
    restarted = settings.model_copy(
        update={"stream": settings.stream.model_copy(update={"state_partitions": 3})}
    )
    second = run_until(spark, restarted, bootstrap_servers, len(log) - topic_in_halves.first)
    history = first + second
    assert len(history) >= 4 and max(c.events_in for c in history) <= 150
    assert sum(c.events_in for c in history) == len(log)
    assert sum(c.scored for c in history) == len(expected)
    assert sum(c.dead_lettered for c in history) == sum(1 for m in log.values() if m.event is None)
    assert sum(c.not_yet_scoreable for c in history) == 6 * (MIN_LENGTH - 1)
    check_batch_metrics(history, keys=6)
    check_output(tmp_path, log, expected)
    check_kafka_scores(bootstrap_servers, settings.stream.output_topic, log, expected)


def test_a_checkpoint_of_the_previous_bucket_layout_keeps_working(
    spark, bootstrap_servers, topic_in_halves, reference_scorer, tmp_path, monkeypatch
) -> None:
    """A checkpoint made by the version before state slots (state grouped by topic and partition
    only, ``buckets-v1``) goes on with its own grouping and its state: scores stay exact."""
    import seqstream.pipeline.stream.checkpoint as streaming
    from seqstream.pipeline.state.buckets import LEGACY_LAYOUT, STATE_LAYOUT

    settings = settings_for(tmp_path, topic_in_halves.topic, bootstrap_servers)
    with monkeypatch.context() as patched:  # the previous version, as far as the state goes
        patched.setattr(streaming, "STATE_LAYOUT", LEGACY_LAYOUT)
        first = run_until(spark, settings, bootstrap_servers, topic_in_halves.first)
    identity = tmp_path / "cp" / "seqstream.json"
    assert json.loads(identity.read_text())["state_layout"] == LEGACY_LAYOUT != STATE_LAYOUT
    assert sum(c.events_in for c in first) == topic_in_halves.first
    log = topic_in_halves.produce_rest()
    second = run_until(spark, settings, bootstrap_servers, len(log) - topic_in_halves.first)
    assert json.loads(identity.read_text())["state_layout"] == LEGACY_LAYOUT
    assert sum(c.events_in for c in first + second) == len(log)
    check_output(tmp_path, log, expected_scores(log, reference_scorer))


def check_batch_metrics(history, keys: int) -> None:  # type: ignore[no-untyped-def]
    """Per batch: one window per valid event, model batches that hold the scored windows, state
    for each key seen so far, latency from the Kafka timestamp to the batch's end."""
    for m in history:
        assert m.windows == m.events_in - m.dead_lettered and m.late == 0
        assert m.scored == 0 or (m.model_batches >= 1 and m.scoring_s > 0)
        assert m.model_batch_max <= 1024 and m.model_batches * m.model_batch_max >= m.scored
        assert 0 < m.keys_in_state <= keys
        assert m.scored == 0 or 0 <= m.latency_p50_ms <= m.latency_p99_ms
    assert history[-1].keys_in_state == keys


def test_prometheus_endpoint_serves_the_listener_totals(
    spark, bootstrap_servers, stream_topic, tmp_path
) -> None:
    import threading
    import urllib.request

    from seqstream.pipeline.stream import run_until_stopped

    topic, log = stream_topic
    query, metrics = build_query(
        spark, settings_for(tmp_path, topic, bootstrap_servers, metrics_port=0), bootstrap_servers
    )
    stop = threading.Event()
    try:
        deadline = time.monotonic() + 240
        while sum(m.events_in for m in metrics.history) < len(log) and time.monotonic() < deadline:
            time.sleep(0.2)
        page = (
            urllib.request.urlopen(f"http://127.0.0.1:{metrics.prometheus.port}/metrics")
            .read()
            .decode()
        )
    finally:
        stop.set()
        run_until_stopped(query, stop, metrics)
    served = {
        line.split(" ")[0]: float(line.split(" ")[1])
        for line in page.splitlines()
        if line.startswith("seqstream_")
    }
    # Events by outcome, each once; in per-event mode every windowed event ends one window.
    events = {
        outcome: served[f'seqstream_events_total{{outcome="{outcome}"}}']
        for outcome in ("windowed", "dead_lettered", "late")
    }
    assert sum(events.values()) == len(log)
    assert events["dead_lettered"] == sum(1 for m in log.values() if m.event is None)
    assert events["late"] == 0
    for outcome in ("scored", "not_yet_scoreable"):
        assert served[f'seqstream_windows_total{{outcome="{outcome}"}}'] == sum(
            getattr(m, outcome) for m in metrics.history
        )
    assert (
        events["windowed"]
        == served['seqstream_windows_total{outcome="scored"}']
        + served['seqstream_windows_total{outcome="not_yet_scoreable"}']
    )
    assert served["seqstream_keys_in_state"] == 6
    assert served["seqstream_model_batches_total"] == sum(m.model_batches for m in metrics.history)


def check_kafka_scores(bootstrap: str, topic: str, log, expected) -> None:  # type: ignore[no-untyped-def]
    """At least once, JSON, keyed by the event key; duplicates carry the same source position."""
    from seqstream.pipeline.kafka.reader import read_range

    with TopicAdmin(bootstrap) as admin:
        ends = admin.end_offsets(topic)
    seen = {}
    for record in read_range(bootstrap, topic, {p: (0, e) for p, e in ends.items()}):
        body = json.loads(record.value)
        position = (body["partition"], body["offset"])
        assert record.key.decode() == body["key"] == log[position].key
        seen[position] = body["score"]
    assert set(seen) == set(expected)
    assert max(abs(seen[p] - expected[p]) for p in seen) < 1e-5


@pytest.mark.parametrize("connector", CONNECTORS)
def test_sigkill_mid_batch_then_restart_loses_and_duplicates_nothing(
    spark, bootstrap_servers, stream_topic, reference_scorer, tmp_path, connector
) -> None:
    topic, log = stream_topic
    settings = settings_for(tmp_path, topic, bootstrap_servers, connector)
    sets = [
        f"kafka.bootstrap_servers={bootstrap_servers}",
        f"kafka.connector={connector}",
        f"stream.topics=[{topic}]",
        f"stream.checkpoint={tmp_path / 'cp'}",
        f"stream.parquet_path={tmp_path / 'scores'}",
        f"stream.dead_letter_path={tmp_path / 'dead'}",
        "stream.max_offsets_per_trigger=150",
        "stream.trigger_interval=0 seconds",
    ]
    child = start_stream_job(sets)
    checkpoint = tmp_path / "cp"
    sigkill_mid_batch(child, checkpoint, batch=2, timeout_s=240)
    done = len(list((checkpoint / "commits").glob("[0-9]*")))
    rerun = run_until(spark, settings, bootstrap_servers, len(log) - 150 * done)
    assert rerun and rerun[0].batch_id == 2  # the killed batch is re-run first
    check_output(tmp_path, log, expected_scores(log, reference_scorer))


def test_model_that_does_not_fit_the_events_fails_before_reading(
    spark, bootstrap_servers, tmp_path
) -> None:
    settings = load_settings(
        None,
        {
            "events": {"features": ["cpu", "mem"]},
            "stream": {"checkpoint": str(tmp_path / "cp"), "parquet_path": str(tmp_path / "s")},
        },
    )
    from seqstream.pipeline.errors import SeqstreamError

    with pytest.raises(
        SeqstreamError, match=r"reads features \['value'\], but events.features is \['cpu', 'mem'\]"
    ):
        build_query(spark, settings, bootstrap_servers)
    assert not (tmp_path / "cp").exists()
    with pytest.raises(SeqstreamError, match="stream.checkpoint is required"):
        build_query(
            spark,
            load_settings(None, {"stream": {"parquet_path": str(tmp_path / "s")}}),
            bootstrap_servers,
        )


def test_without_a_dead_letter_output_the_stream_says_they_are_counted_only(
    spark, bootstrap_servers, stream_topic, tmp_path, caplog
) -> None:
    topic, log = stream_topic
    settings = settings_for(tmp_path, topic, bootstrap_servers, dead_letter_path=None)
    with caplog.at_level("WARNING", logger="seqstream.stream"):
        history = run_until(spark, settings, bootstrap_servers, len(log))
    assert sum(c.dead_lettered for c in history) == sum(1 for m in log.values() if m.event is None)
    assert [r.message for r in caplog.records if "dead-letter" in r.message] == [
        "no dead-letter output (stream.dead_letter_path / stream.dead_letter_topic): events that "
        "cannot be scored (malformed, wrong types, missing key) are only counted (dead_lettered), "
        "not written anywhere"
    ]
    assert not (tmp_path / "dead").exists()


def test_both_connectors_give_identical_rows_on_the_same_topic(
    spark, bootstrap_servers, stream_topic, reference_scorer, tmp_path
) -> None:
    """The same topic through Spark's connector and seqstream-kafka, each in the same
    micro-batches (one per run, as an available-now catch-up reads it): the same rows, dead
    letters and, bit for bit, the same scores; both exact against the reference."""
    topic, log = stream_topic
    expected = expected_scores(log, reference_scorer)
    rows = {}
    for connector in CONNECTORS:
        out = tmp_path / connector
        settings = settings_for(
            out,
            topic,
            bootstrap_servers,
            connector,
            max_offsets_per_trigger=None,
            trigger_interval="available-now",
        )
        history = run_until(spark, settings, bootstrap_servers, len(log))
        assert len(history) == 1 and history[0].events_in == len(log)
        check_output(out, log, expected)
        scores = read_scores(out / "scores")
        rows[connector] = {
            (r["partition"], r["offset"]): (r["key"], r["score"], r["window_length"])
            for r in scores
        }
        rows[connector, "dead"] = sorted(
            (r["partition"], r["offset"], r["reason"]) for r in read_scores(out / "dead")
        )
    assert rows["jvm"] == rows["python"]
    assert rows["jvm", "dead"] == rows["python", "dead"]
