"""Kafka rows on their way to a score or a dead letter: the row shapes (``rows``) and parsing a
value into an event or a dead-letter reason (``parsing``)."""
