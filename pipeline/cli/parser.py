"""The ``seqstream`` argument parser: every subcommand's arguments and help, in one place.

One function declares each subcommand's arguments and names the command that runs it
(``kafka_commands``, ``model_commands``, ``job_commands``); ``parse_args`` reports a flag no
command knows from the subcommand that got it. The jobs' own flags are declared in ``flags``.
"""

from __future__ import annotations

import argparse
import difflib
from typing import TypeAlias

from seqstream.model.train import TrainOptions
from seqstream.pipeline.cli.flags import BACKFILL_FLAGS, STREAM_FLAGS, add_flags
from seqstream.pipeline.cli.job_commands import cmd_backfill, cmd_demo, cmd_stream
from seqstream.pipeline.cli.kafka_commands import cmd_broker, cmd_produce, cmd_tail, cmd_topics
from seqstream.pipeline.cli.model_commands import cmd_model_import, cmd_model_info, cmd_train

Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def _common(parser: argparse.ArgumentParser, *, kafka: bool = True) -> None:
    """The flags every command takes; ``--bootstrap-servers`` only where Kafka is used."""
    parser.add_argument("--config", metavar="FILE", help="YAML config file (or $SEQSTREAM_CONFIG)")
    parser.add_argument(
        "--set",
        metavar="SECTION.FIELD=VALUE",
        action="append",
        default=[],
        help="override any config field, e.g. --set kafka.client=kafka-python",
    )
    if kafka:
        parser.add_argument(
            "--bootstrap-servers",
            help="Kafka to use instead of the embedded broker (kafka.bootstrap_servers)",
        )


def _positive_int(text: str) -> int:
    """argparse type: an integer of at least 1 (0 partitions is not a topic)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("seqstream")
    except PackageNotFoundError:  # run from a source tree that was not installed
        return "(not installed)"


TRAIN_HELP = {
    "window": "events per window (the LSTM's sequence length)",
    "min_length": "fewest events a window is scored with (--carry: a key's first scored event)",
    "hidden_size": "LSTM hidden size",
    "num_layers": "LSTM layers",
    "proj_size": "LSTM projection size (0: none)",
    "epochs": "training epochs",
    "batch_size": "windows (--carry: keys) per training batch",
    "seed": "random seed",
    "tbptt_steps": "--carry: steps per truncated-backpropagation chunk",
    "stride": "train on every N-th window of a key (validation reads them all)",
    "ensemble": "LSTMs trained from consecutive seeds and averaged into one nn.LSTM N times "
    "as wide (steadier scores; N=1: one LSTM, the fastest to score)",
    "dropout": "dropout between LSTM layers",
    "learning_rate": "Adam learning rate",
    "validation_fraction": "share of each series held out for validation",
}
TRAIN_INT_OPTIONS = (
    "window",
    "min_length",
    "hidden_size",
    "num_layers",
    "proj_size",
    "epochs",
    "batch_size",
    "seed",
    "tbptt_steps",
    "stride",
    "ensemble",
)
TRAIN_FLOAT_OPTIONS = ("dropout", "learning_rate", "validation_fraction")


DESCRIPTION = (
    "Score keyed Kafka event streams with an LSTM, in Spark Structured Streaming (stream) and "
    "over Kafka history (backfill); with an embedded broker, a producer and a demo for a laptop. "
    "Every command takes --config FILE and --set section.field=value; see README.md."
)


def _add_broker(sub: Subparsers) -> None:
    p = sub.add_parser(
        "broker", help="start, stop or query the embedded broker (Apache Kafka, one node)"
    )
    p.add_argument("action", choices=["start", "stop", "status"])
    p.add_argument("--port", type=int, help="loopback port (default: the last one, or a free one)")
    _common(p, kafka=False)
    p.set_defaults(func=cmd_broker)


def _add_topics(sub: Subparsers) -> None:
    p = sub.add_parser("topics", help="list, create, describe or delete topics")
    p.add_argument("action", choices=["list", "create", "describe", "delete"])
    p.add_argument("topic", nargs="?", default=None, help="the topic (all but list need one)")
    p.add_argument(
        "--partitions", type=_positive_int, help="create: partitions (default producer.partitions)"
    )
    _common(p)
    p.set_defaults(func=cmd_topics, parser=p)


def _add_tail(sub: Subparsers) -> None:
    p = sub.add_parser("tail", help="print a topic's records, decoded (scores, dead letters, any)")
    p.add_argument("topic", help="the topic to read")
    p.add_argument(
        "--from-beginning", action="store_true", help="start at the oldest record, not at the end"
    )
    p.add_argument("--max", type=_positive_int, help="stop after this many records")
    p.add_argument(
        "--idle-timeout",
        type=float,
        metavar="SECONDS",
        help="stop after this long without a new record (default: follow until Ctrl-C)",
    )
    p.add_argument("--json", action="store_true", help="one JSON object per record")
    _common(p)
    p.set_defaults(func=cmd_tail)


def _add_produce(sub: Subparsers) -> None:
    p = sub.add_parser("produce", help="replay CSV series or synthetic events into a topic")
    source = p.add_mutually_exclusive_group()
    source.add_argument(
        "--csv",
        nargs="+",
        metavar="PATH",
        help="CSV files or folders, one key per file (default: bundled NAB demo)",
    )
    source.add_argument("--synthetic", action="store_true", help="generated keys and features")
    p.add_argument("--time-column", default="timestamp", help="CSV column with the event time")
    p.add_argument(
        "--key-column",
        help="long-format CSV: the column with each row's key, many keys per file "
        "(default: one key per file, named after it)",
    )
    p.add_argument("--topic", help="the topic to write to (default: producer.topic, events)")
    p.add_argument(
        "--partitions",
        type=_positive_int,
        help="partitions if the topic is created (default: producer.partitions, 4)",
    )
    p.add_argument("--rate", type=float, help="events/s (default: as fast as possible)")
    p.add_argument("--keys", type=int, default=10, help="synthetic: number of keys (default: 10)")
    p.add_argument(
        "--events-per-key", type=int, default=1000, help="synthetic: events per key (default: 1000)"
    )
    p.add_argument("--num-features", type=int, help="synthetic: features f0..fN-1")
    p.add_argument("--anomaly-rate", type=float, default=0.0, help="synthetic: share of spikes")
    p.add_argument("--late-rate", type=float, default=0.0, help="synthetic: share sent late")
    p.add_argument(
        "--malformed-rate",
        type=float,
        default=0.0,
        help="synthetic: extra malformed messages per valid event",
    )
    p.add_argument("--seed", type=int, default=0, help="synthetic: random seed (default: 0)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _common(p)
    p.set_defaults(func=cmd_produce)


def _add_train_network_options(p: argparse.ArgumentParser, defaults: TrainOptions) -> None:
    """``train``'s numeric options, one per ``TrainOptions`` field, each with its default."""
    per_kind = {  # None in TrainOptions: each kind has its own
        "epochs": TrainOptions(carry=True).epochs_to_run,
        "learning_rate": TrainOptions(carry=True).learning_rate_to_use,
    }
    window_kind = {"epochs": defaults.epochs_to_run, "learning_rate": defaults.learning_rate_to_use}
    for names, parse in ((TRAIN_INT_OPTIONS, int), (TRAIN_FLOAT_OPTIONS, float)):
        for name in names:
            default = getattr(defaults, name)
            shown = (
                f"{window_kind[name]}, --carry: {per_kind[name]}" if name in per_kind else default
            )
            p.add_argument(
                f"--{name.replace('_', '-')}",
                type=parse,
                default=default,
                help=f"{TRAIN_HELP[name]} (default: {shown})",
            )


def _add_train(sub: Subparsers) -> None:
    p = sub.add_parser("train", help="train a next-step forecaster and write a model artifact")
    p.add_argument(
        "--data",
        nargs="+",
        metavar="PATH",
        help="CSV files/folders (one key per file) or Parquet event tables "
        "(default: the bundled NAB series)",
    )
    p.add_argument("--out", required=True, help="artifact directory to write")
    p.add_argument("--time-column", default="timestamp", help="CSV column with the event time")
    p.add_argument(
        "--key-column",
        help="long-format CSV: the column with each row's key (default: one key per file)",
    )
    defaults = TrainOptions()
    _add_train_network_options(p, defaults)
    p.add_argument("--bidirectional", action="store_true", help="a bidirectional LSTM")
    p.add_argument(
        "--carry",
        action="store_true",
        help="a carry model: each key's LSTM state carried from event to event (one step per "
        "event, unbounded history), trained on each key's whole series with truncated "
        "backpropagation through time; --min-length is then the first scored event",
    )
    p.add_argument(
        "--per-key",
        action=argparse.BooleanOptionalAction,
        default=defaults.per_key,
        help="normalise with each key's own statistics (a carry model: its running mean and "
        "std; a window model: the window's), so one model scores keys of any scale; "
        "--no-per-key: the training data's one mean and std (default: per key)",
    )
    p.add_argument(
        "--error-units",
        choices=["normalized", "original"],
        default=defaults.error_units,
        help="a score's forecast error in the model's normalised units or in the event's own "
        f"(original: a move scores by its size; default: {defaults.error_units})",
    )
    p.add_argument(
        "--version",
        default=defaults.version,
        help=f"version string stored in the artifact (default: {defaults.version})",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _common(p, kafka=False)
    p.set_defaults(func=cmd_train)


def _add_model(sub: Subparsers) -> None:
    p = sub.add_parser("model", help="describe, validate and import model artifacts")
    actions = p.add_subparsers(dest="action", required=True)
    info = actions.add_parser("info", help="validate an artifact and print what it holds")
    info.add_argument("path", help="the artifact folder (config.json, weights.safetensors)")
    info.add_argument("--json", action="store_true", help="print it as JSON")
    info.set_defaults(func=cmd_model_info)
    for kind, layers_of in (
        ("keras", "keras.layers.LSTM layers (kernel, recurrent_kernel, bias)"),
        ("tf1", "TF1 BasicLSTMCell layers (kernel, bias)"),
    ):
        imp = actions.add_parser(
            f"import-{kind}",
            help=f"make an artifact from {layers_of} and a Dense head saved in an .npz",
        )
        imp.add_argument(
            "weights",
            help="an .npz with layer{n}/kernel ... and head/kernel, head/bias (see docs/models.md)",
        )
        imp.add_argument(
            "--config",
            required=True,
            help="the artifact's config.json: task, features, normalization, window, lstm, head",
        )
        imp.add_argument("--out", required=True, help="a new folder for the artifact")
        imp.add_argument("--model-version", help="the artifact's version (default: the config's)")
        if kind == "tf1":
            imp.add_argument(
                "--forget-bias",
                type=float,
                default=1.0,
                help="the cells' forget_bias, folded into the bias (default: %(default)s)",
            )
        imp.set_defaults(func=cmd_model_import, framework=kind, forget_bias=1.0)


def _add_jobs(sub: Subparsers) -> None:
    """``stream``, ``backfill`` (their flags: ``flags``) and ``demo``."""
    p = sub.add_parser("stream", help="run the streaming job (same as spark-submit jobs/stream.py)")
    add_flags(p, STREAM_FLAGS)
    _common(p)
    p.set_defaults(func=cmd_stream)

    p = sub.add_parser(
        "backfill",
        help="re-score a range of Kafka history as the streaming job would (jobs/backfill.py)",
    )
    add_flags(p, BACKFILL_FLAGS)
    _common(p)
    p.set_defaults(func=cmd_backfill)

    p = sub.add_parser("demo", help="the end-to-end demo on the embedded broker and bundled data")
    p.add_argument(
        "--carry",
        action="store_true",
        help="score with the carry demo model (each key's LSTM state carried, per-key "
        "normalisation) instead of the window demo model",
    )
    _common(p)
    p.set_defaults(func=cmd_demo)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seqstream", description=DESCRIPTION)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--version", action="version", version=f"seqstream {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_broker, _add_topics, _add_tail, _add_produce, _add_train, _add_model):
        add(sub)
    _add_jobs(sub)
    return parser


def _subcommand_parser(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.ArgumentParser:
    """The parser of the (sub)subcommand ``argv`` names: ``seqstream model info`` -> info's."""
    for word in argv:
        found = next(
            (a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None
        )
        if found is None:
            break
        if word in found.choices:
            parser = found.choices[word]
    return parser


def parse_args(argv: list[str]) -> argparse.Namespace:
    """argparse, except that a flag no command knows is reported by the subcommand that got it,
    with its usage and the closest flag it has (argparse's own report is the top level's)."""
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        owner = _subcommand_parser(parser, argv)
        flags = [flag for action in owner._actions for flag in action.option_strings]
        given = next((u.split("=", 1)[0] for u in unknown if u.startswith("-")), "")
        close = difflib.get_close_matches(given, flags, n=1) if given else []
        hint = f" (did you mean {close[0]}?)" if close else ""
        owner.error(f"unrecognized arguments: {' '.join(unknown)}{hint}")
    return args
