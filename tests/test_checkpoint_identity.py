"""A checkpoint belongs to the query that made it: restarting it with other topics or another
model shape is refused before anything is read; new weights for the same shape are welcome."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from seqstream.model.artifact import DEMO_MODEL_DIR, load_artifact, save_artifact
from seqstream.model.network import SequenceModel
from seqstream.model.spec import WindowSpec
from seqstream.pipeline.errors import SeqstreamError
from seqstream.pipeline.kafka import open_producer, raise_for_failures
from seqstream.pipeline.streaming import build_query

from helpers import run_until, settings_for


def _model(folder: Path, *, window: int, seed: int) -> str:
    spec = load_artifact(DEMO_MODEL_DIR).spec
    spec = spec.model_copy(
        update={"window": WindowSpec(length=window, min_length=4), "version": f"w{window}-s{seed}"}
    )
    torch.manual_seed(seed)
    save_artifact(SequenceModel(spec.lstm, spec.head), spec, folder)
    return str(folder)


def test_a_checkpoint_made_for_another_query_is_refused(
    spark, bootstrap_servers: str, new_topic, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    topic, other = new_topic(partitions=1), new_topic(partitions=1)
    producer = open_producer(bootstrap_servers)
    for i in range(20):
        producer.send(
            topic, json.dumps({"key": "k", "ts": i, "value": float(i)}).encode(), key=b"k"
        )
    raise_for_failures(producer.flush(30), topic)
    producer.close()
    run_until(spark, settings_for(tmp_path, topic, bootstrap_servers), bootstrap_servers, 20)
    identity = tmp_path / "cp" / "seqstream.json"
    assert json.loads(identity.read_text()) == {
        "topics": [topic],
        "mode": "events",
        "model_kind": "window",
        "window": 32,
        "features": ["value"],
    }
    commits = sorted((tmp_path / "cp" / "commits").iterdir())

    with pytest.raises(SeqstreamError) as raised:
        build_query(spark, settings_for(tmp_path, other, bootstrap_servers), bootstrap_servers)
    assert str(raised.value).startswith(
        f"stream.checkpoint {tmp_path / 'cp'} belongs to another query (topics: ['{topic}'] there, "
        f"['{other}'] now): its offsets and window state only fit the query that made them. Use a "
        "new stream.checkpoint"
    )
    window16 = _model(tmp_path / "w16", window=16, seed=1)
    with pytest.raises(SeqstreamError, match=r"\(window: 32 there, 16 now\)"):
        build_query(
            spark,
            settings_for(tmp_path, topic, bootstrap_servers, model=window16),
            bootstrap_servers,
        )
    assert sorted((tmp_path / "cp" / "commits").iterdir()) == commits  # nothing ran

    # The same shape with new weights continues from the checkpoint.
    retrained = _model(tmp_path / "w32", window=32, seed=2)
    query, metrics = build_query(
        spark, settings_for(tmp_path, topic, bootstrap_servers, model=retrained), bootstrap_servers
    )
    query.stop()
    metrics.close()
    # A checkpoint from before identities were recorded is adopted.
    identity.unlink()
    query, metrics = build_query(
        spark, settings_for(tmp_path, topic, bootstrap_servers), bootstrap_servers
    )
    query.stop()
    metrics.close()
    assert json.loads(identity.read_text())["topics"] == [topic]
