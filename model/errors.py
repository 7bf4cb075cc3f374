"""Errors the model package raises on purpose: each message says what is wrong and what to do."""


class ModelError(Exception):
    """Base of every deliberate error of ``seqstream.model``; the CLI prints these without a
    traceback. The model package stands alone, so this is not a ``SeqstreamError``."""
