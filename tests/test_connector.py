"""kafka.connector: the pipeline picks Spark's JVM connector or seqstream's Python one."""

from __future__ import annotations

import pytest

from seqstream.pipeline.config import KafkaSettings
from seqstream.pipeline.errors import SeqstreamError
from seqstream.pipeline.kafka.connector import jvm_connector_available, kafka_format, kafka_options
from seqstream.pipeline.kafka.datasource import SHORT_NAME


def test_auto_and_python_use_seqstream_kafka_without_the_jvm_connector(
    spark, bootstrap_servers, new_topic
) -> None:
    assert not jvm_connector_available(spark)  # pyspark's jars/ has no spark-sql-kafka
    assert kafka_format(spark, "auto") == SHORT_NAME
    assert kafka_format(spark, "python") == SHORT_NAME
    topic = new_topic(partitions=1)
    options = kafka_options(
        bootstrap_servers, KafkaSettings(options={"client.id": "seqstream-test"}).options
    )
    assert options == {
        "kafka.bootstrap.servers": bootstrap_servers,
        "kafka.client.id": "seqstream-test",
    }
    df = (
        spark.read.format(kafka_format(spark, "auto"))
        .options(**options)
        .option("subscribe", topic)
        .load()
    )
    assert df.columns == [
        "key",
        "value",
        "topic",
        "partition",
        "offset",
        "timestamp",
        "timestampType",
    ]
    assert df.count() == 0


def test_jvm_connector_asked_for_but_missing_says_how_to_add_it(spark) -> None:
    with pytest.raises(
        SeqstreamError,
        match=rf"--packages org.apache.spark:spark-sql-kafka-0-10_2.13:{spark.version}",
    ):
        kafka_format(spark, "jvm")
