"""What a user sees on the console while the streaming job runs: its own log lines (a start-up
line, a line per micro-batch, a summary at the end), none of Spark's per-key state warnings or
py4j's connection chatter, and no Python or Java stack trace, also when stopped by SIGTERM."""

from __future__ import annotations

import json
import logging
import math
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from seqstream.pipeline.kafka import open_producer, raise_for_failures
from seqstream.pipeline.stream.stop_gate import StopGate, StopRequested

from helpers import REPO, environment, no_stack_traces, stream_command

KEYS = 300


def test_a_stream_run_prints_no_per_key_warnings_and_no_py4j_chatter(
    bootstrap_servers: str, new_topic, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    topic = new_topic(partitions=2)
    producer = open_producer(bootstrap_servers)
    for i in range(3 * KEYS):
        key = f"sensor-{i % KEYS}"
        body = {"key": key, "ts": i, "value": float(i % 7)}
        producer.send(topic, json.dumps(body).encode(), key=key.encode())
    raise_for_failures(producer.flush(30), topic)
    producer.close()
    run = subprocess.run(
        [
            sys.executable,
            str(REPO / "jobs" / "stream.py"),
            "--bootstrap-servers",
            bootstrap_servers,
            "--topics",
            topic,
            "--checkpoint",
            str(tmp_path / "cp"),
            "--parquet-path",
            str(tmp_path / "scores"),
            "--trigger-interval",
            "available-now",
            "--max-offsets-per-trigger",
            "300",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    console = (run.stdout + run.stderr).splitlines()
    assert run.returncode == 0, "\n".join(console[-20:])
    batches = [json.loads(line.split(": ", 1)[1]) for line in console if '"event": "batch"' in line]
    assert sum(b["events_in"] for b in batches) == 3 * KEYS  # it ran: every event came through
    assert batches[-1]["keys_in_state"] == KEYS
    assert [line for line in console if "doesn't contain key" in line] == []
    assert [line for line in console if "py4j" in line] == []
    assert [line for line in console if " INFO " in line and "seqstream" not in line] == []


def test_an_available_now_run_prints_a_start_line_its_batches_and_a_summary(
    bootstrap_servers, stream_topic, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    topic, log = stream_topic
    per_batch = math.ceil(len(log) / 10)
    done = subprocess.run(
        stream_command(
            bootstrap_servers,
            topic,
            tmp_path,
            "--trigger-interval",
            "available-now",
            "--max-offsets-per-trigger",
            str(per_batch),
            "--master",
            "local[1]",
            "--spark-ui",
            "--conf",
            "spark.ui.port=0",
        ),
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
        env=environment(),
    )
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert done.returncode == 0, "\n".join(lines[-40:])
    batches = [line for line in lines if '"event": "batch"' in line]
    # Spark's connector rounds each partition's share of the cap down: 10 or a few more batches
    assert 10 <= len(batches) <= 13
    start = [line for line in lines if f"streaming {topic} of " in line]
    # the default run: Apache Kafka (the embedded broker) through Spark's own connector
    assert len(start) == 1
    assert (
        f"streaming {topic} of Apache Kafka 4." in start[0]
        and f"(embedded) at {bootstrap_servers} through Spark's kafka connector from earliest, "
        "events mode"
        in start[0]
    )
    assert "; Spark local[1], UI http://" in start[0]  # --master, --spark-ui
    dead = sum(1 for m in log.values() if m.event is None)
    summary = [line for line in lines if "stream stopped after" in line]
    assert len(summary) == 1
    assert f"stream stopped after {len(batches)} micro-batch(es) with data" in summary[0]
    assert f"{len(log):,} events in" in summary[0] and f"{dead:,} dead-lettered" in summary[0]
    assert no_stack_traces(lines), "\n".join(lines)
    assert len(lines) < 30, "\n".join(lines)


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "ctrl-c"])
def test_sigterm_or_ctrl_c_stops_the_stream_with_a_summary_and_no_stack_trace(
    bootstrap_servers, stream_topic, tmp_path, stop_signal
) -> None:  # type: ignore[no-untyped-def]
    topic, log = stream_topic
    output = tmp_path / "console.txt"
    with output.open("w") as console:
        running = subprocess.Popen(
            stream_command(bootstrap_servers, topic, tmp_path, "--trigger-interval", "1 second"),
            stdout=console,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            env=environment(),
            text=True,
        )
        deadline = time.monotonic() + 300
        while '"event": "batch"' not in output.read_text():
            assert running.poll() is None, output.read_text()[-3000:]
            assert time.monotonic() < deadline, "no micro-batch in 300 s"
            time.sleep(0.2)
        time.sleep(2)  # a trigger or two with nothing new: the query waits between them
        running.send_signal(stop_signal)
        assert running.wait(timeout=300) == 0
    lines = [line for line in output.read_text().splitlines() if line.strip()]
    assert sum("stream stopped after" in line for line in lines) == 1
    assert f"{len(log):,} events in" in next(s for s in lines if "stream stopped after" in s)
    assert no_stack_traces(lines), "\n".join(lines)


def test_a_micro_batch_that_finds_the_stop_gate_closed_is_not_logged_as_an_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A stop can land between micro-batches just as Spark starts the next one; that batch ends
    the query with ``StopRequested``, which py4j would log with its traceback at ERROR. Any
    other exception from ``foreachBatch`` is still logged."""
    gate = StopGate()
    gated = gate.around(lambda batch, batch_id: None)
    gate.close(timeout_s=1.0)
    py4j = logging.getLogger("py4j.clientserver")
    for call in (lambda: gated(None, 7), lambda: 1 / 0):
        try:
            call()
        except Exception:  # as py4j's callback server catches a foreachBatch call's exception
            py4j.exception("There was an exception while executing the Python Proxy")
    reported = [r for r in caplog.records if r.name == "py4j.clientserver"]
    assert [type(r.exc_info[1]) for r in reported if r.exc_info] == [ZeroDivisionError]
    with pytest.raises(StopRequested):
        gated(None, 8)
