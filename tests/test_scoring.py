"""The scoring step's worker-side choices: which device, which artifact, which model batches."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from seqstream.model.artifact import DEMO_MODEL_DIR, load_artifact
from seqstream.pipeline.errors import SeqstreamError
from seqstream.pipeline.scoring.step import score_windows
from seqstream.pipeline.scoring.worker import ModelRef, executor_device, scorer_for


@pytest.mark.parametrize(
    ("requested", "addresses", "visible", "expected"),
    [
        ("cuda", ["1"], None, "cuda:1"),  # the GPU Spark assigned to the task
        ("cuda", ["3"], "2,3", "cuda:1"),  # renumbered under CUDA_VISIBLE_DEVICES
        ("cuda", [], None, "cuda"),  # no GPU resource scheduling: the default GPU
        ("cuda:0", ["1"], None, "cuda:0"),  # an explicit index wins
        ("cpu", ["1"], None, "cpu"),
    ],
)
def test_cuda_means_the_gpu_spark_assigned_to_the_task(
    requested, addresses, visible, expected
) -> None:  # type: ignore[no-untyped-def]
    assert executor_device(requested, addresses, visible) == expected


def test_a_worker_with_other_weights_than_the_driver_checked_fails_naming_both(tmp_path) -> None:  # type: ignore[no-untyped-def]
    shutil.copytree(DEMO_MODEL_DIR, tmp_path / "model")
    with pytest.raises(
        SeqstreamError, match=r"on this worker has weights [0-9a-f]{64}, the driver checked 0{64}"
    ):
        scorer_for(ModelRef(str(tmp_path / "model"), "0" * 64))


def test_windows_are_scored_in_model_batches_of_the_configured_size() -> None:
    spec = load_artifact(DEMO_MODEL_DIR).spec
    n, length = 10, spec.window.length
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "key": "k",
            "event_time_ms": np.arange(n),
            "topic": "t",
            "partition": 0,
            "offset": np.arange(n),
            "kafka_timestamp": pd.Timestamp("2026-11-23"),
            "value": None,
            "window_length": [length] * (n - 1)
            + [spec.window.min_length - 1],  # the last is too short
            "reason": [None] * n,
            "key_mismatch": False,
            "kafka_key": None,
            "headers": None,
        }
    )
    ref = ModelRef(str(DEMO_MODEL_DIR), spec.weights_sha256 or "", batch_size=4)
    windows = rng.normal(50, 5, (n, length, len(spec.features))).astype(np.float32)
    out = score_windows(frame, windows, ref)
    assert out["model_batch"].tolist()[:9] == [4, 4, 4, 4, 4, 4, 4, 4, 1]
    assert pd.isna(out["model_batch"].iloc[9]) and pd.isna(out["score"].iloc[9])
    assert out["score"].iloc[:9].notna().all() and (out["scoring_s"].iloc[:9] > 0).all()
    assert "window" not in out.columns  # scored windows are not sent back
