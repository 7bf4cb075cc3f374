"""The seqstream library: Kafka events in, per-key LSTM scores and dead letters out.

Read it in the order a record flows (each module's docstring says why it exists):

- ``kafka`` reads and writes Kafka from Spark (``seqstream-kafka``) and plain Python; it stands
  alone, importing nothing of the rest but ``errors``;
- ``rows`` names the shapes a record takes: Kafka row -> window row -> scored row -> outputs;
- ``parsing`` turns a value into an event or a dead-letter reason; ``window_step`` windows one
  partition's events per key with ``seqstream.model.windows``; ``scoring`` scores the windows
  with the model loaded once per worker;
- ``stateful_windows`` (per-event windows carried across micro-batches) and ``time_windows``
  (event-time windows) are the two streaming shapes; ``outputs`` writes a micro-batch and
  ``metrics`` counts it;
- ``streaming`` is the streaming query, ``backfill_plan`` and ``backfill`` the backfill, and
  ``demo`` the demo; ``cli`` (with ``flags``, ``config`` and ``bootstrap``) is the command line.

Producing events for tests and demos: ``events``, ``series``, ``replay``, ``producer``.
"""
