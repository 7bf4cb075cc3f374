"""A command line's ``Settings``: config file < environment < ``--set`` < named flags.

Every subcommand, whatever it does, resolves its configuration the same way; this module is that
one way, apart from the parser (which declares the flags) and the commands (which use the result).
"""

from __future__ import annotations

import argparse
from typing import Any

from seqstream.pipeline.cli.flags import BACKFILL_FLAGS, STREAM_FLAGS, config_overrides
from seqstream.pipeline.config import Settings, load_settings, parse_assignments

JOB_FLAGS = {"stream": STREAM_FLAGS, "backfill": BACKFILL_FLAGS}


def command_settings(args: argparse.Namespace, **flags: Any) -> Settings:
    """Config file < environment < --set < named flags."""
    overrides = parse_assignments(args.set)
    named = {"kafka": {"bootstrap_servers": getattr(args, "bootstrap_servers", None)}, **flags}
    for section, values in named.items():
        for key, value in values.items():
            if value is not None:
                overrides.setdefault(section, {})[key] = value
    return load_settings(args.config, overrides)


def job_settings(args: argparse.Namespace) -> Settings:
    """The settings a job's command line asks for: its flags (``flags``) over the rest."""
    return command_settings(args, **config_overrides(args, JOB_FLAGS.get(args.command, ())))
