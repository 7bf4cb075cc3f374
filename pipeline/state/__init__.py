"""Per-key state: the Spark state adapter (``stateful_windows``), its buckets and placement, the
windowing step the stream and the backfill share (``window_step``), event-time windows
(``time_windows``)."""
