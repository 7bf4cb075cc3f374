"""Every job's flags are declared once (``seqstream.pipeline.cli.flags``): the CLI, the spark-submit
scripts and the configuration they set agree."""

from __future__ import annotations

import subprocess
import sys

import pytest

from seqstream.pipeline.cli.flags import BACKFILL_FLAGS, STREAM_FLAGS
from seqstream.pipeline.cli.parser import build_parser
from seqstream.pipeline.cli.settings import job_settings

from helpers import REPO

STREAM_OPTIONS = [
    "--topics",
    "--starting-offsets",
    "--model",
    "--checkpoint",
    "--parquet-path",
    "--output-topic",
    "--dead-letter-path",
    "--dead-letter-topic",
    "--trigger-interval",
    "--max-offsets-per-trigger",
    "--device",
]


def _help(*argv: str) -> str:
    parser = build_parser()
    sub = parser._subparsers._group_actions[0].choices[argv[0]]  # type: ignore[union-attr]
    return sub.format_help()


def test_stream_help_lists_the_streams_main_options_as_backfill_does() -> None:
    text = _help("stream")
    for option in STREAM_OPTIONS:
        assert option in text, option
    assert "(stream.checkpoint)" in text
    backfill = _help("backfill")
    for flag in BACKFILL_FLAGS:
        assert flag.name in backfill


def test_stream_flags_set_the_configuration_over_set_and_the_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    config = tmp_path / "seqstream.yaml"
    config.write_text("stream:\n  device: cuda\n  topics: [from-file]\n")
    argv = [
        "stream", "--config", str(config), "--set", "stream.output_topic=from-set",
        "--topics", "a, b", "--starting-offsets", "latest", "--model", "m", "--checkpoint", "cp",
        "--parquet-path", "scores", "--output-topic", "out", "--dead-letter-path", "dead",
        "--dead-letter-topic", "dlq", "--trigger-interval", "1 second",
        "--max-offsets-per-trigger", "500", "--device", "cpu",
    ]  # fmt: skip
    stream = job_settings(build_parser().parse_args(argv)).stream
    assert stream.topics == ["a", "b"]
    assert (stream.starting_offsets, str(stream.model), str(stream.checkpoint)) == (
        "latest",
        "m",
        "cp",
    )
    assert (str(stream.parquet_path), stream.output_topic) == ("scores", "out")
    assert (str(stream.dead_letter_path), stream.dead_letter_topic) == ("dead", "dlq")
    assert (stream.trigger_interval, stream.max_offsets_per_trigger, stream.device) == (
        "1 second",
        500,
        "cpu",
    )
    # flags not given leave the file's values
    only_file = job_settings(build_parser().parse_args(["stream", "--config", str(config)])).stream
    assert (only_file.device, only_file.topics) == ("cuda", ["from-file"])


def test_backfill_flags_set_its_outputs_and_keep_its_range_to_itself() -> None:
    args = build_parser().parse_args(
        [
            "backfill",
            "--parquet-path",
            "p",
            "--chunk-events",
            "10",
            "--model",
            "m",
            "--topics",
            "t1,t2",
        ]
    )
    settings = job_settings(args)
    assert (str(settings.backfill.parquet_path), settings.backfill.chunk_events) == ("p", 10)
    assert str(settings.stream.model) == "m"
    assert settings.stream.topics == ["events"]  # --topics is the request's, not stream.topics
    assert args.topics == ["t1", "t2"] and args.starting_offsets == "earliest"


def test_the_spark_submit_scripts_take_the_same_flags() -> None:
    for job, flags in (("stream", STREAM_FLAGS), ("backfill", BACKFILL_FLAGS)):
        done = subprocess.run(
            [sys.executable, str(REPO / "jobs" / f"{job}.py"), "--help"],
            capture_output=True,
            text=True,
            check=True,
        )
        assert done.stdout.startswith(f"usage: seqstream {job}")
        for flag in flags:
            assert flag.name in done.stdout


def _refused(capsys, *argv: str) -> str:  # type: ignore[no-untyped-def]
    """Runs the CLI, which must stop with argparse's usage error (exit 2) before any Kafka call."""
    import pytest

    from seqstream.pipeline.cli import main

    with pytest.raises(SystemExit) as stopped:
        main([*argv, "--bootstrap-servers", "127.0.0.1:1"])  # nothing listens there
    assert stopped.value.code == 2
    return capsys.readouterr().err


def test_topic_commands_without_a_name_say_so(capsys) -> None:  # type: ignore[no-untyped-def]
    for action in ("create", "describe", "delete"):
        error = _refused(capsys, "topics", action)
        assert f"topics {action} needs a topic name: seqstream topics {action} NAME" in error
        assert "Traceback" not in error


def test_zero_partitions_are_refused_not_replaced(capsys) -> None:  # type: ignore[no-untyped-def]
    error = _refused(capsys, "topics", "create", "t", "--partitions", "0")
    assert "argument --partitions: must be at least 1, got 0" in error
    error = _refused(capsys, "produce", "--synthetic", "--partitions", "-3")
    assert "argument --partitions: must be at least 1, got -3" in error


def test_version_flag() -> None:
    from importlib.metadata import version

    done = subprocess.run(
        [sys.executable, "-m", "seqstream.pipeline.cli", "--version"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert done.returncode == 0
    assert done.stdout.strip() == f"seqstream {version('seqstream')}"


def test_every_option_of_every_command_says_what_it_does() -> None:
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    undocumented = [
        f"{name} {action.option_strings[0]}"
        for name, sub in commands.items()
        for action in sub._actions
        if action.option_strings and not action.help
    ]
    assert undocumented == []


def test_bootstrap_servers_is_offered_only_where_kafka_is_used(capsys) -> None:  # type: ignore[no-untyped-def]
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    offered = {
        name
        for name, sub in commands.items()
        if any("--bootstrap-servers" in a.option_strings for a in sub._actions)
    }
    assert offered == {"topics", "tail", "produce", "stream", "backfill", "demo"}
    for argv in (["broker", "status"], ["train", "--out", "m"]):
        with pytest.raises(SystemExit) as exited:
            parser.parse_args([*argv, "--bootstrap-servers", "kafka:9092"])
        assert exited.value.code == 2
        assert "unrecognized arguments: --bootstrap-servers kafka:9092" in capsys.readouterr().err


def test_spark_flags_set_the_spark_section_without_overriding_the_file_when_absent(
    tmp_path,
) -> None:  # type: ignore[no-untyped-def]
    config = tmp_path / "seqstream.yaml"
    config.write_text("spark:\n  ui: true\n  conf:\n    spark.sql.session.timeZone: UTC\n")
    parser = build_parser()
    base = ["--config", str(config), "--checkpoint", "cp"]
    from_file = job_settings(parser.parse_args(["stream", *base]))
    assert from_file.spark.ui is True and from_file.spark.master == "local[2]"
    flagged = job_settings(
        parser.parse_args(
            ["backfill", *base[:2], "--master", "local[3]", "--conf", "a.b=1", "--conf", "c=x=y"]
        )
    )
    assert flagged.spark.master == "local[3]"  # --conf adds to the file's properties
    assert flagged.spark.conf == {"spark.sql.session.timeZone": "UTC", "a.b": "1", "c": "x=y"}
    with pytest.raises(SystemExit):
        parser.parse_args(["stream", "--conf", "no-equals-sign"])
