"""Hot model swap: ``stream.model`` names a folder of versions; new ones are picked up between
micro-batches of a running query, an invalid one is refused while scoring goes on."""

from __future__ import annotations

import shutil
import threading
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from seqstream.model.artifact import DEMO_MODEL_DIR, WEIGHTS_FILE, load_artifact, save_artifact
from seqstream.pipeline.config import EventSchema
from seqstream.pipeline.kafka import open_producer
from seqstream.pipeline.scoring.model_versions import ModelVersions, check_model, current_artifact
from seqstream.pipeline.scoring.worker import MODEL_PROPERTY
from seqstream.pipeline.sources.producer import produce_messages
from seqstream.pipeline.sources.replay import SyntheticSpec, synthetic_stream
from seqstream.pipeline.stream import build_query, run_until_stopped

from helpers import LENGTH, MIN_LENGTH, log_of, settings_for, standalone_loader


def publish(
    models: Path,
    name: str,
    version: str,
    scale: float,
    *,
    broken: bool = False,
    **spec: object,
) -> Path:
    """A version of the demo model with its head scaled (same shape, other scores), written
    beside the folder and renamed in, as docs/streaming.md says to publish one. ``broken``: its weights
    file is not what its config's sha256 says."""
    loaded = load_artifact(DEMO_MODEL_DIR)
    with torch.no_grad():
        for parameter in loaded.network.head.parameters():
            parameter.mul_(scale)
    staging = models.parent / f".{name}"
    save_artifact(
        loaded.network, loaded.spec.model_copy(update={"version": version, **spec}), staging
    )
    if broken:
        (staging / WEIGHTS_FILE).write_bytes(b"not safetensors")
    staging.rename(models / name)
    return models / name


def reference(folder: Path):  # type: ignore[no-untyped-def]
    namespace: dict = {}
    exec(standalone_loader(), namespace)  # noqa: S102 - docs/models.md's torch-only loader
    config, lstm, head = namespace["load_seqstream_model"](str(folder))
    return lambda events: namespace["forecast_score"](config, lstm, head, events)


def wait_for(condition, what: str, query) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + 120
    while not condition():
        assert query.isActive, query.exception()
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_models_swap_twice_under_load_and_a_broken_one_is_refused(
    spark, bootstrap_servers, admin, tmp_path
) -> None:
    models = tmp_path / "models"
    models.mkdir()
    shutil.copytree(DEMO_MODEL_DIR, models / "v1")
    versions = {"nab-cpu-forecast-2": models / "v1"}
    topic = f"swap-{int(time.time() * 1000)}"
    admin.create_topic(topic, 3)
    spec = SyntheticSpec(keys=6, events_per_key=160, late_rate=0.0, malformed_rate=0.0, seed=9)
    messages = synthetic_stream(spec, EventSchema()).messages
    settings = settings_for(
        tmp_path, topic, bootstrap_servers, model=str(models), max_offsets_per_trigger=60
    )
    query, metrics = build_query(spark, settings, bootstrap_servers)
    producer = open_producer(bootstrap_servers)
    parts = np.array_split(np.arange(len(messages)), 4)
    sent = 0

    def send_part(i: int) -> None:
        nonlocal sent
        produce_messages([messages[j] for j in parts[i]], producer, topic)
        producer.flush(30)
        sent += len(parts[i])
        wait_for(
            lambda: sum(m.events_in for m in metrics.history) >= sent, f"part {i} scored", query
        )

    try:
        send_part(0)
        versions["demo-v2"] = publish(models, "v2", "demo-v2", 1.5)
        send_part(1)
        assert metrics.model_changes == {"swapped": 1, "refused": 0}
        broken = publish(models, "v3", "demo-v3", 0.5, broken=True)
        send_part(2)
        assert metrics.model_changes == {"swapped": 1, "refused": 1}
        assert current_artifact(models) == broken  # still there, still refused: v2 scores on
        versions["demo-v4"] = publish(models, "v4", "demo-v4", 0.25)
        send_part(3)
        assert metrics.model_changes == {"swapped": 2, "refused": 1}
    finally:
        producer.close()
        stop = threading.Event()
        stop.set()
        run_until_stopped(query, stop, metrics, checkpoint=settings.stream.checkpoint)

    log = log_of(bootstrap_servers, topic, admin, messages)
    scorers = {version: reference(folder) for version, folder in versions.items()}
    rows = pq.read_table(tmp_path / "scores").to_pylist()
    by_batch: dict[int, set[str]] = defaultdict(set)
    for row in rows:
        by_batch[row["batch_id"]].add(row["model_version"])
    assert all(len(v) == 1 for v in by_batch.values()), "a micro-batch mixed model versions"
    order = [next(iter(by_batch[b])) for b in sorted(by_batch)]
    assert [v for i, v in enumerate(order) if i == 0 or order[i - 1] != v] == [
        "nab-cpu-forecast-2",
        "demo-v2",
        "demo-v4",
    ]
    # Every event scored once, each with its own version's reference score.
    history: dict[str, list] = defaultdict(list)
    expected = {}
    for position in sorted(log):
        message = log[position]
        history[message.key].append(message.event.features)
        if len(history[message.key]) >= MIN_LENGTH:
            expected[position] = np.asarray(history[message.key][-LENGTH:], np.float32)
    positions = [(r["partition"], r["offset"]) for r in rows]
    assert len(positions) == len(set(positions)) and set(positions) == set(expected)
    worst = max(
        abs(r["score"] - scorers[r["model_version"]](expected[(r["partition"], r["offset"])]))
        for r in rows
    )
    assert worst < 1e-5
    admin.delete_topic(topic)


@pytest.mark.parametrize("pointer", ["v2", "missing"])
def test_a_pointer_file_names_the_current_artifact(tmp_path, pointer) -> None:
    shutil.copytree(DEMO_MODEL_DIR, tmp_path / "v2")
    (tmp_path / "CURRENT").write_text(pointer + "\n")
    assert current_artifact(tmp_path / "CURRENT") == (tmp_path / pointer).resolve()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            "window",
            "keeps another per-key state than the running model nab-cpu-forecast-2: window 16 "
            "(running: 64)",
        ),
        ("features", "needs a restart with events.features changed"),
    ],
)
def test_a_model_of_another_shape_is_refused_and_the_running_one_kept(
    spark, tmp_path, caplog, change, message
) -> None:
    models = tmp_path / "models"
    models.mkdir()
    shutil.copytree(DEMO_MODEL_DIR, models / "v1")
    settings = settings_for(tmp_path, "t", "127.0.0.1:9", model=str(models))
    ref, spec = check_model(settings)
    heard: list[str] = []
    versions = ModelVersions(settings, ref, spec, models, heard.append)
    loaded = load_artifact(DEMO_MODEL_DIR).spec
    update = (
        {"window": loaded.window.model_copy(update={"length": 16})}
        if change == "window"
        else {"features": [f"{f}_new" for f in loaded.features]}
    )
    publish(models, "v2", "demo-v2", 2.0, **update)
    with caplog.at_level("WARNING", logger="seqstream.model"):
        chosen = versions.before_batch(spark.sparkContext)
        versions.before_batch(spark.sparkContext)  # refused once, not again every batch
    spark.sparkContext.setLocalProperty(MODEL_PROPERTY, None)
    assert chosen == ref and heard == ["refused"]
    assert [r.getMessage() for r in caplog.records if message in r.getMessage()] != []
