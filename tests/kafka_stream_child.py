"""A streaming query run as its own process, so a test can SIGKILL it mid-batch.

Usage: python kafka_stream_child.py BOOTSTRAP TOPIC CHECKPOINT OUT MAX_PER_TRIGGER SLEEP_S MODE
MODE: "run" (processing-time trigger, runs until killed) or "drain" (AvailableNow, then exits).
"""

from __future__ import annotations

import sys
import time

import pandas as pd

from seqstream.pipeline.kafka.datasource import SHORT_NAME, KafkaDataSource
from seqstream.pipeline.spark import local_spark


def main() -> None:
    bootstrap, topic, checkpoint, out, max_per, sleep_s, mode = sys.argv[1:8]
    spark = local_spark("kill-test")
    spark.dataSource.register(KafkaDataSource)
    stream = (
        spark.readStream.format(SHORT_NAME)
        .option("kafka.bootstrap.servers", bootstrap)
        .option("subscribe", topic)
        .option("startingOffsets", "earliest")
        .option("maxOffsetsPerTrigger", max_per)
        .load()
        .selectExpr("partition", "offset", "CAST(value AS STRING) AS value")
    )

    def slow(batches):  # type: ignore[no-untyped-def]
        for batch in batches:
            time.sleep(float(sleep_s))  # a batch long enough to be killed in the middle of
            yield batch

    stream = stream.mapInPandas(slow, stream.schema)
    writer = (
        stream.writeStream.format("parquet")
        .option("checkpointLocation", checkpoint)
        .option("path", out)
    )
    writer = (
        writer.trigger(availableNow=True)
        if mode == "drain"
        else writer.trigger(processingTime="0 seconds")
    )
    writer.start().awaitTermination()
    spark.stop()


if __name__ == "__main__":
    _ = pd  # pandas must import in the driver for mapInPandas
    main()
