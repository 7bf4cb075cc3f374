"""A new user's first hour, one test per thing that went wrong when README was followed from the
top: outputs and checkpoints that must not be spoiled, input files that must not be misread,
and a console that says what happened in a few lines, never a stack trace."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from seqstream.pipeline.backfill.plan import Request
from seqstream.pipeline.backfill.run import prepare_backfill, run_backfill
from seqstream.pipeline.config import EventSchema, load_settings
from seqstream.pipeline.errors import SeqstreamError
from seqstream.pipeline.sources.series import read_csv_events

from helpers import REPO, environment, no_stack_traces, run_until, settings_for, stream_command

CLI = [sys.executable, "-m", "seqstream.pipeline.cli"]


def cli(*args: str, timeout: float = 300, **kwargs) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    return subprocess.run(
        [*CLI, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        env=environment(),
        **kwargs,
    )


def lines_of(done: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]


def spark_started(lines: list[str]) -> bool:
    """Spark's JVM says something at its start (its log lines carry its logger names)."""
    return any(" WARN " in line or "SparkContext" in line for line in lines)


# 1 ------------------------------------------------------------------------------------------


def test_1_a_backfill_refuses_the_streams_parquet_folder_in_the_dry_run_and_the_run(
    spark, bootstrap_servers, stream_topic, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    topic, log = stream_topic
    run_until(spark, settings_for(tmp_path, topic, bootstrap_servers), bootstrap_servers, len(log))
    assert (tmp_path / "scores" / "_seqstream.json").is_file()
    rows_before = sorted(p.name for p in (tmp_path / "scores").rglob("*.parquet"))
    settings = load_settings(
        None,
        {
            "kafka": {"bootstrap_servers": bootstrap_servers},
            "stream": {"topics": [topic]},
            "backfill": {
                "parquet_path": str(tmp_path / "scores"),  # the stream's, given by mistake
                "progress_dir": str(tmp_path / "progress"),
            },
        },
    )
    refusal = (
        rf"backfill.parquet_path {tmp_path / 'scores'} holds the output of another job "
        rf"\(job stream, checkpoint {tmp_path / 'cp'}"
    )
    with pytest.raises(SeqstreamError, match=refusal):
        prepare_backfill(settings, bootstrap_servers, Request([topic]))  # what --dry-run runs
    with pytest.raises(SeqstreamError, match=refusal):
        run_backfill(spark, settings, bootstrap_servers, Request([topic]))
    assert sorted(p.name for p in (tmp_path / "scores").rglob("*.parquet")) == rows_before
    # A folder a stream wrote before folders were marked: its batch_id partitions give it away.
    (tmp_path / "scores" / "_seqstream.json").unlink()
    with pytest.raises(SeqstreamError, match="holds batch_id partitions of another job"):
        prepare_backfill(settings, bootstrap_servers, Request([topic]))


# 2 ------------------------------------------------------------------------------------------


def test_2_a_mistyped_topic_fails_before_spark_and_leaves_the_checkpoint_alone(
    bootstrap_servers, stream_topic, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    topic, log = stream_topic
    wrong = cli(*stream_command(bootstrap_servers, "nosuchtopic", tmp_path)[3:])
    assert wrong.returncode == 2
    assert lines_of(wrong) == [
        f"seqstream stream: error: topic 'nosuchtopic' does not exist on {bootstrap_servers}"
    ]
    assert not (tmp_path / "cp").exists() and not (tmp_path / "scores").exists()
    right = cli(
        *stream_command(bootstrap_servers, topic, tmp_path, "--trigger-interval", "available-now")[
            3:
        ]
    )
    assert right.returncode == 0, "\n".join(lines_of(right)[-20:])
    assert f"{len(log):,} events in" in right.stderr + right.stdout


# 3 ------------------------------------------------------------------------------------------


def test_3_a_long_format_csv_without_key_column_is_refused_naming_the_column(
    tmp_path: Path,
) -> None:
    rows = ["timestamp,device,value"] + [
        f"2024-01-01 00:{minute:02d}:00,device-{d},{d + minute / 10}"
        for minute in range(30)
        for d in range(3)
    ]
    long = tmp_path / "long.csv"
    long.write_text("\n".join(rows) + "\n")
    done = cli("produce", "--csv", str(long), "--topic", "never", timeout=120)
    assert done.returncode == 2
    assert lines_of(done) == [
        f"seqstream produce: error: {long}: column 'device' looks like a key column (3 distinct "
        "values over 90 rows), and without --key-column every row is read as one key 'long': "
        "pass --key-column device (long format, many keys per file), or drop that column"
    ]
    # Without the key column, the interleaved series still show in their repeated times.
    bare = tmp_path / "bare.csv"
    bare.write_text(
        "timestamp,value\n"
        + "".join(f"2024-01-01 00:{m:02d}:00,{d}\n" for m in range(30) for d in range(3))
    )
    with pytest.raises(SeqstreamError, match=r"60 of 90 rows repeat an earlier time"):
        read_csv_events(bare, EventSchema())
    assert [len(k) for k in read_csv_events(long, EventSchema(), key_column="device")] == [30] * 3


# 4 ------------------------------------------------------------------------------------------


def test_4_a_finished_backfill_run_again_says_so_without_starting_spark(
    spark, bootstrap_servers, stream_topic, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    topic, log = stream_topic
    flags = [
        "backfill",
        "--bootstrap-servers",
        bootstrap_servers,
        "--topics",
        topic,
        "--parquet-path",
        str(tmp_path / "scores"),
        "--progress-dir",
        str(tmp_path / "progress"),
    ]
    settings = load_settings(
        None,
        {
            "kafka": {"bootstrap_servers": bootstrap_servers},
            "stream": {"topics": [topic]},
            "backfill": {
                "parquet_path": str(tmp_path / "scores"),
                "progress_dir": str(tmp_path / "progress"),
            },
        },
    )
    counts = run_backfill(spark, settings, bootstrap_servers, Request([topic]))
    assert sum(c.events_in for c in counts) == len(log)
    again = cli(*flags)
    assert again.returncode == 0
    assert lines_of(again) == [
        f"backfill: already complete ({len(counts)} chunk(s) written, progress in "
        f"{tmp_path / 'progress'}); nothing to do. To score the range again, pass --restart "
        "(the outputs' partitions are then written anew)"
    ]


# 5 ------------------------------------------------------------------------------------------


def test_5_the_demo_ends_with_its_summary_in_at_most_40_lines_and_no_stack_trace(
    tmp_path: Path,
) -> None:
    done = subprocess.run(
        [*CLI, "demo"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
        env={**environment(), "PYTHONPATH": str(REPO)},
    )
    lines = lines_of(done)
    assert done.returncode == 0, "\n".join(lines[-40:])
    assert no_stack_traces(lines) and "StackOverflowError" not in done.stderr, "\n".join(lines)
    assert len(lines) <= 40, "\n".join(lines)
    assert done.stdout.rstrip().splitlines()[-1].startswith("plot: ")  # the summary is the end


# 6 ------------------------------------------------------------------------------------------


def test_6_ctrl_c_while_spark_starts_prints_one_line(
    bootstrap_servers, stream_topic, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    topic, _ = stream_topic
    child = subprocess.Popen(
        stream_command(bootstrap_servers, topic, tmp_path),
        cwd=REPO,
        env=environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(4)  # the checks are done; Spark's JVM is starting (it takes 8 s or more)
    child.send_signal(signal.SIGINT)
    out, err = child.communicate(timeout=60)
    lines = [line for line in (out + err).splitlines() if line.strip()]
    assert child.returncode == 130, "\n".join(lines)
    assert no_stack_traces(lines) and "Error" not in out + err, "\n".join(lines)
    assert lines[-1] == "seqstream stream: interrupted while starting"
    assert len(lines) <= 4, "\n".join(lines)


# 7 ------------------------------------------------------------------------------------------


def test_7_a_stream_run_prints_its_start_line_batch_lines_and_summary_only(
    bootstrap_servers, stream_topic, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    topic, _ = stream_topic
    done = subprocess.run(
        stream_command(
            bootstrap_servers,
            topic,
            tmp_path,
            "--trigger-interval",
            "available-now",
            "--max-offsets-per-trigger",
            "250",
        ),
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        env=environment(),
    )
    lines = lines_of(done)
    assert done.returncode == 0, "\n".join(lines[-40:])
    start = [line for line in lines if "INFO seqstream.stream: streaming " in line]
    batches = [line for line in lines if '"event": "batch"' in line]
    summary = [line for line in lines if "INFO seqstream.stream: stream stopped after" in line]
    assert len(start) == 1 and len(summary) == 1 and len(batches) >= 3
    assert lines == [*start, *batches, *summary], "\n".join(lines)
    # One time format: the JVM's lines (none here) and the job's read alike.
    assert all(line[:4].isdigit() and line[10] == " " for line in lines)


# 8 ------------------------------------------------------------------------------------------


def test_8_a_reader_that_goes_away_ends_the_command_quietly() -> None:
    child = subprocess.Popen(
        [*CLI, "model", "info", "--json", str(REPO / "model" / "demo_model")],
        cwd=REPO,
        env=environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert child.stdout is not None and child.stderr is not None
    child.stdout.close()  # as `| head` does once it has its lines
    err = child.stderr.read().decode()
    assert child.wait(timeout=120) == 128 + signal.SIGPIPE
    assert err == ""


# 9 ------------------------------------------------------------------------------------------


def test_9_messages_say_what_to_do(tmp_path: Path, bootstrap_servers) -> None:  # type: ignore[no-untyped-def]
    interval = cli("stream", "--checkpoint", str(tmp_path), "--set", "stream.trigger_interval=5")
    assert interval.returncode == 2
    assert "stream.trigger_interval: Value error, must be a duration like '5 seconds'" in (
        interval.stderr
    )
    assert "got '5'" in interval.stderr and "valid string" not in interval.stderr

    flag = cli("model", "info", "--jsn", "x")
    assert flag.returncode == 2
    assert flag.stderr.splitlines()[0].startswith("usage: seqstream model info ")
    assert flag.stderr.splitlines()[-1] == (
        "seqstream model info: error: unrecognized arguments: --jsn (did you mean --json?)"
    )

    top = cli("--help")
    assert "``" not in top.stdout and "SeqstreamError" not in top.stdout

    one = tmp_path / "one.csv"
    one.write_text(
        "timestamp,value\n" + "".join(f"2024-01-01 00:{m:02d}:00,{m}\n" for m in range(5))
    )
    produced = cli(
        "produce", "--csv", str(one), "--topic", "one-key", "--bootstrap-servers", bootstrap_servers
    )
    assert produced.returncode == 0, produced.stderr
    assert "(1 key, 0 malformed on purpose)" in produced.stdout

    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    config = REPO / "model" / "demo_model" / "config.json"
    weights = tmp_path / "w.npz"
    weights.write_bytes(b"")
    imported = cli(
        "model", "import-keras", str(weights), "--config", str(config), "--out", str(not_a_folder)
    )
    assert imported.returncode == 2
    assert imported.stderr.splitlines() == [
        f"seqstream model: error: --out {not_a_folder} is a file: give a folder for the artifact"
    ]
    empty = cli("model", "import-keras", str(weights), "--config", str(config), "--out", "x")
    assert empty.returncode == 2 and "Traceback" not in empty.stderr
    assert f"cannot read {weights} as an .npz of arrays" in empty.stderr


def test_9_the_restart_line_counts_the_batches_the_user_saw(
    spark, bootstrap_servers, topic_in_halves, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    """The restart line names where the job goes on (offsets), not Spark's batch number, which
    counts batches the user never saw (without data, in event-time mode)."""
    from seqstream.pipeline.stream import start_line

    settings = settings_for(tmp_path, topic_in_halves.topic, bootstrap_servers, state_ttl_s=3600)
    run_until(spark, settings, bootstrap_servers, topic_in_halves.first)
    line = start_line(settings, *_model(settings), "Spark local[2]", "Kafka")
    assert "going on where the last run stopped (" in line
    assert "micro-batch" not in line.split("going on", 1)[1].split(")", 1)[0]


def _model(settings):  # type: ignore[no-untyped-def]
    from seqstream.pipeline.scoring.model_versions import check_model

    ref, spec = check_model(settings)
    return spec, str(ref.path)
