"""The embedded broker's JVM process: start a configured node and wait until it answers a Kafka
metadata request (else fail with the broker's own words), stop it, and note the live ones so a
job told only an address can say which broker it talks to (``embedded_broker``).

Apart from the node's files (``broker_config``) and from the public ``EmbeddedBroker`` and
detached broker built on it (``broker``).
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from seqstream.pipeline.errors import BrokerError
from seqstream.pipeline.kafka.broker_config import (
    KAFKA_MAIN,
    Node,
    classpath,
    cluster_id_of,
    configure,
    java_command,
)

# A Java exception's first line in the broker's log: "java.lang.RuntimeException: <message>".
_EXCEPTION = re.compile(r"^(?:Caused by: )?[\w.$]+(?:Exception|Error): (?P<message>.+)")
# The logger the broker's start-up line has always had (it lived in ``broker``).
log = logging.getLogger("seqstream.pipeline.kafka.broker")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_is_bound(port: int, host: str = "127.0.0.1") -> bool:
    """True while something listens on host:port."""
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def answers_metadata(bootstrap: str, timeout_s: float = 2.0) -> bool:
    """True when a Kafka Metadata request to ``bootstrap`` lists a broker (a KRaft node lists
    itself once it is registered and unfenced, i.e. ready for topics)."""
    from confluent_kafka.admin import AdminClient

    client = AdminClient(
        {"bootstrap.servers": bootstrap, "socket.timeout.ms": int(timeout_s * 1000)}
    )
    try:
        return bool(client.list_topics(timeout=timeout_s).brokers)
    except Exception:  # noqa: BLE001 - any failure means "not ready"
        return False


@dataclass(frozen=True)
class BrokerInfo:
    pid: int
    port: int
    host: str = "127.0.0.1"
    log_file: str = ""
    controller_port: int = 0
    storage: str = ""
    version: str = ""

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def description(self) -> str:
        """What the broker is, for start-up lines: ``Apache Kafka 4.4.0``."""
        return f"Apache Kafka {self.version}"


def _start_cause(log_file: Path, since: int) -> str:
    """The broker's own words for a failed start, from what it logged since ``since`` (a byte
    offset): the message of the first exception, else the first ERROR line, else its last line."""
    with log_file.open("rb") as handle:
        handle.seek(since)
        lines = handle.read().decode(errors="replace").splitlines()
    for line in lines:
        exception = _EXCEPTION.match(line)
        if exception:
            return exception.group("message").strip()[:300]
    errors = [line for line in lines if " ERROR " in line]
    cause = (errors or lines or ["no output"])[0]
    return re.sub(r"^\[[^]]*\] ", "", cause).strip()[:300]


def _spawn(node: Node) -> tuple[subprocess.Popen[bytes], int]:
    """Start the node's JVM in its own session (a Ctrl-C aimed at the caller does not reach a
    detached broker; stop signals the whole group). Returns it and the log's size before."""
    node.log_file.parent.mkdir(parents=True, exist_ok=True)
    since = node.log_file.stat().st_size if node.log_file.exists() else 0
    command = java_command(KAFKA_MAIN, node, str(node.config))
    with node.log_file.open("ab") as out:
        process = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    return process, since


def _wait_ready(process: subprocess.Popen[bytes], node: Node, since: int, timeout_s: float) -> None:
    bootstrap = f"{node.host}:{node.port}"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BrokerError(
                f"the embedded broker exited with code {process.returncode} while starting: "
                f"{_start_cause(node.log_file, since)}; see its log {node.log_file}"
            )
        if port_is_bound(node.port, node.host) and answers_metadata(bootstrap):
            return
        time.sleep(0.1)
    raise BrokerError(
        f"the embedded broker on {bootstrap} did not answer a Kafka metadata request within "
        f"{timeout_s:g}s (broker.start_timeout_s); see its log {node.log_file}"
    )


def launch(node: Node, timeout_s: float) -> BrokerInfo:
    """Configure, format (first time only), start and wait for the node; on any failure the
    JVM is gone before the error is raised."""
    _, version = classpath()
    for port in (node.port, node.controller_port):
        if port_is_bound(port, node.host):
            raise BrokerError(
                f"cannot start the embedded broker: {node.host}:{port} is in use by another "
                "process (choose another port with --port / broker.port, or stop what listens)"
            )
    configure(node)
    started = time.monotonic()
    process, since = _spawn(node)
    try:
        _wait_ready(process, node, since, timeout_s)
    except BaseException:
        terminate(process.pid)
        raise
    log.info(
        "Apache Kafka %s answered on %s:%d after %.1fs",
        version,
        node.host,
        node.port,
        time.monotonic() - started,
    )
    _register(node, process.pid, version)
    return BrokerInfo(
        process.pid,
        node.port,
        node.host,
        str(node.log_file),
        node.controller_port,
        str(node.storage),
        version,
    )


def _registry() -> Path:
    return Path(tempfile.gettempdir()) / f"seqstream-brokers-{os.getuid()}"


def _register(node: Node, pid: int, version: str) -> None:
    """Note the running node under its cluster id, so that a job told only an address can say
    which broker it talks to (``embedded_broker``)."""
    _registry().mkdir(parents=True, exist_ok=True)
    record = {"pid": pid, "version": version, "storage": str(node.storage)}
    (_registry() / f"{cluster_id_of(node)}.json").write_text(json.dumps(record))


def embedded_broker(cluster_id: str) -> str | None:
    """``Apache Kafka <version>`` when ``cluster_id`` is a live embedded broker of this user's
    (a cluster id is a random UUID, so a match is that broker); else None."""
    record = _registry() / f"{cluster_id}.json"
    try:
        found = json.loads(record.read_text())
    except (OSError, ValueError):
        return None
    if pid_alive(found["pid"]) and is_kafka(found["pid"]):
        return f"Apache Kafka {found['version']}"
    return None


def is_kafka(pid: int) -> bool:
    """Guards against a recycled pid in a stale state file."""
    try:
        return KAFKA_MAIN.encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours still answers kill(0); reap it if it is ours.
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return True


def terminate(pid: int, timeout_s: float = 20.0) -> None:
    """SIGTERM the broker's process group (Kafka shuts down cleanly, flushing its log), then
    SIGKILL if it lingers."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not pid_alive(pid):
                return
            time.sleep(0.05)


def wait_port_released(port: int, host: str, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while port_is_bound(port, host):
        if time.monotonic() > deadline:
            raise BrokerError(f"port {host}:{port} still bound after the broker stopped")
        time.sleep(0.05)
