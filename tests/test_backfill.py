"""The backfill against the streaming job: the same rows and scores for the same events, from any
start offset (windows crossing it included), after a SIGKILL and a re-run, with clear errors for
ranges the broker cannot serve."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from seqstream.model.artifact import DEMO_MODEL_DIR, load_artifact
from seqstream.pipeline.backfill.chunks import partition_scores
from seqstream.pipeline.backfill.plan import BackfillPlan, Request, resolve_ranges
from seqstream.pipeline.backfill.run import backfill_outputs, run_backfill
from seqstream.pipeline.cli import main as cli_main
from seqstream.pipeline.config import EventSchema, load_settings
from seqstream.pipeline.errors import SeqstreamError, TopicError
from seqstream.pipeline.kafka import TopicPartition
from seqstream.pipeline.kafka.reader import read_range
from seqstream.pipeline.scoring.step import WindowStep

from helpers import CONNECTORS, LENGTH, run_until, settings_for

REPO = Path(__file__).resolve().parents[1]
FEATURE_STD = json.loads((DEMO_MODEL_DIR / "config.json").read_text())["normalization"]["std"]


@pytest.fixture(scope="module")
def streamed(spark, bootstrap_servers, stream_topic, tmp_path_factory):  # type: ignore[no-untyped-def]
    """The streaming job's output over the whole topic: (topic, log, scores, dead letters) by position."""
    topic, log = stream_topic
    folder = tmp_path_factory.mktemp("streamed")
    run_until(spark, settings_for(folder, topic, bootstrap_servers), bootstrap_servers, len(log))
    scores = {
        (r["partition"], r["offset"]): r for r in pq.read_table(folder / "scores").to_pylist()
    }
    dead = {(r["partition"], r["offset"]): r for r in pq.read_table(folder / "dead").to_pylist()}
    return topic, log, scores, dead


def backfill_settings(
    folder: Path, topic: str, bootstrap: str, chunk_events: int, connector: str = "auto"
):  # type: ignore[no-untyped-def]
    return load_settings(
        None,
        {
            "kafka": {"bootstrap_servers": bootstrap, "connector": connector},
            "stream": {"topics": [topic]},
            "backfill": {
                "parquet_path": str(folder / "scores"),
                "dead_letter_path": str(folder / "dead"),
                "chunk_events": chunk_events,
                "progress_dir": str(folder / "progress"),
            },
        },
    )


def rows_by_position(path: Path) -> dict[tuple[int, int], dict]:
    rows = pq.read_table(path).to_pylist()
    positions = [(r["partition"], r["offset"]) for r in rows]
    assert len(positions) == len(set(positions)), "a row was written twice"
    return dict(zip(positions, rows, strict=False))


def assert_same_rows(backfilled: Path, streamed: dict, starts: dict[int, int]) -> None:
    """Row for row: the stream's rows at or after each partition's start, same keys and scores."""
    got = rows_by_position(backfilled)
    want = {pos: row for pos, row in streamed.items() if pos[1] >= starts.get(pos[0], 0)}
    assert set(got) == set(want)
    for pos, row in got.items():
        for column in ("key", "event_time", "topic", "window_length", "model_version"):
            assert row[column] == want[pos][column], (pos, column)
        # The documented bound: other model batch sizes round float32 differently (a score is a
        # difference of nearby numbers, so 1e-6 of it can move in the last digits)
        assert abs(row["score"] - want[pos]["score"]) < 1e-5, pos
        # the forecast is in original units: compare in the model's normalised units, as the score
        drift = [
            abs(a - b) / std
            for a, b, std in zip(
                row["prediction"], want[pos]["prediction"], FEATURE_STD, strict=False
            )
        ]
        assert max(drift) < 1e-6, (pos, row["prediction"], want[pos]["prediction"])


@pytest.mark.parametrize("connector", CONNECTORS)
def test_backfill_from_mid_range_equals_the_stream_row_for_row(
    spark, bootstrap_servers, streamed, tmp_path, connector
) -> None:  # type: ignore[no-untyped-def]
    """The stream ran through Spark's connector; the backfill reads through each connector."""
    topic, log, stream_scores, stream_dead = streamed
    ends: dict[int, int] = {}
    for partition, offset in log:
        ends[partition] = max(ends.get(partition, 0), offset + 1)
    starts = {p: end // 2 for p, end in ends.items()}
    request = Request(
        [topic], starting_offsets=json.dumps({topic: {str(p): o for p, o in starts.items()}})
    )
    settings = backfill_settings(tmp_path, topic, bootstrap_servers, 120, connector)
    counts = run_backfill(spark, settings, bootstrap_servers, request)
    in_range = {pos: m for pos, m in log.items() if pos[1] >= starts[pos[0]]}
    assert len(counts) >= 3  # several chunks: state carried between them
    assert sum(c.events_in for c in counts) == len(in_range)
    assert sum(c.dead_lettered for c in counts) == sum(
        1 for m in in_range.values() if m.event is None
    )
    assert sum(c.scored for c in counts) == sum(
        1 for pos in stream_scores if pos[1] >= starts[pos[0]]
    )
    assert sum(c.not_yet_scoreable for c in counts) == 0  # every key had events before the start
    assert_same_rows(tmp_path / "scores", stream_scores, starts)
    assert set(rows_by_position(tmp_path / "dead")) == {
        p for p in stream_dead if p[1] >= starts[p[0]]
    }
    # The windows at the start reach back before it: each key's first scored row has a window of
    # all the key's events up to it, as many as the window holds.
    first: dict[str, dict] = {}
    for _pos, row in sorted(rows_by_position(tmp_path / "scores").items()):
        first.setdefault(row["key"], row)
    assert len(first) == 6
    for key, row in first.items():
        so_far = sum(
            1
            for (partition, offset), m in log.items()
            if m.event is not None
            and m.event.key == key
            and partition == row["partition"]
            and offset <= row["offset"]
        )
        assert row["window_length"] == min(LENGTH, so_far), (key, so_far)


def test_selecting_by_event_time_writes_exactly_the_streams_rows_of_that_time(
    spark, bootstrap_servers, streamed, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    """The whole topic is read (windows need the events before), but only events whose own
    event time is in the range are written; the others are counted, not lost."""
    topic, log, stream_scores, stream_dead = streamed
    times = sorted(m.event.ts_ms for m in log.values() if m.event is not None)
    low, high = times[len(times) // 3], times[2 * len(times) // 3]
    request = Request([topic], start_event_time_ms=low, end_event_time_ms=high)
    settings = backfill_settings(tmp_path, topic, bootstrap_servers, chunk_events=300)
    counts = run_backfill(spark, settings, bootstrap_servers, request)
    inside = {pos for pos, m in log.items() if m.event is not None and low <= m.event.ts_ms < high}
    valid = sum(1 for m in log.values() if m.event is not None)
    assert sum(c.events_in for c in counts) == len(log)
    assert sum(c.outside_event_time for c in counts) == valid - len(inside)
    assert sum(c.scored for c in counts) == len(inside & set(stream_scores))
    assert sum(c.not_yet_scoreable for c in counts) == len(inside - set(stream_scores))
    assert sum(c.dead_lettered for c in counts) == len(log) - valid
    assert_same_rows(
        tmp_path / "scores", {p: r for p, r in stream_scores.items() if p in inside}, {}
    )
    assert set(rows_by_position(tmp_path / "dead")) == set(stream_dead)


def test_killed_backfill_resumes_and_equals_the_stream(
    spark, bootstrap_servers, streamed, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    topic, log, stream_scores, stream_dead = streamed
    settings = backfill_settings(tmp_path, topic, bootstrap_servers, chunk_events=100)
    sets = [
        f"kafka.bootstrap_servers={bootstrap_servers}",
        f"backfill.parquet_path={tmp_path / 'scores'}",
        f"backfill.dead_letter_path={tmp_path / 'dead'}",
        f"backfill.progress_dir={tmp_path / 'progress'}",
        "backfill.chunk_events=100",
    ]
    child = subprocess.Popen(
        [
            sys.executable,
            str(REPO / "jobs" / "backfill.py"),  # the spark-submit entry point
            "--topics",
            topic,
            *[a for s in sets for a in ("--set", s)],
        ],
        cwd=REPO,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    progress = tmp_path / "progress"
    deadline = time.monotonic() + 240
    while not (progress / "chunk-00001.json").exists():  # two chunks done, the third running
        assert child.poll() is None, child.stderr.read().decode()[-3000:]
        assert time.monotonic() < deadline, "the backfill made no progress"
        time.sleep(0.05)
    os.killpg(child.pid, signal.SIGKILL)
    child.wait()
    plan = json.loads((progress / "plan.json").read_text())
    assert (
        len(plan["chunks"]) >= 7
        and not (progress / f"chunk-{len(plan['chunks']) - 1:05d}.json").exists()
    )
    counts = run_backfill(spark, settings, bootstrap_servers, Request([topic]))
    assert [c.chunk for c in counts] == list(range(len(plan["chunks"])))
    assert sum(c.events_in for c in counts) == len(log)
    assert_same_rows(tmp_path / "scores", stream_scores, {})
    assert set(rows_by_position(tmp_path / "dead")) == set(stream_dead)


def test_dry_run_prints_the_resolved_ranges_and_outputs_and_reads_nothing(
    bootstrap_servers, stream_topic, tmp_path, capsys
) -> None:  # type: ignore[no-untyped-def]
    topic, log = stream_topic
    code = cli_main(
        [
            "backfill",
            "--dry-run",
            "--bootstrap-servers",
            bootstrap_servers,
            "--topics",
            topic,
            "--ending-offsets",
            json.dumps({topic: {"0": 10, "1": -1, "2": -2}}),
            "--parquet-path",
            str(tmp_path / "scores"),
            "--progress-dir",
            str(tmp_path / "progress"),
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    end_1 = 1 + max(o for p, o in log if p == 1)
    assert f"{topic:<24} {0:>9} {0:>12} {10:>12} {10:>12,}" in out
    assert f"{topic:<24} {1:>9} {0:>12} {end_1:>12} {end_1:>12,}" in out
    assert f"{topic:<24} {2:>9} {0:>12} {0:>12} {0:>12,}" in out
    assert (
        f"{10 + end_1:,} events (offsets) in 1 chunk(s)" in out and str(tmp_path / "scores") in out
    )
    assert not (tmp_path / "progress").exists()


def backfill_cli(bootstrap: str, topic: str, *flags: str) -> list[str]:
    return ["backfill", "--bootstrap-servers", bootstrap, "--topics", topic, *flags]


OUTPUTS = ["--parquet-path", "{tmp}/scores", "--output-topic", "{out}"]


@pytest.mark.parametrize("dry_run", [True, False])
@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ([*OUTPUTS, "--model", "{tmp}/no-model"], "{tmp}/no-model"),
        ([], "no output: set backfill.parquet_path and/or backfill.output_topic"),
        (
            [*OUTPUTS, "--set", "stream.parquet_path={tmp}/scores"],
            "backfill.parquet_path is stream.parquet_path",
        ),
        (
            [*OUTPUTS, "--start-time", "2000", "--end-time", "1000"],
            "the end time (1000) is before the start time (2000)",
        ),
        (
            [*OUTPUTS, "--start-event-time", "2000", "--end-event-time", "2000"],
            "the end event time (2000) is not after the start event time (2000)",
        ),
    ],
)
def test_the_dry_run_makes_every_check_of_the_real_run_and_neither_creates_anything(
    bootstrap_servers, admin, stream_topic, tmp_path, capsys, flags, message, dry_run
) -> None:  # type: ignore[no-untyped-def]
    topic, _ = stream_topic
    out_topic = f"{topic}-refused-{int(dry_run)}"
    flags = [f.replace("{tmp}", str(tmp_path)).replace("{out}", out_topic) for f in flags]
    progress = ["--progress-dir", str(tmp_path / "progress")]
    argv = backfill_cli(bootstrap_servers, topic, *flags, *progress, *["--dry-run"][:dry_run])
    assert cli_main(argv) == 2
    assert message.replace("{tmp}", str(tmp_path)) in capsys.readouterr().err
    assert not (tmp_path / "progress").exists() and not (tmp_path / "scores").exists()
    assert out_topic not in admin.list_topics()  # no output topic created before the checks


def test_the_dry_run_prints_the_resolved_times_the_model_and_the_resume_point(
    bootstrap_servers, stream_topic, tmp_path, capsys
) -> None:  # type: ignore[no-untyped-def]
    topic, _ = stream_topic
    argv = backfill_cli(
        bootstrap_servers,
        topic,
        "--start-time",
        "2023-11-14T22:13:20Z",
        "--end-time",
        "1700000100000",
        "--parquet-path",
        str(tmp_path / "scores"),
        "--dry-run",
    )
    assert cli_main(argv) == 0
    out = capsys.readouterr().out
    assert (
        f"topics {topic} from record time 2023-11-14T22:13:20Z to record time "
        "2023-11-14T22:15:00Z" in out
    )
    spec = load_artifact(DEMO_MODEL_DIR).spec
    assert f"model       -> {DEMO_MODEL_DIR.resolve()} (version {spec.version}, sha256 " in out
    # No dead-letter output: said, not silent.
    assert "no dead-letter output (backfill.dead_letter_path / backfill.dead_letter_topic)" in out
    # The default progress folder is the request's own: another request gets another one.
    assert "progress    -> .seqstream/backfill/" in out
    other = cli_main(backfill_cli(bootstrap_servers, topic, "--parquet-path", "x", "--dry-run"))
    assert other == 0
    folders = [line for line in capsys.readouterr().out.splitlines() if "progress    ->" in line]
    assert folders and folders[0] not in out


def test_without_a_dead_letter_output_the_backfill_says_they_are_counted_only(
    spark, bootstrap_servers, stream_topic, tmp_path, caplog
) -> None:  # type: ignore[no-untyped-def]
    topic, log = stream_topic
    settings = backfill_settings(tmp_path, topic, bootstrap_servers, 100_000)
    settings = settings.model_copy(
        update={"backfill": settings.backfill.model_copy(update={"dead_letter_path": None})}
    )
    with caplog.at_level("WARNING", logger="seqstream.backfill"):
        counts = run_backfill(spark, settings, bootstrap_servers, Request([topic]))
    assert sum(c.dead_lettered for c in counts) == sum(1 for m in log.values() if m.event is None)
    assert any(
        "no dead-letter output (backfill.dead_letter_path / backfill.dead_letter_topic)"
        in r.message
        and "only counted" in r.message
        for r in caplog.records
    )


def test_times_resolve_to_the_first_record_at_or_after_them(
    bootstrap_servers, admin, stream_topic
) -> None:  # type: ignore[no-untyped-def]
    topic, log = stream_topic
    ends = admin.end_offsets(topic)
    records = list(read_range(bootstrap_servers, topic, {p: (0, e) for p, e in ends.items()}))
    stamps = sorted({r.timestamp_ms for r in records})
    start, end = stamps[len(stamps) // 3], stamps[2 * len(stamps) // 3]

    def first_at_or_after(partition: int, ms: int) -> int:
        return min(
            (r.offset for r in records if r.partition == partition and r.timestamp_ms >= ms),
            default=ends[partition],
        )

    ranges = resolve_ranges(admin, [topic], start_time_ms=start, end_time_ms=end)
    assert [(r.partition, r.start, r.end) for r in ranges] == [
        (p, first_at_or_after(p, start), first_at_or_after(p, end)) for p in sorted(ends)
    ]


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        (
            {
                "ending": '{"T": {"0": 5, "1": -1, "2": -1}}',
                "starting": '{"T": {"0": 9, "1": -2, "2": -2}}',
            },
            r"the range of T partition 0 ends \(offset 5\) before it starts \(offset 9\)",
        ),
        (
            {"ending": '{"T": {"0": 100000, "1": -1, "2": -1}}'},
            r"ends at offset 100000 of T partition 0, past its end \(\d+\)",
        ),
        (
            {"starting": '{"T": {"0": -5, "1": -2, "2": -2}}'},
            r"starts at offset -5 of T partition 0, but the broker only holds offsets 0\.\.\d+ .* start at 0 or later",
        ),
        ({"starting": '{"T": {"0": 0}}'}, r"gives no offset for T partition\(s\) \[1, 2\]"),
        (
            {"starting": '{"T": {"0": 0, "1": 0, "2": 0, "7": 0}}'},
            r"names T partition\(s\) \[7\], which do not exist",
        ),
        ({"starting": "the beginning"}, r"must be earliest, latest or JSON"),
        (
            {"start_time_ms": 2000, "end_time_ms": 1000},
            r"the end time \(1000\) is before the start time \(2000\)",
        ),
    ],
)
def test_ranges_the_broker_cannot_serve_fail_precisely(admin, stream_topic, kwargs, error) -> None:  # type: ignore[no-untyped-def]
    topic, _ = stream_topic
    kwargs = {
        k: v.replace('"T"', json.dumps(topic)) if isinstance(v, str) else v
        for k, v in kwargs.items()
    }
    with pytest.raises(SeqstreamError, match=error.replace("T partition", f"{topic} partition")):
        resolve_ranges(admin, [topic], **kwargs)


def test_unknown_topic_fails_naming_it(admin) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(TopicError, match="topic 'no-such-topic' does not exist"):
        resolve_ranges(admin, ["no-such-topic"])


def test_bad_requests_fail_before_anything_is_read(
    spark, bootstrap_servers, stream_topic, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    topic, _ = stream_topic
    settings = backfill_settings(tmp_path, topic, bootstrap_servers, 100)
    mismatched = settings.model_copy(
        update={"events": settings.events.model_copy(update={"features": ["cpu", "mem"]})}
    )
    with pytest.raises(
        SeqstreamError, match=r"reads features \['value'\], but events.features is \['cpu', 'mem'\]"
    ):
        run_backfill(spark, mismatched, bootstrap_servers, Request([topic]))
    same_folder = settings.model_copy(
        update={"stream": settings.stream.model_copy(update={"parquet_path": tmp_path / "scores"})}
    )
    with pytest.raises(SeqstreamError, match="backfill.parquet_path is stream.parquet_path"):
        run_backfill(spark, same_folder, bootstrap_servers, Request([topic]))
    assert not (tmp_path / "progress").exists() and not (tmp_path / "scores").exists()


def test_a_different_request_does_not_resume_another_backfills_progress(
    spark, bootstrap_servers, stream_topic, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    topic, _ = stream_topic
    settings = backfill_settings(tmp_path, topic, bootstrap_servers, 100_000)
    (tmp_path / "progress").mkdir()
    (tmp_path / "progress" / "plan.json").write_text(
        BackfillPlan(Request(["other"]), (), {}, (), model="x").to_json()
    )
    with pytest.raises(SeqstreamError) as raised:
        run_backfill(spark, settings, bootstrap_servers, Request([topic]))
    assert str(raised.value) == (
        f"{tmp_path / 'progress'} holds the progress of another backfill (topics other from "
        "offsets earliest to offsets latest, model sha256 x): pass --restart to discard it, or "
        "give this one its own --progress-dir (backfill.progress_dir)"
    )


def test_a_backfill_resumed_with_other_outputs_is_refused(
    spark, bootstrap_servers, stream_topic, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    """Its finished chunks went to the recorded outputs: resuming into new ones would leave them
    out of the new folder while counting them as scored."""
    topic, _ = stream_topic
    settings = backfill_settings(tmp_path, topic, bootstrap_servers, 100_000)
    recorded = {**backfill_outputs(settings), "parquet_path": str(tmp_path / "first-scores")}
    (tmp_path / "progress").mkdir()
    (tmp_path / "progress" / "plan.json").write_text(
        BackfillPlan(
            Request([topic]),
            (),
            {},
            (),
            model=load_artifact(DEMO_MODEL_DIR).spec.weights_sha256,
            outputs=recorded,
        ).to_json()
    )
    with pytest.raises(SeqstreamError) as raised:
        run_backfill(spark, settings, bootstrap_servers, Request([topic]))
    assert str(raised.value) == (
        f"{tmp_path / 'progress'} holds a backfill whose finished chunks were written to other outputs "
        f"({{'parquet_path': '{tmp_path / 'first-scores'} -> {tmp_path / 'scores'}'}}): resume it with the "
        "outputs it had, or pass --restart to score the whole range into the new ones"
    )
    assert not (tmp_path / "scores").exists()


def test_a_topic_partition_read_out_of_offset_order_is_refused() -> None:
    """Each key's state runs through its partition's events in log order: a topic-partition split
    over Spark partitions (e.g. a minPartitions read) would break that, so it fails, naming it."""

    def kafka_rows(offsets: list[int]) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "kafka_key": [b"a"] * len(offsets),
                "value": [b'{"key": "a", "ts": 1, "value": 1.0}'] * len(offsets),
                "topic": "t",
                "partition": 0,
                "offset": offsets,
                "timestamp": pd.Timestamp(0, tz="UTC"),
            }
        )

    windows = partition_scores(
        iter([kafka_rows([5, 6]), kafka_rows([3, 4])]),
        step=WindowStep(ref=None, schema=EventSchema(), max_bytes=1024, length=4),  # type: ignore[arg-type]
        states={},
        emit_from={TopicPartition("t", 0): 10**9},
    )
    with pytest.raises(
        SeqstreamError,
        match=r"read t-0 out of offset order \(at 3\): each topic-partition must be one Spark partition",
    ):
        list(windows)
