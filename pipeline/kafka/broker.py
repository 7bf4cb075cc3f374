"""The embedded broker: Apache Kafka in KRaft combined mode (one node that is broker and
controller), run from the jars set-up resolved from Maven (``kafka.jars``).

For demos, tests and a laptop: loopback only, the log on disk in a storage folder, a small heap
(it shares the cores with Spark). ``EmbeddedBroker`` runs one for the life of a ``with`` block (in
a temporary folder unless given one; ``kill`` and ``start`` again on the same storage, for fault
tests). ``start_detached``/``stop_detached``/``detached_status`` back ``seqstream broker
start|stop|status``: the storage stays in the state folder between runs, so a broker started
again has the same topics, offsets and address.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType

from seqstream.pipeline.errors import BrokerError
from seqstream.pipeline.kafka.jars import broker_classpath

STATE_FILE = "broker.json"
STORAGE = "kafka"  # the detached broker's storage, inside the state folder
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
# A Java exception's first line in the broker's log: "java.lang.RuntimeException: <message>".
_EXCEPTION = re.compile(r"^(?:Caused by: )?[\w.$]+(?:Exception|Error): (?P<message>.+)")
log = logging.getLogger(__name__)


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


@dataclass(frozen=True)
class _Node:
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


def _classpath() -> tuple[Path, str]:
    found = broker_classpath()
    if found is None:
        raise BrokerError(
            "the embedded broker needs Apache Kafka's jars, which set-up resolves from Maven: "
            "run `make setup` (scripts/setup.sh), or set kafka.bootstrap_servers / "
            "SEQSTREAM_BOOTSTRAP_SERVERS to a Kafka of your own"
        )
    return found


def _java_command(main: str, node: _Node, *args: str) -> list[str]:
    jars, _ = _classpath()
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


def _format(node: _Node) -> None:
    """Format the storage once (KRaft needs it before the first start); a formatted one is kept,
    so a restarted broker has its topics and offsets."""
    if (node.data / "meta.properties").is_file():
        return
    if node.data.is_dir() and any(node.data.iterdir()):
        raise BrokerError(
            f"the embedded broker's storage {node.data} holds files but no meta.properties (a "
            "start cut short while formatting?): remove that folder and start again"
        )
    command = _java_command(
        STORAGE_TOOL, node, "format", "--standalone", "-t", _cluster_id(), "-c", str(node.config)
    )
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        raise BrokerError(
            f"formatting the embedded broker's storage {node.data} failed: "
            f"{lines[-1] if lines else f'exit code {done.returncode}'}"
        )


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


def _spawn(node: _Node) -> tuple[subprocess.Popen[bytes], int]:
    """Start the node's JVM in its own session (a Ctrl-C aimed at the caller does not reach a
    detached broker; stop signals the whole group). Returns it and the log's size before."""
    node.log_file.parent.mkdir(parents=True, exist_ok=True)
    since = node.log_file.stat().st_size if node.log_file.exists() else 0
    command = _java_command(KAFKA_MAIN, node, str(node.config))
    with node.log_file.open("ab") as out:
        process = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    return process, since


def _wait_ready(
    process: subprocess.Popen[bytes], node: _Node, since: int, timeout_s: float
) -> None:
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


def _launch(node: _Node, timeout_s: float) -> BrokerInfo:
    """Configure, format (first time only), start and wait for the node; on any failure the
    JVM is gone before the error is raised."""
    _, version = _classpath()
    for port in (node.port, node.controller_port):
        if port_is_bound(port, node.host):
            raise BrokerError(
                f"cannot start the embedded broker: {node.host}:{port} is in use by another "
                "process (choose another port with --port / broker.port, or stop what listens)"
            )
    node.storage.mkdir(parents=True, exist_ok=True)
    node.config.write_text(node.properties())
    (node.storage / "log4j2.properties").write_text(LOG4J2)
    _format(node)
    started = time.monotonic()
    process, since = _spawn(node)
    try:
        _wait_ready(process, node, since, timeout_s)
    except BaseException:
        _terminate(process.pid)
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


def _cluster_id_of(node: _Node) -> str:
    for line in (node.data / "meta.properties").read_text().splitlines():
        if line.startswith("cluster.id="):
            return line.split("=", 1)[1].strip()
    return ""


def _register(node: _Node, pid: int, version: str) -> None:
    """Note the running node under its cluster id, so that a job told only an address can say
    which broker it talks to (``embedded_broker``)."""
    _registry().mkdir(parents=True, exist_ok=True)
    record = {"pid": pid, "version": version, "storage": str(node.storage)}
    (_registry() / f"{_cluster_id_of(node)}.json").write_text(json.dumps(record))


def embedded_broker(cluster_id: str) -> str | None:
    """``Apache Kafka <version>`` when ``cluster_id`` is a live embedded broker of this user's
    (a cluster id is a random UUID, so a match is that broker); else None."""
    record = _registry() / f"{cluster_id}.json"
    try:
        found = json.loads(record.read_text())
    except (OSError, ValueError):
        return None
    if _pid_alive(found["pid"]) and _is_kafka(found["pid"]):
        return f"Apache Kafka {found['version']}"
    return None


def _is_kafka(pid: int) -> bool:
    """Guards against a recycled pid in a stale state file."""
    try:
        return KAFKA_MAIN.encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _pid_alive(pid: int) -> bool:
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


def _terminate(pid: int, timeout_s: float = 20.0) -> None:
    """SIGTERM the broker's process group (Kafka shuts down cleanly, flushing its log), then
    SIGKILL if it lingers."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not _pid_alive(pid):
                return
            time.sleep(0.05)


def _wait_port_released(port: int, host: str, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while port_is_bound(port, host):
        if time.monotonic() > deadline:
            raise BrokerError(f"port {host}:{port} still bound after the broker stopped")
        time.sleep(0.05)


class EmbeddedBroker:
    """An Apache Kafka node on loopback for the life of a ``with`` block. ``storage`` keeps its
    log (default: a temporary folder, removed at the end); ``kill()`` then ``start()`` restarts
    it on the same storage and ports, as after a crash."""

    def __init__(
        self,
        *,
        port: int | None = None,
        host: str = "127.0.0.1",
        storage: Path | None = None,
        start_timeout_s: float = 60.0,
    ) -> None:
        self._host = host
        self._port = port
        self._storage = storage
        self._owns_storage = storage is None
        self._start_timeout_s = start_timeout_s
        self._node: _Node | None = None
        self._process_pid: int | None = None
        self.info: BrokerInfo | None = None

    @property
    def bootstrap_servers(self) -> str:
        if self.info is None:
            raise BrokerError("embedded broker is not running")
        return self.info.bootstrap_servers

    def start(self) -> BrokerInfo:
        if self._node is None:
            storage = self._storage or Path(tempfile.mkdtemp(prefix="seqstream-kafka-"))
            port = self._port or free_port(self._host)
            self._node = _Node(storage, self._host, port, free_port(self._host))
        self.info = _launch(self._node, self._start_timeout_s)
        return self.info

    def kill(self) -> None:
        """SIGKILL the broker, as a crash would; its storage stays for ``start``."""
        if self.info is not None:
            try:
                os.killpg(self.info.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            while _pid_alive(self.info.pid):
                time.sleep(0.05)

    def stop(self) -> None:
        if self.info is None:
            return
        _terminate(self.info.pid)
        _wait_port_released(self.info.port, self.info.host)

    def close(self) -> None:
        """Stop, and remove the storage if it was a temporary one."""
        self.stop()
        if self._owns_storage and self._node is not None:
            shutil.rmtree(self._node.storage, ignore_errors=True)

    def __enter__(self) -> EmbeddedBroker:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


# --- detached broker for the CLI -------------------------------------------------------------


def _recorded(state_dir: Path) -> BrokerInfo | None:
    state = state_dir / STATE_FILE
    if not state.is_file():
        return None
    try:
        return BrokerInfo(**json.loads(state.read_text()))
    except (ValueError, TypeError):  # another release's or a damaged file
        return None


def detached_status(state_dir: Path) -> BrokerInfo | None:
    """The broker recorded in ``state_dir`` if it is alive and answering; else None."""
    info = _recorded(state_dir)
    if info is not None and _pid_alive(info.pid) and _is_kafka(info.pid):
        if answers_metadata(info.bootstrap_servers):
            return info
    return None


def start_detached(
    state_dir: Path, *, port: int | None = None, start_timeout_s: float = 60.0
) -> tuple[BrokerInfo, bool]:
    """Start a broker that outlives this process; returns (info, started_now). Its storage is
    ``state_dir/kafka``, kept between runs with the ports it last had (``port`` moves the
    client port)."""
    running = detached_status(state_dir)
    if running is not None:
        return running, False
    stale = _recorded(state_dir)
    if stale is not None and _pid_alive(stale.pid) and _is_kafka(stale.pid):
        raise BrokerError(
            f"the embedded broker recorded in {state_dir / STATE_FILE} (pid {stale.pid}) runs "
            f"but does not answer on {stale.bootstrap_servers}: `seqstream broker stop` it "
            f"first; see its log {stale.log_file}"
        )
    storage = state_dir.resolve() / STORAGE
    recorded = recorded_ports(storage)
    host = "127.0.0.1"
    node = _Node(
        storage,
        host,
        port or (recorded[0] if recorded else free_port(host)),
        recorded[1] if recorded else free_port(host),
    )
    info = _launch(node, start_timeout_s)
    (state_dir / STATE_FILE).write_text(json.dumps(asdict(info)))
    return info, True


def stop_detached(state_dir: Path) -> BrokerInfo | None:
    """Stop the recorded broker, wait until its port is free, forget its process (its storage
    stays). None if none ran."""
    info = _recorded(state_dir)
    if info is None:
        return None
    was_alive = _pid_alive(info.pid) and _is_kafka(info.pid)
    if was_alive:
        _terminate(info.pid)
        _wait_port_released(info.port, info.host)
    (state_dir / STATE_FILE).unlink()
    return info if was_alive else None
