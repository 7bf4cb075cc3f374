"""Scoring: the worker-side step that scores a partition's rows with the model loaded once per
worker (``step``), and which model a micro-batch scores with, chosen on the driver
(``model_versions``)."""
