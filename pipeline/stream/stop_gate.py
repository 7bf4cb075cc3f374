"""Stopping a streaming query between micro-batches, never inside one.

``StreamingQuery.stop()`` interrupts the query's thread wherever it is. Inside ``foreachBatch``
(where a micro-batch's Spark jobs run: the Kafka read, the state step, the writes) the interrupt
comes back from Python as a py4j error carrying the whole Python traceback, and Spark's check of
whether that error was an interruption (a regex over the message) can overflow the thread's
stack: a 1,200-line ``StackOverflowError`` instead of a clean stop. So the stop waits for the
running batch to finish, and a batch that starts after it does nothing and ends the query with
``StopRequested`` (a short message, which Spark checks without trouble); the caller takes that
ending as the stop it asked for. Nothing of that batch was written or committed: a restart runs
it again. py4j logs every exception a ``foreachBatch`` call raises, with its traceback, at ERROR:
that report of ``StopRequested`` is left out (``QuietStop``), as it is no error.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

# In the message of the query's failure when a batch found the gate closed.
STOP_MARKER = "seqstream: stop requested before this micro-batch"


class StopRequested(RuntimeError):
    """Raised by a micro-batch that started after the stop was asked for."""


class QuietStop(logging.Filter):
    """Leaves out py4j's report of a ``foreachBatch`` call that raised ``StopRequested``."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], StopRequested))


# The logger of py4j's callback server (``py4j.clientserver``), which runs ``foreachBatch``.
PY4J_CALLBACKS = logging.getLogger("py4j.clientserver")
_QUIET_STOP = QuietStop()


class StopGate:
    """Wraps the ``foreachBatch`` function: ``close`` waits for a running batch, then every later
    batch raises ``StopRequested`` at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._closed = False
        PY4J_CALLBACKS.addFilter(_QUIET_STOP)  # once: a logger keeps a filter once

    def around(self, write: Callable[[Any, int], None]) -> Callable[[Any, int], None]:
        def gated(batch: Any, batch_id: int) -> None:
            with self._lock:
                if self._closed:
                    raise StopRequested(STOP_MARKER)
                write(batch, batch_id)

        return gated

    def close(self, timeout_s: float) -> bool:
        """Let the running batch (if any) finish, then close; False if it ran over ``timeout_s``
        (the gate is closed all the same)."""
        finished = self._lock.acquire(timeout=timeout_s)
        self._closed = True
        if finished:
            self._lock.release()
        return finished


def stopped_by_request(failure: str) -> bool:
    """True when a query's failure is a batch that found the gate closed."""
    return STOP_MARKER in failure
