"""The standalone-cluster commands of docs/deploy.md, run as written against a Spark master and worker started
from the installed pyspark: the streaming job, submitted with spark-submit and Spark's Kafka
connector (--jars), scores a topic of the embedded broker on the worker's executors exactly as the
reference does."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pyspark
import pytest

from seqstream.model.artifact import DEMO_MODEL_DIR
from seqstream.pipeline.kafka.jars import spark_connector_jars

from helpers import expected_scores

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent  # spark-class and spark-submit of the installed pyspark


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def readme_block(marker: str) -> str:
    text = (REPO / "docs" / "deploy.md").read_text()
    return re.search(rf"<!-- {marker} -->\n```bash\n(.*?)```", text, re.S).group(1)


def start(args: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        args, stdout=log.open("w"), stderr=subprocess.STDOUT, env=env, start_new_session=True
    )


def wait_for(log: Path, text: str, process: subprocess.Popen, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while text not in log.read_text():
        assert process.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, f"no {text!r} in {log}: {log.read_text()[-3000:]}"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def standalone_master(tmp_path_factory) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """A master and one worker (2 cores, 2 GiB) on loopback, as separate JVMs."""
    work = tmp_path_factory.mktemp("standalone")
    env = {
        **os.environ,
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_WORKER_DIR": str(work / "worker"),
        "PYSPARK_PYTHON": sys.executable,
    }
    port = free_port()
    url = f"spark://127.0.0.1:{port}"
    master = start(
        [
            str(BIN / "spark-class"),
            "org.apache.spark.deploy.master.Master",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--webui-port",
            str(free_port()),
        ],
        work / "master.log",
        env,
    )
    worker = None
    try:
        wait_for(work / "master.log", "I have been elected leader", master)
        worker = start(
            [
                str(BIN / "spark-class"),
                "org.apache.spark.deploy.worker.Worker",
                "--host",
                "127.0.0.1",
                "--cores",
                "2",
                "--memory",
                "2g",
                "--webui-port",
                str(free_port()),
                url,
            ],
            work / "worker.log",
            env,
        )
        wait_for(work / "worker.log", "Successfully registered with master", worker)
        yield url
    finally:
        for process in (worker, master):
            if process is not None and process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(30)


def test_readme_standalone_commands_score_a_topic_on_the_cluster(
    standalone_master, bootstrap_servers, stream_topic, reference_scorer, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    topic, log = stream_topic
    env = {
        **os.environ,
        "SPARK_MASTER": standalone_master,
        "KAFKA": bootstrap_servers,
        "TOPIC": topic,
        "MODEL": str(DEMO_MODEL_DIR),
        "OUT": str(tmp_path),
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "PYSPARK_PYTHON": sys.executable,
        "SPARK_LOCAL_IP": "127.0.0.1",
        "CONNECTOR_JARS": ",".join(str(j) for j in spark_connector_jars(pyspark.__version__)),
    }
    run = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", readme_block("cluster-standalone")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=480,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    # One log stream: spark-submit sends the Python driver's lines to stdout, and the job sends
    # Spark's there too once its session exists; INFO only from seqstream, after Spark's three
    # start-up lines (printed before spark.log.level applies), and no stack trace.
    lines = run.stdout.splitlines()
    start = [line for line in lines if "INFO seqstream.stream: streaming " in line]
    assert len(start) == 1 and f"Spark {standalone_master}" in start[0]
    assert "Apache Kafka 4." in start[0] and "through Spark's kafka connector" in start[0]
    assert sum("INFO seqstream.stream: stream stopped after" in line for line in lines) == 1
    jvm_info = [
        line for line in run.stdout.splitlines() + run.stderr.splitlines() if " INFO " in line
    ]
    assert [
        line for line in jvm_info if "seqstream" not in line and "SparkContext" not in line
    ] == []
    assert len([line for line in jvm_info if "SparkContext" in line]) <= 3
    assert "Traceback" not in run.stdout + run.stderr
    assert "\tat " not in run.stdout + run.stderr  # a Java stack trace's frames
    scores = pq.read_table(tmp_path / "scores").to_pylist()
    expected = expected_scores(log, reference_scorer)
    got = {(r["partition"], r["offset"]): r["score"] for r in scores}
    assert len(got) == len(scores) and set(got) == set(expected)
    assert max(abs(got[p] - expected[p]) for p in got) < 1e-5
    dead = pq.read_table(tmp_path / "dead_letters").to_pylist()
    assert sorted((r["partition"], r["offset"]) for r in dead) == sorted(
        p for p, m in log.items() if m.event is None
    )
