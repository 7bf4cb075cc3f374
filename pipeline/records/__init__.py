"""Kafka rows on their way to a score or a dead letter: the row shapes (``rows``), a value parsed
into an event or a dead-letter reason (``parsing``), and one partition's rows parsed for the
scoring step, valid events first in log order (``partition``)."""
