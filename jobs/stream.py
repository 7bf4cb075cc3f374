"""spark-submit entry point of the streaming job; the flags are those of ``seqstream stream``.

spark-submit --py-files seqstream-0.1.0-py3-none-any.whl jobs/stream.py --config seqstream.yaml
"""

import sys

from seqstream.pipeline.cli import main

if __name__ == "__main__":
    sys.exit(main(["stream", *sys.argv[1:]]))
