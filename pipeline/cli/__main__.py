"""``python -m seqstream.pipeline.cli``: the ``seqstream`` command."""

import sys

from seqstream.pipeline.cli.entry import main

if __name__ == "__main__":
    sys.exit(main())
