"""README's demo command, as a user runs it: broker, NAB replay, streaming job, report, plot."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd

from seqstream.model.evaluate import load_nab_windows, window_auc, window_labels
from seqstream.pipeline.sources.series import DEMO_NAB_DIR, demo_series_files

MIN_LENGTH = 8  # the demo model's window.min_length


def persistence_auc(path: Path) -> float:
    """|x_t - x_(t-1)|'s window-level AUC over the events the model scores (all but the first
    MIN_LENGTH - 1), from the CSV and NAB's labels."""
    frame = pd.read_csv(path)
    ts_ms = pd.to_datetime(frame["timestamp"]).astype("int64").to_numpy() // 1_000_000
    jumps = frame["value"].diff().abs().fillna(0.0).to_numpy()
    windows = load_nab_windows(DEMO_NAB_DIR / "anomaly_windows.json", path)
    inside = window_labels(ts_ms, windows)
    return window_auc(jumps[MIN_LENGTH - 1 :], inside[MIN_LENGTH - 1 :])


def test_demo_streams_every_bundled_event_and_draws_the_plot(tmp_path: Path) -> None:
    env = dict(os.environ)  # honours SEQSTREAM_BOOTSTRAP_SERVERS like every other test
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    done = subprocess.run(
        [sys.executable, "-m", "seqstream.pipeline.cli", "demo"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    per_key = {f.stem: len(f.read_text().splitlines()) - 1 for f in demo_series_files()}
    total = sum(per_key.values())
    out = done.stdout
    assert re.search(
        rf"produced {total} events of 4 NAB series to \S+ on \S+: {total} acknowledged, 0 failed",
        out,
    )
    unscored = len(per_key) * (MIN_LENGTH - 1)
    assert (
        f"{total} events in: {total - unscored} scored, {unscored} not yet scoreable "
        "(a key's first events), 0 dead-lettered"
    ) in out
    for path in demo_series_files():
        count = per_key[path.stem]
        line = next(line for line in out.splitlines() if line.startswith(path.stem))
        scored, model_auc, _, baseline_auc = line.split()[1:5]
        assert int(scored) == count - (MIN_LENGTH - 1)
        assert 0.5 < float(model_auc) <= 1.0
        assert float(baseline_auc) == round(persistence_auc(path), 2)
    png = Path(tmp_path, re.search(r"plot: (\S+)", out).group(1))
    # README shows what the demo prints: each of its lines matches one printed, numbers, names
    # and times aside.
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    shown = readme.split("<!-- demo-output -->", 1)[1].split("```\n", 2)[1].splitlines()
    shown = [
        s
        for s in shown
        if s.strip() and not (env.get("SEQSTREAM_BOOTSTRAP_SERVERS") and "embedded broker" in s)
    ]
    printed = [line for line in out.splitlines() if line.strip()]
    for line in shown:
        pattern = re.sub(r"\d[\d,]*", lambda _: r"\d[\d,]*", re.escape(line))
        assert any(re.fullmatch(pattern, p) for p in printed), line
    assert len(printed) == len(shown)
    assert png.stat().st_size > 20_000 and png.read_bytes()[:4] == b"\x89PNG"
