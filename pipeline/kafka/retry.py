"""Riding out a broker that is briefly away (a rolling restart, a paused host): Kafka calls are
retried with backoff for ``retry_timeout_s``, each retry logged with the address, and only then
fail with a ``KafkaUnavailableError`` naming the address, what was tried and the last error.

Only errors that a later attempt can fix are retried (no answer, a timeout, a lost connection, a
partition leader moving); a topic that is gone or an option that is wrong fails at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from confluent_kafka import KafkaException
from kafka.errors import KafkaError, UnknownTopicOrPartitionError

from seqstream.pipeline.errors import KafkaUnavailableError

log = logging.getLogger(__name__)
T = TypeVar("T")

# librdkafka codes that mean "no answer (yet)": transport, timeouts, all brokers down, and a
# group or transaction coordinator still loading or just moved (a broker after its start).
_CONFLUENT_TRANSIENT = {
    "_TRANSPORT",
    "_TIMED_OUT",
    "_ALL_BROKERS_DOWN",
    "_MSG_TIMED_OUT",
    "REQUEST_TIMED_OUT",
    "NOT_COORDINATOR",
    "COORDINATOR_LOAD_IN_PROGRESS",
    "COORDINATOR_NOT_AVAILABLE",
}


def is_transient(exc: BaseException) -> bool:
    """True for an error a later attempt can fix (the broker did not answer in time)."""
    if isinstance(exc, KafkaUnavailableError):
        return True
    if isinstance(exc, KafkaError):
        # kafka-python marks unknown topics retriable (metadata may lag); for a reader that has
        # read the topic before, it means the topic is gone: data loss, not an outage.
        return bool(getattr(exc, "retriable", False)) and not isinstance(
            exc, UnknownTopicOrPartitionError
        )
    if isinstance(exc, KafkaException) and exc.args:
        error = exc.args[0]
        return getattr(error, "name", lambda: "")() in _CONFLUENT_TRANSIENT
    return False


class Backoff:
    """The failed attempts at one Kafka call: each is logged with the address and waited out
    (exponential backoff) until ``timeout_s`` has passed since the start or the last
    ``progress()``; then the call fails with a ``KafkaUnavailableError`` naming the address, what
    was asked (``what``, which a caller may update as it goes) and the last error."""

    def __init__(
        self,
        *,
        what: str,
        bootstrap: str,
        timeout_s: float,
        first_delay_s: float = 0.5,
        max_delay_s: float = 8.0,
        max_retries: int | None = None,
    ) -> None:
        self.what, self.bootstrap, self.timeout_s = what, bootstrap, timeout_s
        self.first_delay_s, self.max_delay_s = first_delay_s, max_delay_s
        self.max_retries = max_retries
        self.attempts = 0
        self.progress()

    def progress(self) -> None:
        """The call got somewhere: the time allowed starts again."""
        self.deadline = time.monotonic() + self.timeout_s
        self.delay = self.first_delay_s

    def failed(self, exc: BaseException) -> None:
        """Wait before the next attempt; or raise ``exc`` itself when no retry can fix it, or a
        ``KafkaUnavailableError`` once the time is up."""
        if not is_transient(exc):
            raise exc
        self.attempts += 1
        if self.max_retries is not None and self.attempts > self.max_retries:
            raise KafkaUnavailableError(
                f"Kafka at {self.bootstrap} did not answer {self.what} "
                f"({self.attempts} attempts; fetchOffset.numRetries={self.max_retries}): "
                f"{_one_line(exc)}"
            ) from None
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise KafkaUnavailableError(
                f"Kafka at {self.bootstrap} did not answer {self.what} for {self.timeout_s:g}s "
                f"({self.attempts} attempts; kafka.retry_timeout_s): {_one_line(exc)}"
            ) from None
        wait = min(self.delay, left)
        log.warning(
            "Kafka at %s did not answer %s (attempt %d): %s; retrying in %.1fs, for up to %.0fs more",
            self.bootstrap,
            self.what,
            self.attempts,
            _one_line(exc),
            wait,
            left,
        )
        time.sleep(wait)
        self.delay = min(self.delay * 2, self.max_delay_s)


def retrying(
    call: Callable[[], T],
    *,
    what: str,
    bootstrap: str,
    timeout_s: float,
    reset: Callable[[], None] | None = None,
    max_retries: int | None = None,
    interval_s: float | None = None,
) -> T:
    """``call()``, its transient failures waited out by a ``Backoff``; ``reset`` runs before
    each retry (e.g. to reopen a client). ``max_retries`` caps the retries within ``timeout_s``;
    ``interval_s`` waits that long between them instead of backing off exponentially."""
    delays = {} if interval_s is None else {"first_delay_s": interval_s, "max_delay_s": interval_s}
    backoff = Backoff(
        what=what, bootstrap=bootstrap, timeout_s=timeout_s, max_retries=max_retries, **delays
    )
    while True:
        try:
            return call()
        except Exception as exc:  # noqa: BLE001 - Backoff.failed re-raises what cannot be retried
            backoff.failed(exc)
        if reset is not None:
            try:
                reset()
            except Exception as reset_error:  # noqa: BLE001 - the next attempt reports it
                log.debug("resetting the client after a failed %s: %s", what, reset_error)


def _one_line(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".replace("\n", " ")
    return text if len(text) <= 300 else text[:297] + "..."
