"""seqstream: score keyed Kafka event sequences with an LSTM in Spark Structured Streaming.

Installed, the repository root is the package ``seqstream`` (pyproject.toml maps it), with
``seqstream.model`` from ``model/`` and ``seqstream.pipeline`` from ``pipeline/``; nothing else of
the repository is installed. It is a regular package, not a namespace, so that the wheel also
imports as a zip file (``spark-submit --py-files``): Python 3.11's zipimport finds no namespace
package in a wheel.
"""
