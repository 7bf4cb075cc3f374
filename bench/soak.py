"""Soak: a steady stream for a long time, with the broker paused, the broker SIGKILLed and started
again on its storage, and the job SIGKILLed on a schedule; then nothing may be lost or written
twice, and the scores must equal a clean run's.

    python -m bench.soak [--minutes 30] [--rate 300] [--pause-every 300] [--pause-s 30]
                         [--kill-every 420] [--broker-kill-every 540] [--broker-down-s 10]
                         [--connector auto|jvm|python]

Runs its own embedded broker (Apache Kafka), a producer thread at ``--rate`` events/s (synthetic
keys; it retries while the broker is down), and the
streaming job as a subprocess (``jobs/stream.py``, as spark-submit runs it; restarted after each
SIGKILL from its checkpoint). At the end the job catches up and stops; a clean available-now run
of the same job scores the same topic into another folder as the reference. Writes
``bench/results/soak.json``. Not part of the test suite: it takes ``--minutes`` and more.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from seqstream.pipeline.config import EventSchema
from seqstream.pipeline.kafka import EmbeddedBroker, TopicAdmin, open_producer, raise_for_failures
from seqstream.pipeline.sources.replay import SyntheticSpec, synthetic_stream

REPO = Path(__file__).resolve().parents[1]
MIN_LENGTH = 8  # the demo model's window.min_length


def _job(bootstrap: str, topic: str, out: Path, connector: str, *extra: str) -> list[str]:
    sets = {
        "kafka.bootstrap_servers": bootstrap,
        "kafka.connector": connector,
        "kafka.connect_timeout_s": "5",
        "kafka.retry_timeout_s": "180",
        "stream.topics": f"[{topic}]",
        "stream.checkpoint": str(out / "cp"),
        "stream.parquet_path": str(out / "scores"),
        "stream.dead_letter_path": str(out / "dead"),
        "stream.trigger_interval": "1 second",
    }
    return [
        sys.executable,
        str(REPO / "jobs" / "stream.py"),
        *[a for k, v in sets.items() for a in ("--set", f"{k}={v}")],
        *extra,
    ]


def _start(command: list[str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        command, cwd=REPO, start_new_session=True, stdout=log.open("ab"), stderr=subprocess.STDOUT
    )


def _produce(
    bootstrap: str, topic: str, rate: float, seconds: float, sent: list[int], stop: threading.Event
) -> None:
    """Synthetic events in time order, ``rate`` per second, until ``seconds`` pass."""
    keys = 50
    per_key = int(rate * seconds / keys) + 1
    messages = synthetic_stream(
        SyntheticSpec(keys=keys, events_per_key=per_key, seed=11), EventSchema()
    ).messages
    producer = open_producer(bootstrap, timeout_s=10, delivery_timeout_s=300)
    started = time.monotonic()
    for i, message in enumerate(messages):
        if stop.is_set() or time.monotonic() - started > seconds:
            break
        ahead = started + i / rate - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)
        producer.send(topic, message.value, key=message.key.encode())
        sent[0] += 1
    raise_for_failures(producer.flush(600), topic)
    producer.close()


def _rows(folder: Path) -> list[dict[str, Any]]:
    return (
        pq.read_table(folder, columns=["partition", "offset", "score"]).to_pylist()
        if folder.exists()
        else []
    )


def _caught_up(out: Path, ends: dict[int, int]) -> bool:
    offsets = sorted((out / "cp" / "offsets").glob("[0-9]*"), key=lambda p: int(p.name))
    commits = {p.name for p in (out / "cp" / "commits").glob("[0-9]*")}
    if not offsets or offsets[-1].name not in commits:
        return False
    done = json.loads(offsets[-1].read_text().splitlines()[2])
    return all(int(o) >= ends[int(p)] for ps in done.values() for p, o in ps.items())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--rate", type=float, default=300.0, help="events/s produced")
    parser.add_argument(
        "--pause-every", type=float, default=300.0, help="seconds between broker pauses"
    )
    parser.add_argument("--pause-s", type=float, default=30.0, help="how long each pause lasts")
    parser.add_argument(
        "--kill-every", type=float, default=420.0, help="seconds between SIGKILLs of the job"
    )
    parser.add_argument(
        "--broker-kill-every",
        type=float,
        default=540.0,
        help="seconds between SIGKILLs of the broker (started again on its storage)",
    )
    parser.add_argument(
        "--broker-down-s", type=float, default=10.0, help="how long a killed broker stays down"
    )
    parser.add_argument("--connector", default="auto", help="kafka.connector of the job")
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "soak.json"))
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="seqstream-soak-"))
    seconds = args.minutes * 60
    faults: list[dict[str, Any]] = []
    with EmbeddedBroker() as broker:
        assert broker.info is not None
        bootstrap, topic = broker.bootstrap_servers, "soak"
        with TopicAdmin(bootstrap) as admin:
            admin.create_topic(topic, 4)
        sent, stop = [0], threading.Event()
        producer = threading.Thread(
            target=_produce, args=(bootstrap, topic, args.rate, seconds, sent, stop)
        )
        job_command = _job(bootstrap, topic, work / "soak", args.connector)
        job = _start(job_command, work / "job.log")
        started = time.monotonic()
        producer.start()
        next_pause, next_kill = args.pause_every, args.kill_every
        next_broker_kill = args.broker_kill_every
        while producer.is_alive():
            elapsed = time.monotonic() - started
            if elapsed >= next_broker_kill:
                broker.kill()
                time.sleep(args.broker_down_s)
                broker.start()
                faults.append(
                    {
                        "at_s": round(elapsed),
                        "fault": f"broker SIGKILLed, started again on its storage after "
                        f"{args.broker_down_s:g}s",
                    }
                )
                next_broker_kill += args.broker_kill_every
            elif elapsed >= next_pause:
                os.kill(broker.info.pid, signal.SIGSTOP)
                time.sleep(args.pause_s)
                os.kill(broker.info.pid, signal.SIGCONT)
                faults.append({"at_s": round(elapsed), "fault": f"broker paused {args.pause_s:g}s"})
                next_pause += args.pause_every
            elif elapsed >= next_kill:
                os.killpg(job.pid, signal.SIGKILL)
                job.wait()
                job = _start(job_command, work / "job.log")
                faults.append({"at_s": round(elapsed), "fault": "job SIGKILLed and restarted"})
                next_kill += args.kill_every
            elif job.poll() is not None:
                raise SystemExit(
                    f"the job ended by itself (rc {job.returncode}); see {work / 'job.log'}"
                )
            time.sleep(1)
        with TopicAdmin(bootstrap) as admin:
            ends = admin.end_offsets(topic)
        deadline = time.monotonic() + 900
        while not _caught_up(work / "soak", ends) and time.monotonic() < deadline:
            time.sleep(2)
        os.killpg(job.pid, signal.SIGTERM)
        job.wait(timeout=300)
        clean = subprocess.run(
            _job(
                bootstrap,
                topic,
                work / "clean",
                args.connector,
                "--trigger-interval",
                "available-now",
            ),
            cwd=REPO,
            capture_output=True,
        )
        if clean.returncode != 0:
            raise SystemExit(f"the clean run failed: {clean.stderr.decode()[-2000:]}")
    soak, reference = _rows(work / "soak" / "scores"), _rows(work / "clean" / "scores")
    positions = [(r["partition"], r["offset"]) for r in soak]
    expected = {(r["partition"], r["offset"]): r["score"] for r in reference}
    got = {(r["partition"], r["offset"]): r["score"] for r in soak}
    # float32: micro-batches of other sizes round differently, so tiny scores differ relatively
    differences = [abs(got[p] - s) for p, s in expected.items() if p in got]
    beyond = sum(abs(got[p] - s) > 1e-5 * max(1.0, abs(s)) for p, s in expected.items() if p in got)
    result = {
        "minutes": args.minutes,
        "broker": broker.info.description,
        "connector": args.connector,
        "rate_per_s": args.rate,
        "events_produced": sent[0],
        "faults": faults,
        "score_rows": len(soak),
        "reference_rows": len(reference),
        "expected_rows": sum(ends.values()) - 50 * (MIN_LENGTH - 1),
        "duplicated_rows": len(positions) - len(set(positions)),
        "lost_rows": len(set(expected) - set(got)),
        "extra_rows": len(set(got) - set(expected)),
        "max_abs_score_difference": max(differences, default=0.0),
        "rows_beyond_tolerance": beyond,
        "tolerance": "|soak - clean| <= 1e-5 * max(1, |clean|) (float32)",
        "wall_s": round(time.monotonic() - started),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    ok = not (result["duplicated_rows"] or result["lost_rows"] or result["extra_rows"])
    ok = ok and not beyond and result["score_rows"] == result["expected_rows"]
    print(f"soak {'passed' if ok else 'FAILED'}; work folder {work}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
