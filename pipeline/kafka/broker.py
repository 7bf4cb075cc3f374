"""The embedded broker: Apache Kafka in KRaft combined mode (one node that is broker and
controller), run from the jars set-up resolved from Maven (``kafka.jars``).

For demos, tests and a laptop: loopback only, the log on disk in a storage folder, a small heap
(it shares the cores with Spark). ``EmbeddedBroker`` runs one for the life of a ``with`` block (in
a temporary folder unless given one; ``kill`` and ``start`` again on the same storage, for fault
tests). ``start_detached``/``stop_detached``/``detached_status`` back ``seqstream broker
start|stop|status``: the storage stays in the state folder between runs, so a broker started
again has the same topics, offsets and address.

A node's configuration and files are in ``broker_config``, its JVM's start and stop in
``broker_process``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from types import TracebackType

from seqstream.pipeline.errors import BrokerError
from seqstream.pipeline.kafka.broker_config import Node, recorded_ports
from seqstream.pipeline.kafka.broker_process import (
    BrokerInfo,
    answers_metadata,
    free_port,
    is_kafka,
    launch,
    pid_alive,
    terminate,
    wait_port_released,
)

STATE_FILE = "broker.json"
STORAGE = "kafka"  # the detached broker's storage, inside the state folder


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
        self._node: Node | None = None
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
            self._node = Node(storage, self._host, port, free_port(self._host))
        self.info = launch(self._node, self._start_timeout_s)
        return self.info

    def kill(self) -> None:
        """SIGKILL the broker, as a crash would; its storage stays for ``start``."""
        if self.info is not None:
            try:
                os.killpg(self.info.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            while pid_alive(self.info.pid):
                time.sleep(0.05)

    def stop(self) -> None:
        if self.info is None:
            return
        terminate(self.info.pid)
        wait_port_released(self.info.port, self.info.host)

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
    if info is not None and pid_alive(info.pid) and is_kafka(info.pid):
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
    if stale is not None and pid_alive(stale.pid) and is_kafka(stale.pid):
        raise BrokerError(
            f"the embedded broker recorded in {state_dir / STATE_FILE} (pid {stale.pid}) runs "
            f"but does not answer on {stale.bootstrap_servers}: `seqstream broker stop` it "
            f"first; see its log {stale.log_file}"
        )
    storage = state_dir.resolve() / STORAGE
    recorded = recorded_ports(storage)
    host = "127.0.0.1"
    node = Node(
        storage,
        host,
        port or (recorded[0] if recorded else free_port(host)),
        recorded[1] if recorded else free_port(host),
    )
    info = launch(node, start_timeout_s)
    (state_dir / STATE_FILE).write_text(json.dumps(asdict(info)))
    return info, True


def stop_detached(state_dir: Path) -> BrokerInfo | None:
    """Stop the recorded broker, wait until its port is free, forget its process (its storage
    stays). None if none ran."""
    info = _recorded(state_dir)
    if info is None:
        return None
    was_alive = pid_alive(info.pid) and is_kafka(info.pid)
    if was_alive:
        terminate(info.pid)
        wait_port_released(info.port, info.host)
    (state_dir / STATE_FILE).unlink()
    return info if was_alive else None
