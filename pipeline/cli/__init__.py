"""The command line: ``seqstream`` and its subcommands. ``entry`` runs one, ``parser`` declares
them, ``kafka_commands``, ``model_commands`` and ``job_commands`` implement them, ``settings``
resolves their configuration, ``flags`` declares every job's flags; the demo and ``tail``."""

from seqstream.pipeline.cli.entry import main

__all__ = ["main"]
