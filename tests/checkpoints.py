"""Crashing a streaming query at a known point, for the restart tests."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path


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
