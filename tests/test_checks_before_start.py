"""Wrong settings are refused when a job starts, before Spark or Kafka are touched, with the
CLI's one-line error naming the setting (no broker is reachable at the address used here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from seqstream.pipeline.cli import main

UNREACHABLE = "127.0.0.1:9"  # discard port: a job that got as far as Kafka would fail differently


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert main([*argv, "--bootstrap-servers", UNREACHABLE]) == 2
    out, err = capsys.readouterr()
    assert "Traceback" not in err and out == ""
    return err.strip()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (
            ["--device", "tpu"],
            "stream.device: Value error, must be cpu, cuda or cuda:N (a GPU index), got 'tpu'",
        ),
        (
            ["--trigger-interval", "banana"],
            "stream.trigger_interval: Value error, must be a duration like '5 seconds'",
        ),
        (["--trigger-interval", "5 sekonds"], "got '5 sekonds'"),
        (
            ["--starting-offsets", "bogus"],
            'stream.starting_offsets: Value error, must be earliest, latest or JSON like {"topic":{"0":23,"1":-2}}',
        ),
        (
            ["--starting-offsets", '{"other":{"0":5}}'],
            "names topic(s) ['other'] that stream.topics does not read (['events'])",
        ),
        (
            ["--set", "stream.watermark=soon"],
            "stream.watermark: Value error, must be a duration like '10 minutes'",
        ),
    ],
)
def test_bad_stream_settings_fail_at_config_time(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, flags: list[str], message: str
) -> None:
    err = run(
        capsys,
        "stream",
        "--checkpoint",
        str(tmp_path / "cp"),
        "--parquet-path",
        str(tmp_path / "s"),
        *flags,
    )
    assert err.startswith("seqstream stream: error: invalid configuration: ")
    assert message in err


@pytest.mark.parametrize("setting", ["--checkpoint", "--parquet-path", "--dead-letter-path"])
def test_a_folder_that_cannot_be_written_is_named_before_start(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, setting: str
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    folders = {
        "--checkpoint": tmp_path / "cp",
        "--parquet-path": tmp_path / "s",
        "--dead-letter-path": tmp_path / "d",
    }
    folders[setting] = blocker / "below"
    argv = [a for flag, path in folders.items() for a in (flag, str(path))]
    err = run(capsys, "stream", *argv)
    name = "stream." + setting.lstrip("-").replace("-", "_")
    assert (
        err
        == f"seqstream stream: error: {name} {blocker / 'below'} cannot be created: {blocker} is a file, not a folder"
    )
    assert not (tmp_path / "cp").exists()


def test_the_backfill_checks_its_folders_too(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    err = run(
        capsys,
        "backfill",
        "--parquet-path",
        str(blocker / "scores"),
        "--progress-dir",
        str(tmp_path / "p"),
    )
    assert err == (
        f"seqstream backfill: error: backfill.parquet_path {blocker / 'scores'} cannot be created: "
        f"{blocker} is a file, not a folder"
    )
