"""Scores against naive baselines: window-level ROC AUC per labelled NAB series, a fixed protocol.

    python -m bench.quality [--nab ../shared/data/nab]

Scores every labelled NAB series that no model here was trained or tuned on (``TRAINING`` names
the excluded ones) with the window and the carry demo models, each also with its forecast error
in normalised units (``task.error_units``, the one change: what scoring in the event's own units
is worth), and two baselines a careful user writes before training anything: persistence
``|x_t - x_(t-1)|`` and a rolling z-score of each value against the window demo model's length of
events before it.
Writes bench/results/quality.json (per series, per NAB group, median) and prints Markdown tables
(docs/models.md, "Which model kind").
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from seqstream.model.artifact import (
    DEMO_CARRY_MODEL_DIR,
    DEMO_MODEL_DIR,
    LoadedModel,
    load_artifact,
)
from seqstream.model.carry import CarryScorer, score_history
from seqstream.model.evaluate import (
    load_nab_windows,
    persistence_scores,
    rolling_zscores,
    window_auc,
    window_labels,
)
from seqstream.model.inference import WindowScorer, score_series
from seqstream.model.spec import ForecastTask
from seqstream.pipeline.config import EventSchema
from seqstream.pipeline.sources.series import demo_series_files, read_series_csv

RESULTS = Path(__file__).resolve().parent / "results"
# The demo models' training series (model/demo_model/README.md, model/demo_carry_model/README.md):
# never scored here. Nothing else was used to train or tune them.
TRAINING = [
    "realAWSCloudwatch/ec2_cpu_utilization_53ea38.csv",
    "realAWSCloudwatch/ec2_cpu_utilization_77c1ca.csv",
    "realAWSCloudwatch/ec2_cpu_utilization_ac20cd.csv",
    "realAWSCloudwatch/ec2_cpu_utilization_c6585a.csv",
    "realAWSCloudwatch/ec2_cpu_utilization_fe7f93.csv",
    "realAWSCloudwatch/rds_cpu_utilization_e47b3b.csv",
]
COLUMNS = [
    "persistence",
    "rolling_zscore",
    "window",
    "window_normalized",
    "carry",
    "carry_normalized",
]
HEADERS = [
    "persistence",
    "rolling z",
    "window",
    "(normalised units)",
    "carry",
    "(normalised units)",
]


def window_scores(scorer: WindowScorer, values: np.ndarray) -> np.ndarray:
    scored, scores = score_series(scorer, values)
    out = np.zeros(len(values))
    out[scored] = scores.score
    return out


def carry_scores(scorer: CarryScorer, values: np.ndarray) -> np.ndarray:
    return np.nan_to_num(score_history(scorer, values).score, nan=0.0)


def normalized_units(model: LoadedModel) -> LoadedModel:
    """The model with its forecast error in normalised units (error_std then only rescales every
    score of a one-feature model alike: no AUC changes by it)."""
    task = model.spec.task
    assert isinstance(task, ForecastTask)
    spec = model.spec.model_copy(
        update={"task": task.model_copy(update={"error_units": "normalized"})}
    )
    return replace(model, spec=spec)


def _medians(rows: list[dict[str, Any]]) -> dict[str, float]:
    return {c: float(np.nanmedian([r[c] for r in rows])) for c in COLUMNS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nab", type=Path, default=Path("../shared/data/nab"))
    args = parser.parse_args()
    schema = EventSchema()
    labels_file = args.nab / "anomaly_windows.json"
    window_model, carry_model = load_artifact(DEMO_MODEL_DIR), load_artifact(DEMO_CARRY_MODEL_DIR)
    length = window_model.spec.window_spec.length
    window = WindowScorer(window_model, batch_size=4096)
    carry = CarryScorer(carry_model)
    window_normalized = WindowScorer(normalized_units(window_model), batch_size=4096)
    carry_normalized = CarryScorer(normalized_units(carry_model))
    bundled = {p.name for p in demo_series_files()}
    rows: list[dict[str, Any]] = []
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
        scores = {
            "persistence": persistence_scores(values),
            "rolling_zscore": rolling_zscores(values, length),
            "window": window_scores(window, values),
            "window_normalized": window_scores(window_normalized, values),
            "carry": carry_scores(carry, values),
            "carry_normalized": carry_scores(carry_normalized, values),
        }
        rows.append(
            {
                "series": name,
                "group": name.split("/")[0],
                "bundled": path.name in bundled,
                "events": len(values),
                **{c: window_auc(s, inside) for c, s in scores.items()},
            }
        )
    groups = sorted({str(r["group"]) for r in rows})
    by_group = {g: _medians([r for r in rows if r["group"] == g]) for g in groups}
    counts = {g: sum(r["group"] == g for r in rows) for g in groups}
    medians = _medians(rows)
    result = {
        "protocol": "window-level ROC AUC (model/evaluate.py window_auc) on every labelled NAB "
        "series but the excluded ones; medians per NAB group and over all",
        "excluded_training_series": TRAINING,
        "models": {
            "window": f"{window_model.spec.version} (model/demo_model)",
            "window_normalized": "the same, task.error_units normalized",
            "carry": f"{carry_model.spec.version} (model/demo_carry_model)",
            "carry_normalized": "the same, task.error_units normalized",
            "persistence": "|x_t - x_(t-1)|",
            "rolling_zscore": f"|x_t - mean| / std of the {length - 1} events before x_t",
        },
        "median": medians,
        "groups": {g: {"series": counts[g], **m} for g, m in by_group.items()},
        "series": rows,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "quality.json").write_text(json.dumps(result, indent=1) + "\n")
    print("| series group | series | " + " | ".join(HEADERS) + " |")
    print("|---|---:|" + "---:|" * len(HEADERS))
    for g in groups:
        count = counts[g]
        print(f"| {g} | {count} | " + " | ".join(f"{by_group[g][c]:.2f}" for c in COLUMNS) + " |")
    print(
        f"| **median of {len(rows)}** | | "
        + " | ".join(f"**{medians[c]:.2f}**" for c in COLUMNS)
        + " |\n"
    )
    print("| series | events | " + " | ".join(HEADERS) + " |")
    print("|---|---:|" + "---:|" * len(HEADERS))
    for r in rows:
        name = f"**{r['series']}**" if r["bundled"] else r["series"]
        print(f"| {name} | {r['events']:,} | " + " | ".join(f"{r[c]:.2f}" for c in COLUMNS) + " |")
    print(f"| median of {len(rows)} | | " + " | ".join(f"{medians[c]:.2f}" for c in COLUMNS) + " |")


if __name__ == "__main__":
    main()
