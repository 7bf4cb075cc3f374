"""Writing one micro-batch of the streaming job (``foreachBatch``): scores and dead letters to
Parquet and/or Kafka. The batch's counts come from ``pipeline.metrics`` (observed metrics).

Parquet is exactly-once: each batch's rows are written with dynamic partition overwrite under
``batch_id=<id>``, so a batch re-run after a crash replaces its own output and nothing else.
Kafka is at-least-once; a re-run batch sends its records again, recognisable by
(topic, partition, offset) of the source event.
"""

from __future__ import annotations

from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from seqstream.pipeline.config import StreamSettings
from seqstream.pipeline.rows import DEAD_LETTER_COLUMNS, SCORE_COLUMNS


def _write_parquet(frame: DataFrame, path: str, batch_id: int, partition_by: list[str]) -> None:
    (
        frame.withColumn("batch_id", F.lit(batch_id))
        .write.mode("overwrite")
        .option("partitionOverwriteMode", "dynamic")
        .partitionBy(*partition_by, "batch_id")
        .parquet(path)
    )


class BatchWriter:
    """The ``foreachBatch`` function: picklable settings, no open resources between batches."""

    def __init__(
        self, settings: StreamSettings, kafka_format: str, kafka_options: dict[str, str]
    ) -> None:
        self.settings = settings
        self.kafka_format = kafka_format
        self.kafka_options = kafka_options

    def _to_kafka(self, frame: DataFrame, topic: str, key: Any) -> None:
        (
            frame.select(key.alias("key"), F.to_json(F.struct(*frame.columns)).alias("value"))
            .write.format(self.kafka_format)
            .options(**self.kafka_options)
            .option("topic", topic)
            .mode("append")
            .save()
        )

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        s = self.settings
        batch = batch.withColumn("processing_time", F.current_timestamp())
        outputs = sum(
            1
            for out in (s.parquet_path, s.output_topic, s.dead_letter_path, s.dead_letter_topic)
            if out
        )
        if outputs > 1:  # each write reads the batch: compute it once (one write needs no cache)
            batch = batch.persist()
        try:
            scores = (
                batch.where(F.col("score").isNotNull())
                .withColumn("event_time", F.timestamp_millis("event_time_ms"))
                .select(*SCORE_COLUMNS)
            )
            dead = batch.where(F.col("reason").isNotNull()).select(*DEAD_LETTER_COLUMNS)
            if s.parquet_path:
                _write_parquet(
                    scores.withColumn("date", F.to_date("event_time")),
                    str(s.parquet_path),
                    batch_id,
                    ["date"],
                )
            if s.output_topic:
                self._to_kafka(scores, s.output_topic, F.col("key"))
            if s.dead_letter_path:
                _write_parquet(dead, str(s.dead_letter_path), batch_id, [])
            if s.dead_letter_topic:
                self._to_kafka(
                    dead.withColumn("value", F.base64("value")),
                    s.dead_letter_topic,
                    F.lit(None).cast("string"),
                )
        finally:
            if outputs > 1:
                batch.unpersist()
