"""Per-key state between a key's events: the Spark adapter that reads and writes it around the
scoring step (``processor``, ``transformWithStateInPandas`` per Kafka partition), its one codec
and the buckets of many keys it is kept in (``buckets``), which state partition holds which Kafka
partition (``placement``), and event-time windows, the streaming job's second mode
(``time_windows``). Steps over rows: no Spark session code."""
