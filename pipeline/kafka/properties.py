"""Client properties with Kafka's own names, translated for each Python client.

Users write ``kafka.options`` once, with the names they know from Kafka (and Spark's ``kafka.*``
passthrough): ``security.protocol``, ``sasl.mechanism``, ``ssl.ca.location``... librdkafka takes
them as they are; kafka-python needs its own keyword names.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from seqstream.pipeline.errors import SeqstreamError

_KAFKA_PYTHON_NAMES = {
    "security.protocol": "security_protocol",
    "sasl.mechanism": "sasl_mechanism",
    "sasl.mechanisms": "sasl_mechanism",
    "sasl.username": "sasl_plain_username",
    "sasl.password": "sasl_plain_password",
    "sasl.kerberos.service.name": "sasl_kerberos_service_name",
    "ssl.ca.location": "ssl_cafile",
    "ssl.certificate.location": "ssl_certfile",
    "ssl.key.location": "ssl_keyfile",
    "ssl.key.password": "ssl_password",
    "ssl.crl.location": "ssl_crlfile",
    "client.id": "client_id",
}


def kafka_python_options(options: Mapping[str, str]) -> dict[str, Any]:
    """kafka-python keyword arguments for Kafka-named ``options``; unknown names are an error."""
    unknown = sorted(set(options) - set(_KAFKA_PYTHON_NAMES))
    if unknown:
        raise SeqstreamError(
            f"kafka.options {unknown} have no kafka-python equivalent; supported: "
            f"{sorted(_KAFKA_PYTHON_NAMES)} (or use kafka.client=confluent, which takes any "
            "librdkafka property)"
        )
    return {_KAFKA_PYTHON_NAMES[name]: value for name, value in options.items()}
