"""The command line: ``seqstream`` and its subcommands (``commands``), every job's flags
(``flags``), the demo and ``tail``."""

from seqstream.pipeline.cli.commands import main

__all__ = ["main"]
