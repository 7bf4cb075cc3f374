"""A seqstream job run with one transaction fault point armed, so a test can kill it there.

Usage: python fault_child.py POINT@BATCH JOB_SCRIPT [ARGS...]
SIGKILLs its own process group when the job's Kafka transaction reaches POINT in batch BATCH
(``kafka.transactions.fault_hooks``); otherwise the job runs as ``python JOB_SCRIPT ARGS``.
"""

from __future__ import annotations

import logging
import os
import runpy
import signal
import sys

from seqstream.pipeline.kafka import transactions


def main() -> None:
    armed, script = sys.argv[1], sys.argv[2]

    def kill_at(point: str, batch_id: int) -> None:
        if f"{point}@{batch_id}" == armed:
            logging.getLogger("seqstream.tests").warning("fault point %s: SIGKILL", armed)
            os.killpg(os.getpgrp(), signal.SIGKILL)

    transactions.fault_hooks.append(kill_at)
    sys.argv = [script, *sys.argv[3:]]
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
