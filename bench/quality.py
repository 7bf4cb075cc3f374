"""Quality as a sanity figure, not a tuning target: window-level ROC AUC per NAB series.

    python -m bench.quality [--nab ../shared/data/nab]

Scores every labelled NAB series with the demo window model (global normalisation), a window
model of the same options with per-key normalisation (trained here, seeded, on the demo model's
six training series), the carry demo model, and the persistence baseline |x_t - x_(t-1)|.
Writes bench/results/quality.json and prints a Markdown table (docs/models.md, "Which model kind").
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from seqstream.model.artifact import DEMO_CARRY_MODEL_DIR, DEMO_MODEL_DIR, load_artifact
from seqstream.model.carry import CarryScorer, score_history
from seqstream.model.evaluate import load_nab_windows, window_auc, window_labels
from seqstream.model.inference import WindowScorer, score_series
from seqstream.model.train import TrainOptions, train_and_save
from seqstream.pipeline.config import EventSchema
from seqstream.pipeline.series import demo_series_files, load_series, read_series_csv

RESULTS = Path(__file__).resolve().parent / "results"
# The demo models' training series (model/demo_model/README.md): not scored here.
TRAINING = [
    "realAWSCloudwatch/ec2_cpu_utilization_53ea38.csv",
    "realAWSCloudwatch/ec2_cpu_utilization_77c1ca.csv",
    "realAWSCloudwatch/ec2_cpu_utilization_ac20cd.csv",
    "realAWSCloudwatch/ec2_cpu_utilization_c6585a.csv",
    "realAWSCloudwatch/ec2_cpu_utilization_fe7f93.csv",
    "realAWSCloudwatch/rds_cpu_utilization_e47b3b.csv",
]


def window_scores(scorer: WindowScorer, values: np.ndarray) -> np.ndarray:
    scored, scores = score_series(scorer, values)
    out = np.zeros(len(values))
    out[scored] = scores.score
    return out


def carry_scores(scorer: CarryScorer, values: np.ndarray) -> np.ndarray:
    return np.nan_to_num(score_history(scorer, values).score, nan=0.0)


def persistence(values: np.ndarray) -> np.ndarray:
    return np.concatenate([[0.0], np.abs(np.diff(values, axis=0)).max(axis=1)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nab", type=Path, default=Path("../shared/data/nab"))
    args = parser.parse_args()
    schema = EventSchema()
    labels_file = args.nab / "anomaly_windows.json"
    with tempfile.TemporaryDirectory() as folder:
        demo = load_artifact(DEMO_MODEL_DIR).spec
        train_and_save(
            load_series([args.nab / name for name in TRAINING], schema),
            ["value"],
            folder,
            TrainOptions(per_key=True, version="window-per-key"),
        )
        per_key = WindowScorer(load_artifact(folder), batch_size=4096)
    window = WindowScorer(load_artifact(DEMO_MODEL_DIR), batch_size=4096)
    carry = CarryScorer(load_artifact(DEMO_CARRY_MODEL_DIR))
    bundled = {p.name for p in demo_series_files()}
    rows = []
    for name in json.loads(labels_file.read_text()):
        path = args.nab / name
        if name in TRAINING or not path.is_file():
            continue
        events = read_series_csv(path, schema)
        values = np.asarray([e.features for e in events], np.float32)
        inside = window_labels(
            np.asarray([e.ts_ms for e in events]), load_nab_windows(labels_file, path)
        )
        if not inside.any():
            continue  # no labelled anomaly: no AUC
        aucs = {
            "persistence": window_auc(persistence(values), inside),
            "window_global": window_auc(window_scores(window, values), inside),
            "window_per_key": window_auc(window_scores(per_key, values), inside),
            "carry": window_auc(carry_scores(carry, values), inside),
        }
        rows.append(
            {"series": name, "bundled": path.name in bundled, "events": len(values), **aucs}
        )
    models = ["persistence", "window_global", "window_per_key", "carry"]
    medians = {m: float(np.nanmedian([r[m] for r in rows])) for m in models}
    result = {
        "models": {
            "window_global": f"{demo.version} (model/demo_model)",
            "window_per_key": "the demo model's options with normalization.per_key, trained here",
            "carry": f"{load_artifact(DEMO_CARRY_MODEL_DIR).spec.version} (model/demo_carry_model)",
        },
        "median": medians,
        "series": rows,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "quality.json").write_text(json.dumps(result, indent=1) + "\n")
    print("| series | events | persistence | window | window, per key | carry |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        name = f"**{r['series']}**" if r["bundled"] else r["series"]
        print(f"| {name} | {r['events']:,} | " + " | ".join(f"{r[m]:.2f}" for m in models) + " |")
    print(f"| median of {len(rows)} | | " + " | ".join(f"{medians[m]:.2f}" for m in models) + " |")


if __name__ == "__main__":
    main()
