"""Where events come from: their types (``events``), files (``series``), replays and synthetic
streams (``replay``), and sending them to Kafka (``producer``)."""
