"""Which Spark Kafka connector a job uses: ``kafka.connector`` = auto | jvm | python.

``jvm`` is Spark's ``format("kafka")`` (spark-sql-kafka-0-10 on the classpath); ``python`` is
seqstream's ``seqstream-kafka`` data source with the same schema and options; ``auto`` takes the
JVM connector when its classes are there. Jobs call ``kafka_format`` and ``kafka_options`` and
see the same DataFrame either way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from seqstream.pipeline.errors import SeqstreamError
from seqstream.pipeline.kafka.datasource import SHORT_NAME, KafkaDataSource

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
            "kafka.connector=jvm but Spark's Kafka connector is not on the classpath: start Spark "
            f"with --packages org.apache.spark:spark-sql-kafka-0-10_2.13:{spark.version}, or use "
            "kafka.connector=auto|python for seqstream's own connector"
        )
    spark.dataSource.register(KafkaDataSource)
    return SHORT_NAME


def kafka_options(bootstrap: str, properties: Mapping[str, str]) -> dict[str, str]:
    """Reader/writer options for either connector: bootstrap servers plus ``kafka.*`` client
    properties (Kafka's own names, e.g. ``security.protocol``)."""
    options = {"kafka.bootstrap.servers": bootstrap}
    options.update({f"kafka.{name}": value for name, value in properties.items()})
    return options
