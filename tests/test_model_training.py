"""Training: shared sequencing, seeded, Parquet and CSV input, and a sanity check on real NAB data."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

import seqstream.model.fit
import seqstream.model.windows
from seqstream.model.artifact import DEMO_MODEL_DIR, LoadedModel, load_artifact
from seqstream.model.evaluate import load_nab_windows, point_auc, window_auc, window_labels
from seqstream.model.inference import WindowScorer, score_series
from seqstream.model.train import TrainOptions, train_forecaster
from seqstream.pipeline.config import EventSchema
from seqstream.pipeline.sources.series import (
    DEMO_NAB_DIR,
    demo_series_files,
    load_series,
    read_series_csv,
)

SMALL = TrainOptions(
    window=12, min_length=4, hidden_size=8, num_layers=1, epochs=1, batch_size=64, stride=1
)


def test_training_windows_come_from_the_streaming_sequencing_code() -> None:
    assert seqstream.model.fit.extend_windows is seqstream.model.windows.extend_windows
    series = {
        "a": np.arange(50, dtype=np.float32)[:, None],
        "b": np.arange(20, dtype=np.float32)[:, None],
    }
    _, _, report = train_forecaster(series, ["value"], SMALL)
    assert report.train_windows + report.validation_windows == (50 - 4 + 1) + (20 - 4 + 1)
    # stride 2: every other training window of each key, validation untouched
    _, _, strided = train_forecaster(series, ["value"], replace(SMALL, stride=2))
    assert strided.validation_windows == report.validation_windows
    assert (
        strided.train_windows == (38 + 1) // 2 + (14 + 1) // 2
    )  # round(47 * 0.8), round(17 * 0.8)


def test_same_seed_same_weights() -> None:
    series = load_series(demo_series_files()[:1], EventSchema())
    first, _, _ = train_forecaster(series, ["value"], SMALL)
    second, _, _ = train_forecaster(series, ["value"], SMALL)
    assert all(
        torch.equal(a, b)
        for a, b in zip(first.state_dict().values(), second.state_dict().values(), strict=False)
    )


def test_parquet_event_tables_train_like_csv(tmp_path: Path) -> None:
    schema = EventSchema()
    csv_series = load_series(demo_series_files()[:2], schema)
    rows = [
        {"key": key, "ts": e.ts_ms, "value": e.features[0]}
        for f in demo_series_files()[:2]
        for e in read_series_csv(f, schema)
        for key in [f.stem]
    ]
    pd.DataFrame(rows).sample(frac=1.0, random_state=0).to_parquet(tmp_path / "events.parquet")
    parquet_series = load_series([tmp_path / "events.parquet"], schema)
    assert parquet_series.keys() == csv_series.keys()
    for key in csv_series:
        np.testing.assert_array_equal(parquet_series[key], csv_series[key])


def test_cli_train_writes_a_loadable_artifact(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEQSTREAM_")}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "seqstream.pipeline.cli",
            "train",
            "--out",
            str(tmp_path / "m"),
            "--epochs",
            "1",
            "--hidden-size",
            "8",
            "--window",
            "16",
            "--min-length",
            "4",
            "--version",
            "cli-test",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "epoch 1: train loss " in done.stdout
    loaded = load_artifact(tmp_path / "m")
    assert loaded.spec.version == "cli-test" and loaded.spec.window.length == 16
    assert f"wrote {tmp_path / 'm'} (sha256 {loaded.spec.weights_sha256[:12]})" in done.stdout


def window_and_point_auc(
    scorer: WindowScorer, series: Path, labels_file: Path
) -> tuple[float, float]:
    events = read_series_csv(series, EventSchema())
    scored, scores = score_series(scorer, np.array([e.features for e in events], np.float32))
    ts = np.array([e.ts_ms for e in events])[scored]
    inside = window_labels(ts, load_nab_windows(labels_file, series))
    return window_auc(scores.score, inside), point_auc(scores.score, inside)


def test_nab_cloudwatch_scores_peak_inside_labelled_windows(nab_dir: Path) -> None:
    """Train on the AWS CloudWatch CPU series, score the held-back bundled ones."""
    held_back = {f.stem for f in demo_series_files()}
    group = nab_dir / "realAWSCloudwatch"
    training = [f for f in sorted(group.glob("*cpu_utilization*.csv")) if f.stem not in held_back]
    network, spec, report = train_forecaster(
        load_series(training, EventSchema()), ["value"], TrainOptions()
    )
    assert report.train_loss[-1] < report.train_loss[0]
    scorer = WindowScorer(LoadedModel(spec, network.eval(), Path(".")), num_threads=None)
    figures = {
        name: window_and_point_auc(scorer, group / f"{name}.csv", nab_dir / "anomaly_windows.json")
        for name in sorted(held_back)
    }
    print("window-level / point-level ROC AUC per held-back series:", figures)
    window_aucs = [w for w, _ in figures.values()]
    assert all(w > 0.5 for w in window_aucs), figures
    assert np.mean(window_aucs) >= 0.75, figures


def test_committed_demo_model_loads_and_flags_the_bundled_anomalies() -> None:
    """The shipped demo model, on the bundled (held-back) series: no shared data needed."""
    loaded = load_artifact(DEMO_MODEL_DIR)
    assert loaded.spec.features == ["value"] and loaded.spec.task.type == "forecast"
    scorer = WindowScorer(loaded, num_threads=None)
    labels = DEMO_NAB_DIR / "anomaly_windows.json"
    aucs = [window_and_point_auc(scorer, path, labels)[0] for path in demo_series_files()]
    assert np.mean(aucs) >= 0.75, aucs
