"""``seqstream-kafka``: a Spark Python data source with the contract of Spark's Kafka connector.

Same schema and option names as ``format("kafka")``, for ``spark.read``, ``spark.readStream``,
``df.write`` and ``df.writeStream``: the readers live in ``source``, the writers in ``sink``.
Options are parsed and checked here, on the driver, when a query starts.
"""

from __future__ import annotations

from pyspark.sql.datasource import DataSource, DataSourceReader, DataSourceStreamReader
from pyspark.sql.types import StructType

from seqstream.pipeline.errors import OptionError
from seqstream.pipeline.kafka.options import parse_sink_options, parse_source_options
from seqstream.pipeline.kafka.schema import kafka_schema
from seqstream.pipeline.kafka.sink import KafkaBatchWriter, KafkaStreamWriter
from seqstream.pipeline.kafka.source import KafkaBatchReader, KafkaStreamReader

SHORT_NAME = "seqstream-kafka"


class KafkaDataSource(DataSource):
    """Register with ``spark.dataSource.register(KafkaDataSource)``; use ``format("seqstream-kafka")``."""

    @classmethod
    def name(cls) -> str:
        return SHORT_NAME

    def schema(self) -> StructType:
        return kafka_schema(
            self.options.get("includeHeaders", self.options.get("includeheaders", "false")).lower()
            == "true"
        )

    def reader(self, schema: StructType) -> DataSourceReader:
        return KafkaBatchReader(parse_source_options(self.options, streaming=False))

    def streamReader(self, schema: StructType) -> DataSourceStreamReader:
        return KafkaStreamReader(parse_source_options(self.options, streaming=True))

    def writer(self, schema: StructType, overwrite: bool) -> KafkaBatchWriter:
        """Append only, as Spark's Kafka sink. (Spark itself refuses its default ErrorIfExists
        mode for every Python data source before this runs: batch writes need
        ``.mode("append")``.)"""
        if overwrite:
            raise OptionError(
                "save mode Overwrite is not allowed for Kafka: records can only be appended; "
                'use .mode("append")'
            )
        return KafkaBatchWriter(parse_sink_options(self.options), schema)

    def streamWriter(self, schema: StructType, overwrite: bool) -> KafkaStreamWriter:
        return KafkaStreamWriter(parse_sink_options(self.options), schema)
