"""Where the JVM parts that set-up resolves from Maven live: Spark's Kafka connector and Apache
Kafka's broker.

``scripts/setup.sh`` runs ``mvn`` on ``jvm/spark-kafka/pom.xml`` and ``jvm/kafka-broker/pom.xml``
and copies the jars into ``<venv>/share/seqstream/jars/{spark-kafka,kafka-broker}``;
``SEQSTREAM_JARS_DIR`` points elsewhere (a folder with the same two sub-folders).
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

JARS_ENV = "SEQSTREAM_JARS_DIR"
SPARK_KAFKA = "spark-kafka"
KAFKA_BROKER = "kafka-broker"
# The connector's coordinates, for messages that tell a user how to add it to their own cluster.
SPARK_KAFKA_ARTIFACT = "org.apache.spark:spark-sql-kafka-0-10_2.13"

_CONNECTOR_JAR = re.compile(r"spark-sql-kafka-0-10_2\.13-(?P<version>[^/]+)\.jar")
_BROKER_JAR = re.compile(r"kafka_2\.13-(?P<version>[0-9][^/]*)\.jar")


def jars_root() -> Path:
    """The folder set-up filled: ``$SEQSTREAM_JARS_DIR``, else the running venv's share/."""
    configured = os.environ.get(JARS_ENV)
    return Path(configured) if configured else Path(sys.prefix) / "share" / "seqstream" / "jars"


def _versioned(folder: Path, pattern: re.Pattern[str]) -> str | None:
    if not folder.is_dir():
        return None
    for jar in folder.glob("*.jar"):
        match = pattern.fullmatch(jar.name)
        if match:
            return match.group("version")
    return None


def spark_connector_jars(spark_version: str) -> list[Path]:
    """The connector and what it needs beyond pyspark's jars/, when set-up resolved them for
    exactly ``spark_version`` (Spark refuses a connector of another version at run time); else
    an empty list."""
    folder = jars_root() / SPARK_KAFKA
    if _versioned(folder, _CONNECTOR_JAR) != spark_version:
        return []
    return sorted(folder.glob("*.jar"))


def broker_classpath() -> tuple[Path, str] | None:
    """(folder of Apache Kafka's broker jars, Kafka's version), or None when set-up has not
    resolved them."""
    folder = jars_root() / KAFKA_BROKER
    version = _versioned(folder, _BROKER_JAR)
    return (folder, version) if version else None
