"""README's demo command, as a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys

from pipeline.replay import demo_series_files


def test_demo_produces_and_reads_back_every_bundled_event() -> None:
    env = dict(os.environ)  # honours SEQSTREAM_BOOTSTRAP_SERVERS like every other test
    done = subprocess.run([sys.executable, "-m", "pipeline.cli", "demo"], capture_output=True,
                          text=True, env=env, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    per_key = {f.stem: len(f.read_text().splitlines()) - 1 for f in demo_series_files()}
    total = sum(per_key.values())
    lines = done.stdout.splitlines()
    assert f"produced {total}, acknowledged {total}, failed 0" in done.stdout
    for key, count in per_key.items():
        assert any(line.split() == [key, str(count), str(count), "kept"] for line in lines), key
    assert ["total", str(total), str(total)] in [line.split() for line in lines]
