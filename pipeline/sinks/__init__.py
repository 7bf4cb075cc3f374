"""Where a micro-batch goes: Parquet, Kafka and dead letters (``outputs``), and its metrics
(``metrics``)."""
