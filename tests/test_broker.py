"""The embedded broker's lifecycle, in-process and through `seqstream broker`."""

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
from seqstream.pipeline.kafka.admin import TopicAdmin
from seqstream.pipeline.kafka.broker import EmbeddedBroker, answers_metadata, port_is_bound


def pid_alive(pid: int) -> bool:
    return (
        Path(f"/proc/{pid}").exists()
        and "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2]
    )


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
        assert answers_metadata(broker.bootstrap_servers)
        assert pid_alive(info.pid)
    assert not pid_alive(info.pid)
    assert not port_is_bound(info.port)


def test_cli_start_status_stop(tmp_path: Path) -> None:
    assert seqstream("broker", "status", cwd=tmp_path).returncode == 1

    started = seqstream("broker", "start", cwd=tmp_path)
    assert started.returncode == 0, started.stderr
    state = json.loads((tmp_path / ".seqstream" / "broker.json").read_text())
    assert started.stdout.startswith(f"embedded broker started: 127.0.0.1:{state['port']}")
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
        assert f"127.0.0.1:{state['port']} (pid {state['pid']})" in status.stdout
        with TopicAdmin(f"127.0.0.1:{state['port']}") as admin:
            admin.create_topic("lifecycle", 2)
            assert admin.describe_topic("lifecycle").partitions == 2
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


def test_start_on_a_port_in_use_is_a_clear_error() -> None:
    with EmbeddedBroker() as first:
        assert first.info is not None
        with pytest.raises(BrokerError, match=rf"127.0.0.1:{first.info.port} is in use"):
            EmbeddedBroker(port=first.info.port).start()


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
