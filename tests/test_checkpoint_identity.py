"""A checkpoint belongs to the query that made it: restarting it with other topics or another
model shape is refused before anything is read; new weights for the same shape are welcome."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from seqstream.model.artifact import DEMO_MODEL_DIR, load_artifact, save_artifact
from seqstream.model.network import SequenceModel
from seqstream.model.spec import WindowSpec
from seqstream.pipeline.cli import main as cli_main
from seqstream.pipeline.errors import SeqstreamError
from seqstream.pipeline.kafka import open_producer, raise_for_failures
from seqstream.pipeline.stream import build_query

from helpers import LENGTH, REPO, run_until, settings_for

LEGACY_CHECKPOINT = REPO / "tests" / "data" / "legacy_checkpoint" / "cp"


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
        "window": LENGTH,  # the demo model's
        "features": ["value"],
        "state_layout": "buckets-v2",
        "state_buckets": 16,
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
    with pytest.raises(SeqstreamError, match=rf"\(window: {LENGTH} there, 16 now\)"):
        build_query(
            spark,
            settings_for(tmp_path, topic, bootstrap_servers, model=window16),
            bootstrap_servers,
        )
    assert sorted((tmp_path / "cp" / "commits").iterdir()) == commits  # nothing ran

    # The same shape with new weights continues from the checkpoint.
    retrained = _model(tmp_path / "retrained", window=LENGTH, seed=2)
    query, metrics = build_query(
        spark, settings_for(tmp_path, topic, bootstrap_servers, model=retrained), bootstrap_servers
    )
    query.stop()
    metrics.close()
    # A checkpoint from before identities were recorded has the per-key layout: refused.
    identity.unlink()
    with pytest.raises(SeqstreamError, match="was made by an earlier seqstream"):
        build_query(spark, settings_for(tmp_path, topic, bootstrap_servers), bootstrap_servers)
    assert sorted((tmp_path / "cp" / "commits").iterdir()) == commits


def start_on_recorded_checkpoint(
    recorded: Path, topic: str, tmp_path: Path, capsys, *flags: str
) -> tuple[Path, str]:  # type: ignore[no-untyped-def]
    """``seqstream stream`` on a copy of a recorded checkpoint: it must exit 2 before any Kafka
    call and change nothing in the checkpoint. Returns the copy and what was printed on stderr."""
    checkpoint = tmp_path / "cp"
    shutil.copytree(recorded, checkpoint)
    before = sorted(p.relative_to(checkpoint) for p in checkpoint.rglob("*"))
    code = cli_main(
        [
            "stream",
            *flags,
            "--bootstrap-servers",
            "127.0.0.1:9",  # refused before any Kafka call
            "--topics",
            topic,
            "--checkpoint",
            str(checkpoint),
            "--parquet-path",
            str(tmp_path / "scores"),
        ]
    )
    assert code == 2
    assert sorted(p.relative_to(checkpoint) for p in checkpoint.rglob("*")) == before
    return checkpoint, capsys.readouterr().err


def test_a_checkpoint_of_the_per_key_state_layout_is_refused_with_the_offsets_to_go_on_from(
    tmp_path: Path, capsys
) -> None:  # type: ignore[no-untyped-def]
    """A checkpoint made by seqstream 4e1d8e3 (one state value per key; see data/README.md)."""
    last = max(int(p.name) for p in (LEGACY_CHECKPOINT / "commits").iterdir() if p.name.isdigit())
    offsets = (LEGACY_CHECKPOINT / "offsets" / str(last)).read_text().splitlines()[2]
    assert json.loads(offsets) == {"legacy-events": {"0": 20, "1": 20}}
    checkpoint, err = start_on_recorded_checkpoint(
        LEGACY_CHECKPOINT, "legacy-events", tmp_path, capsys
    )
    assert err == (
        f"seqstream stream: error: stream.checkpoint {checkpoint} was made by an earlier "
        "seqstream, which kept one window state value per key; this one keeps keys in buckets "
        "(buckets-v2) and cannot read it. Keep running it with the version that made it, or "
        "start a new stream.checkpoint that goes on where this one stopped: --starting-offsets "
        f"'{json.dumps(json.loads(offsets), separators=(',', ':'))}'. Each key's history then "
        "starts again from its next event; `seqstream backfill` over the offsets from there "
        "scores that stretch with whole histories\n"
    )


TIME_V1_CHECKPOINT = REPO / "tests" / "data" / "time_v1_checkpoint" / "cp"


def test_an_event_time_checkpoint_without_the_late_event_step_is_refused_with_the_offsets(
    tmp_path: Path, capsys
) -> None:  # type: ignore[no-untyped-def]
    """A checkpoint made by seqstream 848835b in event-time mode (see data/README.md): its
    state has the window aggregation only, so the late-event step would find no state."""
    config = tmp_path / "time.yaml"
    config.write_text("stream:\n  mode: time\n  time_window: 10 minutes\n  watermark: 1 minute\n")
    checkpoint, err = start_on_recorded_checkpoint(
        TIME_V1_CHECKPOINT, "legacy-time-events", tmp_path, capsys, "--config", str(config)
    )
    assert err == (
        f"seqstream stream: error: stream.checkpoint {checkpoint} was made by an earlier "
        "seqstream, which kept event-time windows without the late-event step of this one "
        "(time-v2), whose state it cannot read. Keep running it with the version that made it, "
        "or start a new stream.checkpoint that goes on where this one stopped: "
        """--starting-offsets '{"legacy-time-events":{"0":20,"1":20}}'. Windows open at its """
        "stop then start again from their next events\n"
    )
