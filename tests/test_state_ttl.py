"""Idle keys expire from the bucketed window state after ``stream.state_ttl_s``; a key with
recent events keeps its history; ``keys_in_state`` counts the keys held, not the buckets."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pyarrow.parquet as pq
import torch

from seqstream.model.artifact import DEMO_MODEL_DIR, load_artifact, save_artifact
from seqstream.model.network import SequenceModel
from seqstream.model.spec import WindowSpec
from seqstream.pipeline.kafka import open_producer, raise_for_failures
from seqstream.pipeline.stream import build_query

from helpers import run_until, settings_for

TTL_S = 4.0


def send(bootstrap: str, topic: str, keys: list[str], start_ts: int) -> None:
    producer = open_producer(bootstrap)
    for i, key in enumerate(keys):
        body = {"key": key, "ts": start_ts + i, "value": float(i)}
        producer.send(topic, json.dumps(body).encode(), key=key.encode(), partition=0)
    raise_for_failures(producer.flush(30), topic)
    producer.close()


def model_with_short_windows(folder: Path) -> str:
    """The demo model's shape with windows of up to 8 events, all but the first scored."""
    spec = load_artifact(DEMO_MODEL_DIR).spec
    spec = spec.model_copy(
        update={"window": WindowSpec(length=8, min_length=2), "version": "short-windows"}
    )
    torch.manual_seed(0)
    save_artifact(SequenceModel(spec.lstm, spec.head), spec, folder)
    return str(folder)


def window_lengths(folder: Path) -> dict[str, list[int]]:
    rows = sorted(
        pq.read_table(folder / "scores").to_pylist() if (folder / "scores").exists() else [],
        key=lambda r: r["offset"],
    )
    lengths: dict[str, list[int]] = {}
    for row in rows:
        lengths.setdefault(row["key"], []).append(row["window_length"])
    return lengths


def test_idle_keys_expire_and_busy_ones_keep_their_history(
    spark, bootstrap_servers: str, new_topic, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    topic = new_topic(partitions=1)
    model = model_with_short_windows(tmp_path / "model")
    settings = settings_for(
        tmp_path, topic, bootstrap_servers, state_ttl_s=TTL_S, state_buckets=2, model=model
    )
    keys = [f"key-{i}" for i in range(8)]

    send(bootstrap_servers, topic, keys * 3, 0)  # 8 keys, 3 events each
    first = run_until(spark, settings, bootstrap_servers, 24)
    assert first[-1].keys_in_state == 8
    assert window_lengths(tmp_path) == {key: [2, 3] for key in keys}  # length 1: not scored
    time.sleep(TTL_S + 1)

    # Two keys come back after the TTL: their histories start again (key-0's second event
    # continues the new one); the other six expired, bucket-mates of the two or not.
    send(bootstrap_servers, topic, [keys[0], keys[1], keys[0]], 100)
    second = run_until(spark, settings, bootstrap_servers, 3)
    assert second[-1].keys_in_state == 2
    assert sum(m.keys_expired for m in first) == 0
    assert sum(m.keys_expired for m in second) == 8  # each expired key counted once
    assert sum(m.not_yet_scoreable for m in second) == 2  # key-0's and key-1's first events

    lengths = window_lengths(tmp_path)
    assert lengths.pop("key-0") == [2, 3, 2]  # without expiry: [2, 3, 4, 5]
    assert lengths.pop("key-1") == [2, 3]  # its new first event is too short to score
    assert lengths == {key: [2, 3] for key in keys[2:]}


def batches_run(query) -> int:  # type: ignore[no-untyped-def]
    """Micro-batches the query has run (an idle trigger reports progress without ``addBatch``)."""
    return sum("addBatch" in p["durationMs"] for p in query.recentProgress)


def test_an_idle_job_runs_no_batches_and_expires_keys_in_its_next_batch(
    spark, bootstrap_servers: str, new_topic, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """Per-event mode runs no micro-batch without data (trigger "0 seconds" would run them back
    to back, keeping the cores busy), and idle keys still expire in the next batch with data."""
    topic = new_topic(partitions=1)
    model = model_with_short_windows(tmp_path / "model")
    settings = settings_for(
        tmp_path, topic, bootstrap_servers, state_ttl_s=TTL_S, state_buckets=2, model=model
    )
    keys = [f"key-{i}" for i in range(8)]
    send(bootstrap_servers, topic, keys * 3, 0)
    query, metrics = build_query(spark, settings, bootstrap_servers)

    def accounted(events: int) -> None:
        deadline = time.monotonic() + 120
        while sum(m.events_in for m in metrics.history) < events:
            assert query.isActive and time.monotonic() < deadline
            time.sleep(0.1)

    try:
        accounted(24)
        ran = batches_run(query)
        time.sleep(TTL_S + 1)  # idle past the TTL
        assert batches_run(query) == ran
        send(bootstrap_servers, topic, [keys[0]], 100)
        accounted(25)
    finally:
        query.stop()
        metrics.close()
    last = metrics.history[-1]
    assert (last.events_in, last.keys_expired, last.keys_in_state) == (1, 8, 1)
    assert last.not_yet_scoreable == 1  # key-0's history starts again
