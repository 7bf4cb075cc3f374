"""The embedded broker (Apache Kafka, KRaft combined mode) and its lifecycle, in-process and
through `seqstream broker`: ready when it answers metadata, its log kept on disk across restarts
and crashes, and every failed start one clear line with no JVM left behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from seqstream.pipeline.bootstrap import resolve_bootstrap
from seqstream.pipeline.config import load_settings
from seqstream.pipeline.errors import BrokerError, KafkaUnavailableError
from seqstream.pipeline.kafka import open_producer
from seqstream.pipeline.kafka.admin import TopicAdmin
from seqstream.pipeline.kafka.broker import EmbeddedBroker
from seqstream.pipeline.kafka.broker_process import answers_metadata, port_is_bound
from seqstream.pipeline.kafka.reader import read_range


def pid_alive(pid: int) -> bool:
    return (
        Path(f"/proc/{pid}").exists()
        and "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2]
    )


def kafka_jvms(storage: Path | str) -> list[int]:
    """Pids of broker JVMs whose command line names ``storage`` (its server.properties)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes()
        except OSError:
            continue
        if b"kafka.Kafka" in text and str(storage).encode() in text:
            found.append(int(cmdline.parent.name))
    return [pid for pid in found if pid_alive(pid)]


def send(bootstrap: str, topic: str, count: int) -> None:
    producer = open_producer(bootstrap)
    for i in range(count):
        producer.send(topic, key=f"k{i % 5}".encode(), value=str(i).encode())
    producer.flush(30)
    producer.close()


def seqstream(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SEQSTREAM_")}
    return subprocess.run(
        [sys.executable, "-m", "seqstream.pipeline.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**clean, **(env or {})},
        timeout=120,
    )


def test_context_manager_answers_then_leaves_nothing_behind() -> None:
    with EmbeddedBroker() as broker:
        info = broker.info
        assert info is not None
        assert info.description.startswith("Apache Kafka 4.")
        assert answers_metadata(broker.bootstrap_servers)
        assert pid_alive(info.pid) and kafka_jvms(info.storage) == [info.pid]
    assert not pid_alive(info.pid)
    assert not port_is_bound(info.port) and not port_is_bound(info.controller_port)
    assert not Path(info.storage).exists()  # a temporary storage goes with the broker


def test_a_killed_broker_starts_again_on_its_storage_with_every_record(tmp_path: Path) -> None:
    with EmbeddedBroker(storage=tmp_path / "kafka") as broker:
        with TopicAdmin(broker.bootstrap_servers) as admin:
            admin.create_topic("kept", 2)
        send(broker.bootstrap_servers, "kept", 500)
        address = broker.bootstrap_servers
        broker.kill()  # SIGKILL: no clean shutdown, the log as the crash left it
        assert not answers_metadata(address, timeout_s=0.5)
        broker.start()
        assert broker.bootstrap_servers == address  # same ports, same storage
        with TopicAdmin(address) as admin:
            ends = admin.end_offsets("kept")
        assert sum(ends.values()) == 500
        records = list(read_range(address, "kept", {p: (0, e) for p, e in ends.items()}))
        assert sorted(int(r.value) for r in records) == list(range(500))
    assert (tmp_path / "kafka" / "data" / "meta.properties").is_file()  # a given storage stays


def test_cli_start_status_stop(tmp_path: Path) -> None:
    assert seqstream("broker", "status", cwd=tmp_path).returncode == 1

    started = seqstream("broker", "start", cwd=tmp_path)
    assert started.returncode == 0, started.stderr
    state = json.loads((tmp_path / ".seqstream" / "broker.json").read_text())
    assert started.stdout.startswith(
        f"embedded broker started: 127.0.0.1:{state['port']} (Apache Kafka 4."
    )
    try:
        again = seqstream("broker", "start", cwd=tmp_path)
        assert again.stdout.startswith(
            f"embedded broker already running: 127.0.0.1:{state['port']}"
        )
        same_port = seqstream("broker", "start", "--port", str(state["port"]), cwd=tmp_path)
        assert same_port.returncode == 0 and "already running" in same_port.stdout
        other = state["port"] + 1 if state["port"] < 65_535 else state["port"] - 1
        elsewhere = seqstream("broker", "start", "--port", str(other), cwd=tmp_path)
        assert elsewhere.returncode == 2 and elsewhere.stdout == ""
        assert elsewhere.stderr.strip() == (
            f"seqstream broker: error: an embedded broker already runs at "
            f"127.0.0.1:{state['port']} (pid {state['pid']}), not on port {other}: use that "
            f"address, or `seqstream broker stop` first and start again with --port {other}"
        )
        status = seqstream("broker", "status", cwd=tmp_path)
        assert status.returncode == 0
        assert f"127.0.0.1:{state['port']} (Apache Kafka 4." in status.stdout
        assert f"pid {state['pid']})" in status.stdout
        with TopicAdmin(f"127.0.0.1:{state['port']}") as admin:
            admin.create_topic("lifecycle", 2)
            assert admin.describe_topic("lifecycle").partitions == 2
        send(f"127.0.0.1:{state['port']}", "lifecycle", 40)
    finally:
        stopped = seqstream("broker", "stop", cwd=tmp_path)
    assert stopped.stdout.strip() == "embedded broker stopped"
    assert not pid_alive(state["pid"])
    assert not port_is_bound(state["port"])
    assert not (tmp_path / ".seqstream" / "broker.json").exists()
    assert seqstream("broker", "status", cwd=tmp_path).returncode == 1
    assert (
        seqstream("broker", "stop", cwd=tmp_path).stdout.strip()
        == "embedded broker: was not running"
    )
    # Started again: the same address and the topic with its records, from the state folder.
    restarted = seqstream("broker", "start", cwd=tmp_path)
    try:
        assert restarted.stdout.startswith(f"embedded broker started: 127.0.0.1:{state['port']}")
        with TopicAdmin(f"127.0.0.1:{state['port']}") as admin:
            assert sum(admin.end_offsets("lifecycle").values()) == 40
    finally:
        assert seqstream("broker", "stop", cwd=tmp_path).returncode == 0


def test_start_on_a_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    with EmbeddedBroker() as first:
        assert first.info is not None
        second = EmbeddedBroker(port=first.info.port, storage=tmp_path / "second")
        with pytest.raises(BrokerError, match=rf"127.0.0.1:{first.info.port} is in use"):
            second.start()
        assert kafka_jvms(tmp_path / "second") == []


def test_a_broker_that_does_not_come_up_in_time_is_stopped_and_named(tmp_path: Path) -> None:
    broker = EmbeddedBroker(storage=tmp_path / "slow", start_timeout_s=0.3)
    with pytest.raises(BrokerError) as failed:
        broker.start()
    message = str(failed.value)
    assert "did not answer a Kafka metadata request within 0.3s (broker.start_timeout_s)" in message
    assert message.endswith(f"see its log {tmp_path / 'slow' / 'broker.log'}")
    assert kafka_jvms(tmp_path / "slow") == []  # no orphan JVM


def test_a_stale_storage_folder_is_refused_in_one_line(tmp_path: Path) -> None:
    """A storage cut short while formatting, and one formatted for another node: each start
    fails with the cause and the log, and leaves no JVM."""
    half = tmp_path / "half"
    (half / "data").mkdir(parents=True)
    (half / "data" / "leftover.log").write_text("")
    with pytest.raises(BrokerError, match=r"storage .*half/data holds files but no meta.proper"):
        EmbeddedBroker(storage=half).start()

    other = tmp_path / "other"
    with EmbeddedBroker(storage=other):
        pass
    meta = other / "data" / "meta.properties"
    meta.write_text(meta.read_text().replace("node.id=1", "node.id=7"))
    with pytest.raises(BrokerError) as failed:
        EmbeddedBroker(storage=other).start()
    message = str(failed.value)
    assert message.startswith("the embedded broker exited with code 1 while starting: ")
    assert "Stored node id 7" in message and message.endswith(f"see its log {other / 'broker.log'}")
    assert "\n" not in message
    assert kafka_jvms(other) == []


def test_a_stale_state_file_does_not_stop_a_new_start(tmp_path: Path) -> None:
    state_dir = tmp_path / ".seqstream"
    state_dir.mkdir()
    (state_dir / "broker.json").write_text(json.dumps({"pid": 999_999_999, "port": 1}))
    started = seqstream("broker", "start", cwd=tmp_path)
    try:
        assert started.returncode == 0, started.stderr
        assert json.loads((state_dir / "broker.json").read_text())["pid"] != 999_999_999
    finally:
        seqstream("broker", "stop", cwd=tmp_path)


def test_no_kafka_configured_and_none_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SEQSTREAM_BOOTSTRAP_SERVERS", raising=False)
    settings = load_settings(None, {"broker": {"state_dir": str(tmp_path)}})
    with pytest.raises(BrokerError, match="no Kafka configured and no embedded broker running"):
        resolve_bootstrap(settings)
    assert (
        resolve_bootstrap(load_settings(None, {"kafka": {"bootstrap_servers": "k:9092"}}))
        == "k:9092"
    )


def test_unreachable_broker_fails_after_the_configured_wait_with_the_address() -> None:
    with EmbeddedBroker() as broker:  # a port that was a broker a moment ago and is closed now
        address = broker.bootstrap_servers
    started = time.monotonic()
    with pytest.raises(
        KafkaUnavailableError, match=rf"no Kafka broker answered at {address} within 1.5s"
    ):
        TopicAdmin(address, timeout_s=1.5)
    assert time.monotonic() - started < 30  # bounded: not the client's minutes-long default
