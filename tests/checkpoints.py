"""Crashing a streaming query at a known point, for the restart tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def start_stream_job(sets: list[str]) -> subprocess.Popen:
    """The spark-submit entry point, run as a script in its own process group with these
    ``--set`` overrides, so that ``sigkill_mid_batch`` can kill it with its Python workers."""
    return subprocess.Popen(
        [
            sys.executable,
            str(REPO / "jobs" / "stream.py"),
            *[a for s in sets for a in ("--set", s)],
        ],
        cwd=REPO,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def sigkill_mid_batch(
    process: subprocess.Popen, checkpoint: Path, batch: int, timeout_s: float
) -> None:
    """SIGKILL the query's process group once ``batch - 1`` is committed and ``batch`` is planned
    but not committed: in the middle of micro-batch ``batch``."""
    commits, offsets = checkpoint / "commits", checkpoint / "offsets"
    deadline = time.monotonic() + timeout_s
    while not ((commits / str(batch - 1)).exists() and (offsets / str(batch)).exists()):
        assert process.poll() is None, process.stderr.read().decode()[-3000:]
        assert time.monotonic() < deadline, "the streaming query made no progress"
        time.sleep(0.05)
    assert not (commits / str(batch)).exists()
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
