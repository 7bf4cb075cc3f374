"""kafka.connector: the pipeline picks Spark's JVM connector (resolved by set-up from Maven and
loaded by the jobs' sessions) or seqstream's Python one."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pyspark

from seqstream.pipeline.config import KafkaSettings
from seqstream.pipeline.kafka.connector import jvm_connector_available, kafka_format, kafka_options
from seqstream.pipeline.kafka.datasource import SHORT_NAME
from seqstream.pipeline.kafka.jars import spark_connector_jars

from helpers import fill


def test_set_up_resolved_the_connector_at_pyspark_s_version() -> None:
    names = sorted(jar.name for jar in spark_connector_jars(pyspark.__version__))
    version = pyspark.__version__
    assert f"spark-sql-kafka-0-10_2.13-{version}.jar" in names
    assert f"spark-token-provider-kafka-0-10_2.13-{version}.jar" in names
    assert any(n.startswith("kafka-clients-") for n in names)
    assert any(n.startswith("commons-pool2-") for n in names)
    assert len(names) == 4  # nothing that pyspark's own jars/ already has
    assert spark_connector_jars("0.0.0") == []  # another Spark's connector is never loaded


def test_auto_takes_the_jvm_connector_and_both_read_the_same_records(
    spark, bootstrap_servers, new_topic
) -> None:
    assert jvm_connector_available(spark)
    assert kafka_format(spark, "auto") == "kafka"
    assert kafka_format(spark, "jvm") == "kafka"
    assert kafka_format(spark, "python") == SHORT_NAME
    topic = new_topic(partitions=2)
    fill(bootstrap_servers, topic, {0: 30, 1: 20})
    options = kafka_options(
        bootstrap_servers, KafkaSettings(options={"client.id": "seqstream-test"}).options
    )
    assert options == {
        "kafka.bootstrap.servers": bootstrap_servers,
        "kafka.client.id": "seqstream-test",
    }
    read = {}
    for fmt in ("kafka", SHORT_NAME):
        df = spark.read.format(fmt).options(**options).option("subscribe", topic).load()
        assert df.columns == [
            "key",
            "value",
            "topic",
            "partition",
            "offset",
            "timestamp",
            "timestampType",
        ]
        read[fmt] = sorted(tuple(r) for r in df.collect())
    assert len(read["kafka"]) == 50 and read["kafka"] == read[SHORT_NAME]


def test_without_the_jar_auto_falls_back_and_jvm_says_how_to_add_it(tmp_path: Path) -> None:
    """A session started where set-up resolved no connector (an empty jars folder)."""
    script = textwrap.dedent(
        """
        from seqstream.pipeline.errors import SeqstreamError
        from seqstream.pipeline.kafka.connector import kafka_format
        from seqstream.pipeline.spark import local_spark

        spark = local_spark("no-connector")
        print("auto:", kafka_format(spark, "auto"))
        try:
            kafka_format(spark, "jvm")
        except SeqstreamError as exc:
            print("jvm:", exc)
        spark.stop()
        """
    )
    env = {**os.environ, "SEQSTREAM_JARS_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [line for line in done.stdout.splitlines() if line.startswith(("auto:", "jvm:"))]
    version = pyspark.__version__
    assert lines == [
        f"auto: {SHORT_NAME}",
        "jvm: kafka.connector=jvm but Spark's Kafka connector is not on the classpath: run "
        "set-up (`make setup` resolves it from Maven), or start Spark with --packages "
        f"org.apache.spark:spark-sql-kafka-0-10_2.13:{version} (or --jars with that jar and its "
        "dependencies), or use kafka.connector=auto|python for seqstream's own connector",
    ]
