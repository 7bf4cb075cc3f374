"""Which Spark Kafka connector a job uses: ``kafka.connector`` = auto | jvm | python.

``jvm`` is Spark's ``format("kafka")`` (spark-sql-kafka-0-10 on the classpath); ``python`` is
seqstream's ``seqstream-kafka`` data source with the same schema and options; ``auto`` takes the
JVM connector when its classes are there (set-up resolves it from Maven and the jobs' sessions
load it, see ``seqstream.pipeline.spark``). Jobs call ``kafka_format`` and ``kafka_options`` and
see the same DataFrame either way.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from seqstream.pipeline.errors import SeqstreamError
from seqstream.pipeline.kafka.datasource import SHORT_NAME, KafkaDataSource
from seqstream.pipeline.kafka.jars import SPARK_KAFKA_ARTIFACT

JVM_PROVIDER = "org.apache.spark.sql.kafka010.KafkaSourceProvider"


def jvm_connector_available(spark: Any) -> bool:
    """True when Spark's own Kafka connector classes are on the driver's classpath."""
    jvm = getattr(spark, "_jvm", None)
    if jvm is None:  # Spark Connect: no py4j gateway to ask
        return False
    try:
        jvm.java.lang.Class.forName(
            JVM_PROVIDER, False, jvm.Thread.currentThread().getContextClassLoader()
        )
        return True
    except Exception:  # noqa: BLE001 - py4j wraps ClassNotFoundException
        return False


def kafka_format(spark: Any, connector: str) -> str:
    """The ``format(...)`` name to use, registering seqstream's source when it is chosen."""
    if connector not in ("auto", "jvm", "python"):
        raise SeqstreamError(f"kafka.connector must be auto, jvm or python, got {connector!r}")
    if connector != "python" and jvm_connector_available(spark):
        return "kafka"
    if connector == "jvm":
        raise SeqstreamError(
            "kafka.connector=jvm but Spark's Kafka connector is not on the classpath: run set-up "
            "(`make setup` resolves it from Maven), or start Spark with --packages "
            f"{SPARK_KAFKA_ARTIFACT}:{spark.version} (or --jars with that jar and its "
            "dependencies), or use kafka.connector=auto|python for seqstream's own connector"
        )
    spark.dataSource.register(KafkaDataSource)
    return SHORT_NAME


def kafka_options(bootstrap: str, properties: Mapping[str, str]) -> dict[str, str]:
    """Reader/writer options for either connector: bootstrap servers plus ``kafka.*`` client
    properties (Kafka's own names, e.g. ``security.protocol``)."""
    options = {"kafka.bootstrap.servers": bootstrap}
    options.update({f"kafka.{name}": value for name, value in properties.items()})
    return options


# What Spark's kafka connector (and the Kafka clients under it) says when the broker is silent.
_JVM_NO_ANSWER = re.compile(
    r"org\.apache\.kafka\.common\.errors\.TimeoutException|Cannot fetch record for offset"
    r"|Timed out waiting for a node assignment"
)


def jvm_options(request_timeout_s: float, retry_timeout_s: float) -> dict[str, str]:
    """Options for Spark's kafka connector: no waiting on fetches held by the broker, and riding
    out a silent broker for ``retry_timeout_s``, as seqstream-kafka does. A request gives up after
    ``request_timeout_s`` and the client retries it until ``default.api.timeout.ms`` has passed,
    which the driver's offset lookups (in one attempt, ``fetchOffset.numRetries``) and the
    tasks' consumers (their position lookups) share; a task waits that long for records
    (``kafkaConsumer.pollTimeoutMs``) and the sink for acknowledgements (``delivery.timeout.ms``).
    The clients ignore the properties that are not theirs."""

    def ms(seconds: float) -> str:
        return str(int(seconds * 1000))

    retry = max(retry_timeout_s, request_timeout_s)
    return {
        # A task reads a range already in the log, but its consumer (pooled between batches)
        # has a fetch for the next offset in flight, which the broker holds for fetch.max.wait.ms
        # (Kafka's 500 ms) when nothing is new: the next batch's fetch waits for it. 10 ms took
        # a micro-batch of a few events from 0.63 s to 0.13 s (bench/README.md).
        "kafka.fetch.max.wait.ms": "10",
        "kafka.request.timeout.ms": ms(request_timeout_s),
        "kafka.default.api.timeout.ms": ms(retry),
        "kafka.delivery.timeout.ms": ms(retry),
        "fetchOffset.numRetries": "1",
        "kafkaConsumer.pollTimeoutMs": ms(retry),
    }


def jvm_no_answer(error: str) -> bool:
    """True when a failure of Spark's kafka connector is the broker not answering in time."""
    return bool(_JVM_NO_ANSWER.search(error))
