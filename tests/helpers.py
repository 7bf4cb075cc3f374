"""Helpers shared by the test modules (plain functions; the fixtures live in shared_fixtures.py)."""

from __future__ import annotations

import json
import os
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
from kafka import KafkaConsumer, TopicPartition

from seqstream.pipeline.config import load_settings
from seqstream.pipeline.kafka import TopicAdmin, open_producer, raise_for_failures
from seqstream.pipeline.stream import build_query, run_until_accounted

REPO = Path(__file__).resolve().parents[1]
SHARED_NAB = REPO.parent / "shared" / "data" / "nab"
_DEMO_WINDOW = json.loads((REPO / "model" / "demo_model" / "config.json").read_text())["window"]
MIN_LENGTH, LENGTH = _DEMO_WINDOW["min_length"], _DEMO_WINDOW["length"]  # the demo model's window


def standalone_loader(marker: str = "standalone-loader") -> str:
    """A Python block of docs/models.md, the one after ``<!-- marker -->``."""
    page = (REPO / "docs" / "models.md").read_text()
    block = page.split(f"<!-- {marker} -->", 1)[1]
    return block.split("```python\n", 1)[1].split("```", 1)[0]


def log_of(
    bootstrap: str, topic: str, admin: TopicAdmin, messages
) -> dict[tuple[int, int], object]:  # type: ignore[no-untyped-def]
    """(partition, offset) -> the Message produced there; per-key order maps log to messages."""
    ends = admin.end_offsets(topic)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, max_poll_records=100_000)
    consumer.assign([TopicPartition(topic, p) for p in ends])
    consumer.seek_to_beginning()
    records = []
    while len(records) < sum(ends.values()):
        for batch in consumer.poll(timeout_ms=1000).values():
            records.extend(batch)
    consumer.close()
    by_key = defaultdict(list)
    for m in messages:
        by_key[m.key].append(m)
    seen: dict[str, int] = defaultdict(int)
    log = {}
    for r in sorted(records, key=lambda r: (r.partition, r.offset)):
        key = r.key.decode()
        message = by_key[key][seen[key]]
        seen[key] += 1
        assert message.value == r.value
        log[(r.partition, r.offset)] = message
    return log


def expected_scores(log, reference_scorer) -> dict[tuple[int, int], float]:  # type: ignore[no-untyped-def]
    history: dict[str, list[float]] = defaultdict(list)
    expected = {}
    for position in sorted(log):  # a key lives in one partition: offset order is its log order
        message = log[position]
        if message.event is None:
            continue
        history[message.key].append(message.event.features)
        events = np.asarray(history[message.key][-LENGTH:], np.float32)
        if len(history[message.key]) >= MIN_LENGTH:
            expected[position] = reference_scorer(events)
    return expected


# Spark's own Kafka connector (the default, which set-up installs) and seqstream-kafka
CONNECTORS = ["jvm", "python"]


def settings_for(tmp_path: Path, topic: str, bootstrap: str, connector: str = "auto", **stream):  # type: ignore[no-untyped-def]
    return load_settings(
        None,
        {
            "kafka": {"bootstrap_servers": bootstrap, "connector": connector},
            "stream": {
                "topics": [topic],
                "checkpoint": str(tmp_path / "cp"),
                "parquet_path": str(tmp_path / "scores"),
                "dead_letter_path": str(tmp_path / "dead"),
                "max_offsets_per_trigger": 150,
                "trigger_interval": "0 seconds",
                **stream,
            },
        },
    )


def run_until(spark, settings, bootstrap: str, events: int, stop_after: int | None = None):  # type: ignore[no-untyped-def]
    """Run the job until ``events`` were accounted for (or ``stop_after``), then stop it gracefully."""
    query, metrics = build_query(spark, settings, bootstrap)
    run_until_accounted(
        query, metrics, stop_after or events, timeout_s=240, checkpoint=settings.stream.checkpoint
    )
    return metrics.history


def fill(
    bootstrap: str,
    topic: str,
    counts: dict[int, int],
    timestamps: dict[int, list[int]] | None = None,
) -> None:
    """``counts[p]`` records into partition p, value b"<topic>/<p>/<i>", in several batches."""
    producer = open_producer(bootstrap)
    for p, n in counts.items():
        for i in range(n):
            ts = timestamps[p][i] if timestamps else None
            producer.send(
                topic,
                f"{topic}/{p}/{i}".encode(),
                key=f"k{i % 7}".encode(),
                partition=p,
                timestamp_ms=ts,
            )
            if i % 250 == 249:
                producer.flush(30)
    raise_for_failures(producer.flush(30), topic)
    producer.close()


def stream_command(bootstrap: str, topic: str, folder: Path, *flags: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "seqstream.pipeline.cli",
        "stream",
        "--bootstrap-servers",
        bootstrap,
        "--topics",
        topic,
        "--checkpoint",
        str(folder / "cp"),
        "--parquet-path",
        str(folder / "scores"),
        "--dead-letter-path",
        str(folder / "dead"),
        *flags,
    ]


def environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("SEQSTREAM_")}


def no_stack_traces(lines: list[str]) -> bool:
    return not any(
        "Traceback" in line or line.lstrip().startswith(("at ", "Caused by:")) for line in lines
    )
