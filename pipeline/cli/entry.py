"""``seqstream``'s entry point: parse the command line, set up logging, run the subcommand.

Kept apart from the parser and the commands because it is where a run ends: every deliberate
error (``SeqstreamError``, ``ModelError``) becomes one line and an exit code, without a
traceback, as do Ctrl-C and a reader gone away.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Sequence

from seqstream.model.errors import ModelError
from seqstream.pipeline.cli.parser import parse_args
from seqstream.pipeline.errors import SeqstreamError


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        logging.getLogger("seqstream.librdkafka").setLevel(logging.CRITICAL)
        logging.getLogger("kafka").setLevel(logging.CRITICAL)
        # py4j logs every gateway connection it opens and closes at INFO.
        logging.getLogger("py4j").setLevel(logging.WARNING)
    try:
        code = int(args.func(args))
        sys.stdout.flush()  # here, so that a reader gone away is met below, not at exit
        return code
    except (SeqstreamError, ModelError) as exc:  # ConfigError is a SeqstreamError
        print(f"seqstream {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"seqstream {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, as a Unix tool ended by SIGPIPE does,
        # with nothing left for the interpreter to flush into the closed pipe at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE


if __name__ == "__main__":
    sys.exit(main())
