"""One embedded broker node's configuration and files: its storage folder and
``server.properties``, its logging, the ``java`` command that runs Kafka's classes, and the
storage formatted once (KRaft needs that before a first start).

What a node is on disk, apart from the process that runs it (``broker_process``) and from the
public ``EmbeddedBroker`` and detached broker (``broker``).
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

from seqstream.pipeline.errors import BrokerError
from seqstream.pipeline.kafka.jars import broker_classpath

LOG_FILE = "broker.log"
KAFKA_MAIN = "kafka.Kafka"
STORAGE_TOOL = "kafka.tools.StorageTool"
# Kafka's scripts start the broker with a 1 GB heap; a single-node test broker needs far less,
# and the serial collector keeps its GC to one thread on a 2-core machine.
JVM_OPTIONS = ("-Xms64m", "-Xmx512m", "-XX:+UseSerialGC", "-Djava.awt.headless=true")
# The broker's own log: warnings and errors, and the line that says it started.
LOG4J2 = """\
rootLogger.level = WARN
rootLogger.appenderRef.out.ref = OUT
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
logger.started.name = kafka.server.KafkaRaftServer
logger.started.level = INFO
"""


@dataclass(frozen=True)
class Node:
    """One storage folder and the addresses its node listens on."""

    storage: Path
    host: str
    port: int
    controller_port: int

    @property
    def data(self) -> Path:
        return self.storage / "data"

    @property
    def config(self) -> Path:
        return self.storage / "server.properties"

    @property
    def log_file(self) -> Path:
        return self.storage / LOG_FILE

    def properties(self) -> str:
        host = self.host
        settings = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.bootstrap.servers": f"{host}:{self.controller_port}",
            "listeners": f"PLAINTEXT://{host}:{self.port},CONTROLLER://{host}:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{host}:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.data),
            "num.partitions": "1",
            # One node: every internal topic has one replica, and few partitions (Kafka's 50 each
            # take seconds to create on a first group or transactional producer).
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "4",
            "transaction.state.log.num.partitions": "4",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            # A local broker keeps what it was given (replayed history carries old timestamps),
            # and a mistyped topic name is an error rather than a new topic.
            "log.retention.ms": "-1",
            "auto.create.topics.enable": "false",
        }
        return "".join(f"{name}={value}\n" for name, value in settings.items())


def recorded_ports(storage: Path) -> tuple[int, int] | None:
    """(port, controller port) of the node last configured in ``storage``, if any."""
    config = storage / "server.properties"
    if not config.is_file():
        return None
    for line in config.read_text().splitlines():
        if line.startswith("listeners="):
            ports = [int(url.rpartition(":")[2]) for url in line.split("=", 1)[1].split(",")]
            return ports[0], ports[1]
    return None


def _java() -> str:
    home = os.environ.get("JAVA_HOME")
    java = os.path.join(home, "bin", "java") if home else shutil.which("java")
    if not java or not os.path.exists(java):
        raise BrokerError(
            "the embedded broker needs Java 17+ and none was found (JAVA_HOME unset and no "
            "`java` on PATH): install it, e.g. `sudo apt-get install openjdk-17-jre-headless`"
        )
    return java


def classpath() -> tuple[Path, str]:
    found = broker_classpath()
    if found is None:
        raise BrokerError(
            "the embedded broker needs Apache Kafka's jars, which set-up resolves from Maven: "
            "run `make setup` (scripts/setup.sh), or set kafka.bootstrap_servers / "
            "SEQSTREAM_BOOTSTRAP_SERVERS to a Kafka of your own"
        )
    return found


def java_command(main: str, node: Node, *args: str) -> list[str]:
    jars, _ = classpath()
    log4j = node.storage / "log4j2.properties"
    return [
        _java(),
        *JVM_OPTIONS,
        f"-Dlog4j2.configurationFile={log4j}",
        "-cp",
        f"{jars}/*",
        main,
        *args,
    ]


def _cluster_id() -> str:
    """A new cluster id in Kafka's form (a UUID in URL-safe base64, no padding), not starting
    with "-", which the storage tool would read as an option (Kafka's own ids avoid it too)."""
    while True:
        found = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not found.startswith("-"):
            return found


def _format(node: Node) -> None:
    """Format the storage once (KRaft needs it before the first start); a formatted one is kept,
    so a restarted broker has its topics and offsets."""
    if (node.data / "meta.properties").is_file():
        return
    if node.data.is_dir() and any(node.data.iterdir()):
        raise BrokerError(
            f"the embedded broker's storage {node.data} holds files but no meta.properties (a "
            "start cut short while formatting?): remove that folder and start again"
        )
    command = java_command(
        STORAGE_TOOL, node, "format", "--standalone", "-t", _cluster_id(), "-c", str(node.config)
    )
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        raise BrokerError(
            f"formatting the embedded broker's storage {node.data} failed: "
            f"{lines[-1] if lines else f'exit code {done.returncode}'}"
        )


def cluster_id_of(node: Node) -> str:
    for line in (node.data / "meta.properties").read_text().splitlines():
        if line.startswith("cluster.id="):
            return line.split("=", 1)[1].strip()
    return ""


def configure(node: Node) -> None:
    """Write the node's storage folder, ``server.properties`` and logging settings, and format
    the storage (the first time only)."""
    node.storage.mkdir(parents=True, exist_ok=True)
    node.config.write_text(node.properties())
    (node.storage / "log4j2.properties").write_text(LOG4J2)
    _format(node)
