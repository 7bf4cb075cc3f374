"""Errors seqstream raises on purpose: each message says what is wrong and what to do."""


class SeqstreamError(Exception):
    """Base of every deliberate seqstream error; the CLI prints these without a traceback."""


class BrokerError(SeqstreamError):
    """The embedded broker cannot be started, found or stopped."""


class KafkaUnavailableError(SeqstreamError):
    """No Kafka broker answered at the configured address within the configured wait."""


class TopicError(SeqstreamError):
    """A topic is missing, already exists with another shape, or cannot be created."""


class DeliveryError(SeqstreamError):
    """Some produced records were not acknowledged by the broker."""


class ConfigError(SeqstreamError, ValueError):
    """Configuration that cannot be used; the message names every offending field."""


class OptionError(SeqstreamError, ValueError):
    """An option of the seqstream-kafka source or sink is unknown, malformed or contradicts another."""
