"""What a user sees on the console while the streaming job runs: its own log lines, and none of
Spark's per-key state warnings or py4j's connection chatter."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from seqstream.pipeline.kafka import open_producer, raise_for_failures

from helpers import REPO

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
