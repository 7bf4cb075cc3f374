"""spark-submit entry point of the demo; the same as ``seqstream demo``."""

import sys

from seqstream.pipeline.cli import main

if __name__ == "__main__":
    sys.exit(main(["demo", *sys.argv[1:]]))
