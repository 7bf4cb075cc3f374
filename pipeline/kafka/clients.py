"""Which Kafka client seqstream uses, and what every client shares: confluent-kafka when
installed, else kafka-python (``resolve_client``), librdkafka's common settings, and the error
for a cluster that does not answer.

The data plane stands on it: ``producer`` produces records with delivery accounting
(``open_producer``) and ``reader`` reads an exact offset range with assign + seek
(``read_range``); both fail within ``timeout_s`` with the broker address when nothing answers.
``admin`` and ``transactions`` use it too.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Mapping
from typing import Literal

from seqstream.pipeline.errors import KafkaUnavailableError, SeqstreamError

ClientName = Literal["confluent", "kafka-python"]

# librdkafka's own log lines (connection refused, retries) go to logging, not straight to stderr.
_LIBRDKAFKA_LOG = logging.getLogger("seqstream.librdkafka")


def confluent_config(bootstrap: str, timeout_s: float, options: Mapping[str, str]) -> dict:
    """librdkafka settings every seqstream client shares; ``options`` override them."""
    return {
        "bootstrap.servers": bootstrap,
        "socket.timeout.ms": int(timeout_s * 1000),
        "logger": _LIBRDKAFKA_LOG,
        **options,
    }


def resolve_client(client: str = "auto") -> ClientName:
    """``auto`` picks confluent-kafka (about 10x faster here) when it is installed."""
    if client == "auto":
        return "confluent" if importlib.util.find_spec("confluent_kafka") else "kafka-python"
    if client == "confluent":
        return "confluent"
    if client == "kafka-python":
        return "kafka-python"
    raise SeqstreamError(f"kafka.client must be auto, confluent or kafka-python, not {client!r}")


def no_broker(bootstrap: str, timeout_s: float, detail: object) -> KafkaUnavailableError:
    """The error for a cluster that did not answer, naming the address and where it is set."""
    return KafkaUnavailableError(
        f"no Kafka broker answered at {bootstrap} within {timeout_s:g}s "
        f"(kafka.bootstrap_servers / SEQSTREAM_BOOTSTRAP_SERVERS): {detail}"
    )
