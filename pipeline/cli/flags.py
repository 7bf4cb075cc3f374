"""Every job's command-line flags, declared once.

``seqstream stream``, ``seqstream backfill`` and their spark-submit scripts (``jobs/``) all build
their parsers from these tables, so ``--help`` lists the same options wherever a job is started.
A flag either sets one configuration field (``field``, e.g. ``stream.topics``; it overrides the
config file, the environment and ``--set``) or is the job's own (``field`` None: a backfill's
range, ``--dry-run``).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any


def conf_pair(text: str) -> tuple[str, str]:
    """``key=value`` -> ``("key", "value")``, as spark-submit's ``--conf``."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), value


def comma_list(text: str) -> list[str]:
    """``a,b`` -> ``["a", "b"]`` (blanks dropped)."""
    return [item.strip() for item in text.split(",") if item.strip()]


@dataclass(frozen=True)
class Flag:
    name: str  # "--topics"
    help: str
    field: str | None = None  # "section.field" of the configuration it sets
    type: Callable[[str], Any] = str
    default: Any = None
    switch: bool = False  # a store_true flag
    repeated: bool = False  # may be given many times; ``type`` gives (key, value) pairs

    @property
    def dest(self) -> str:
        return self.name.lstrip("-").replace("-", "_")


# Where a job's Spark runs (both jobs; under spark-submit, its own --master and --conf win).
SPARK_FLAGS = (
    Flag("--master", "Spark master, e.g. local[4] or spark://host:7077", "spark.master"),
    Flag(
        "--conf",
        "a Spark property KEY=VALUE, as spark-submit's --conf (may be repeated)",
        "spark.conf",
        conf_pair,
        repeated=True,
    ),
    Flag("--spark-ui", "turn Spark's web UI on (its address is logged)", "spark.ui", switch=True),
)

STREAM_FLAGS = (
    Flag("--topics", "topics to read, comma-separated", "stream.topics", comma_list),
    Flag(
        "--starting-offsets",
        'where a new query starts: earliest, latest or {"topic":{"0":23}} (a restarted query '
        "continues from its checkpoint)",
        "stream.starting_offsets",
    ),
    Flag("--model", "model artifact folder (default: the bundled demo model)", "stream.model"),
    Flag(
        "--checkpoint", "folder for the query's offsets and state (required)", "stream.checkpoint"
    ),
    Flag("--parquet-path", "write scores as Parquet here", "stream.parquet_path"),
    Flag("--output-topic", "write scores as JSON to this topic", "stream.output_topic"),
    Flag("--dead-letter-path", "write dead letters as Parquet here", "stream.dead_letter_path"),
    Flag("--dead-letter-topic", "write dead letters to this topic", "stream.dead_letter_topic"),
    Flag(
        "--trigger-interval",
        "micro-batch interval, e.g. '5 seconds', or available-now (catch up, then stop)",
        "stream.trigger_interval",
    ),
    Flag(
        "--max-offsets-per-trigger",
        "at most this many offsets per micro-batch",
        "stream.max_offsets_per_trigger",
        int,
    ),
    Flag("--device", "where the model runs: cpu, cuda or cuda:N", "stream.device"),
    *SPARK_FLAGS,
)

BACKFILL_FLAGS = (
    Flag(
        "--topics", "topics to re-score, comma-separated (default: stream.topics)", None, comma_list
    ),
    Flag(
        "--starting-offsets",
        'earliest, latest or {"topic":{"0":23,"1":-2}}',
        default="earliest",
    ),
    Flag(
        "--ending-offsets",
        'latest, earliest or {"topic":{"0":99,"1":-1}} (excluded)',
        default="latest",
    ),
    Flag(
        "--start-time",
        "epoch ms or ISO-8601: read from the first record whose Kafka record time is at or after it",
    ),
    Flag(
        "--end-time",
        "epoch ms or ISO-8601: read up to the first record whose Kafka record time is at or after "
        "it (excluded)",
    ),
    Flag(
        "--start-event-time",
        "epoch ms or ISO-8601: of what is read, write only events whose event time "
        "(events.time_field) is at or after it",
    ),
    Flag(
        "--end-event-time",
        "epoch ms or ISO-8601: of what is read, write only events whose event time is before it",
    ),
    Flag("--model", "model artifact folder (default: stream.model)", "stream.model"),
    Flag("--parquet-path", "write scores as Parquet here", "backfill.parquet_path"),
    Flag("--output-topic", "write scores as JSON to this topic", "backfill.output_topic"),
    Flag("--dead-letter-path", "write dead letters as Parquet here", "backfill.dead_letter_path"),
    Flag("--dead-letter-topic", "write dead letters to this topic", "backfill.dead_letter_topic"),
    Flag("--chunk-events", "offsets per chunk", "backfill.chunk_events", int),
    Flag(
        "--progress-dir",
        "plan and progress, for resuming (default: a folder per request under .seqstream/backfill)",
        "backfill.progress_dir",
    ),
    Flag("--dry-run", "print the resolved ranges and outputs, read nothing", switch=True),
    Flag("--restart", "discard the progress of an earlier backfill", switch=True),
    *SPARK_FLAGS,
)


def add_flags(parser: argparse.ArgumentParser, flags: Iterable[Flag]) -> None:
    """Declare ``flags`` on ``parser``; each help names the config field it sets."""
    for flag in flags:
        text = flag.help + (f" ({flag.field})" if flag.field else "")
        if flag.switch:  # None when not given: it does not override the config file
            parser.add_argument(flag.name, action="store_true", default=None, help=text)
        elif flag.repeated:
            parser.add_argument(flag.name, type=flag.type, action="append", help=text)
        else:
            if flag.default is not None:
                text += f" (default: {flag.default})"
            parser.add_argument(flag.name, type=flag.type, default=flag.default, help=text)


def config_overrides(args: argparse.Namespace, flags: Iterable[Flag]) -> dict[str, dict[str, Any]]:
    """The configuration set by the flags given: ``{"stream": {"topics": [...]}, ...}``."""
    overrides: dict[str, dict[str, Any]] = {}
    for flag in flags:
        value = getattr(args, flag.dest)
        if flag.field is not None and value is not None:
            if flag.repeated:
                value = dict(value)
            section, name = flag.field.split(".")
            overrides.setdefault(section, {})[name] = value
    return overrides
