"""Exactly-once Kafka output (``stream.kafka_delivery: exactly-once``): the streaming job is
SIGKILLed at each point between sending a batch's records, committing its Kafka transaction and
committing the Spark batch, restarted, and a read_committed reader sees every source event's
score and dead letter once, with the scores of the independent reference. The backfill's
Kafka output, killed between chunks' transactions and resumed, the same."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

from seqstream.pipeline.backfill.plan import Request
from seqstream.pipeline.backfill.run import run_backfill
from seqstream.pipeline.config import load_settings
from seqstream.pipeline.kafka.admin import TopicAdmin
from seqstream.pipeline.kafka.reader import read_range

from helpers import REPO, expected_scores, run_until, settings_for
from read_committed import read_committed

FAULTS = ["kafka-sending@1", "kafka-sent@2", "kafka-committed@3"]


def _killed_at(fault: str, job: list[str], sets: list[str]) -> None:
    """Run the job as its own process group until the fault point SIGKILLs it."""
    child = subprocess.run(
        [
            sys.executable,
            str(REPO / "tests" / "fault_child.py"),
            fault,
            *job,
            *[a for s in sets for a in ("--set", s)],
        ],
        cwd=REPO,
        env=dict(os.environ),
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        timeout=300,
        check=False,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()[-3000:]


def check_committed(bootstrap: str, scores_topic: str, dead_topic: str, log, expected) -> None:  # type: ignore[no-untyped-def]
    """Each scored source event once with the reference's score, each dead letter once, and
    the log holds aborted records besides (the faults did cut transactions short)."""
    scores = [json.loads(r.value) for r in read_committed(bootstrap, scores_topic)]
    positions = [(s["partition"], s["offset"]) for s in scores]
    assert len(positions) == len(set(positions)), "a score was committed twice"
    assert set(positions) == set(expected)
    assert max(abs(s["score"] - expected[(s["partition"], s["offset"])]) for s in scores) < 1e-5
    dead = [dict(r.headers) for r in read_committed(bootstrap, dead_topic)]
    dead_positions = sorted(
        (int(h["seqstream.error.partition"]), int(h["seqstream.error.offset"])) for h in dead
    )
    assert dead_positions == sorted(p for p, m in log.items() if m.event is None)
    with TopicAdmin(bootstrap) as admin:
        ends = admin.end_offsets(scores_topic)
    logged = list(read_range(bootstrap, scores_topic, {p: (0, e) for p, e in ends.items()}))
    assert len(logged) > len(scores)


def test_sigkill_at_each_transaction_point_then_restart_commits_each_record_once(
    spark, bootstrap_servers, stream_topic, reference_scorer, tmp_path
) -> None:
    topic, log = stream_topic
    scores_topic, dead_topic = f"{topic}-eos-scores", f"{topic}-eos-dead"
    settings = settings_for(
        tmp_path,
        topic,
        bootstrap_servers,
        output_topic=scores_topic,
        dead_letter_topic=dead_topic,
        kafka_delivery="exactly-once",
    )
    sets = [
        f"kafka.bootstrap_servers={bootstrap_servers}",
        f"stream.topics=[{topic}]",
        f"stream.checkpoint={tmp_path / 'cp'}",
        f"stream.parquet_path={tmp_path / 'scores'}",
        f"stream.output_topic={scores_topic}",
        f"stream.dead_letter_topic={dead_topic}",
        "stream.kafka_delivery=exactly-once",
        "stream.max_offsets_per_trigger=150",
        "stream.trigger_interval=0 seconds",
    ]
    for fault in FAULTS:
        _killed_at(fault, [str(REPO / "jobs" / "stream.py")], sets)
        commits = sorted(int(p.name) for p in (tmp_path / "cp" / "commits").glob("[0-9]*"))
        assert commits[-1] == int(fault.split("@")[1]) - 1  # it died inside that batch
    done = len(list((tmp_path / "cp" / "commits").glob("[0-9]*")))
    rerun = run_until(spark, settings, bootstrap_servers, len(log) - 150 * done)
    assert rerun[0].batch_id == done  # batch 3, whose transaction had committed, is re-run
    check_committed(
        bootstrap_servers, scores_topic, dead_topic, log, expected_scores(log, reference_scorer)
    )


def test_backfill_killed_at_transaction_points_resumes_committing_each_record_once(
    spark, bootstrap_servers, stream_topic, reference_scorer, tmp_path
) -> None:
    topic, log = stream_topic
    scores_topic, dead_topic = f"{topic}-eos-backfill", f"{topic}-eos-backfill-dead"
    backfill = {
        "output_topic": scores_topic,
        "dead_letter_topic": dead_topic,
        "chunk_events": 150,
        "progress_dir": str(tmp_path / "progress"),
    }
    sets = [
        f"kafka.bootstrap_servers={bootstrap_servers}",
        "stream.kafka_delivery=exactly-once",
        *[f"backfill.{k}={v}" for k, v in backfill.items()],
    ]
    for fault in ["kafka-sent@1", "kafka-committed@2"]:
        _killed_at(fault, [str(REPO / "jobs" / "backfill.py"), "--topics", topic], sets)
        finished = sorted((tmp_path / "progress").glob("chunk-*.json"))
        assert len(finished) == int(fault.split("@")[1])  # it died inside that chunk
    settings = load_settings(
        None,
        {
            "kafka": {"bootstrap_servers": bootstrap_servers},
            "stream": {"topics": [topic], "kafka_delivery": "exactly-once"},
            "backfill": backfill,
        },
    )
    counts = run_backfill(spark, settings, bootstrap_servers, Request([topic]))
    assert sum(c.events_in for c in counts) == len(log)
    check_committed(
        bootstrap_servers, scores_topic, dead_topic, log, expected_scores(log, reference_scorer)
    )
