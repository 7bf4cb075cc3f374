"""The seqstream library: Kafka events in, per-key LSTM scores and dead letters out.

Read it in the order a record flows (each subpackage's docstring draws its part):

    kafka/    Kafka rows in (Spark's connector or ``seqstream-kafka``), records out
      -> records/   a row is parsed into an event, or a dead letter with its reason
      -> state/     each key's state is read, handed to the step, written back (buckets, TTL)
      -> scoring/   the kind-aware step: events + state -> scores + next state (model per worker)
      -> sinks/     scores and dead letters to Parquet and Kafka; metrics per micro-batch
    stream/, backfill/   two thin drivers over those same steps (never importing each other)
    cli/      the ``seqstream`` command; ``config``, ``bootstrap`` and ``spark`` set the stage

``kafka`` stands alone (it imports nothing of the rest but ``errors``); ``sources`` makes events
for tests and demos. ``scripts/check_imports.py`` keeps these directions.
"""
