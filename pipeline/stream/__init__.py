"""The streaming driver: checks, the query and its checkpoint, start, stop between micro-batches
(``query``, ``stop_gate``)."""
