"""spark-submit entry point of the backfill; the flags are those of ``seqstream backfill``.

spark-submit --py-files seqstream-0.1.0-py3-none-any.whl jobs/backfill.py --starting-offsets earliest
"""

import sys

from seqstream.pipeline.cli import main

if __name__ == "__main__":
    sys.exit(main(["backfill", *sys.argv[1:]]))
