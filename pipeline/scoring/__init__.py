"""Scoring: the step built once from the model spec, one implementation per model kind
(``step``: Kafka rows + each key's state -> scored rows + next state), the model as a worker holds
it (``worker``: loaded once, checked against the driver's sha256, on the task's device), and
which model a micro-batch scores with, chosen on the driver (``model_versions``)."""
