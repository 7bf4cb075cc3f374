"""The streaming driver, over the shared steps: the checks before Spark, the query
(``query``: Kafka -> per-key state and scores -> sinks), its checkpoint (``checkpoint``), and
its life on the driver (``lifecycle``: wait, stop between micro-batches, say why it failed)."""

from seqstream.pipeline.stream.checkpoint import committed_offsets
from seqstream.pipeline.stream.lifecycle import (
    describe_failure,
    run_until_accounted,
    run_until_stopped,
)
from seqstream.pipeline.stream.query import (
    build_query,
    check_outputs,
    check_stream,
    run_stream,
    start_line,
    state_store_conf,
)

__all__ = [
    "build_query",
    "check_outputs",
    "check_stream",
    "committed_offsets",
    "describe_failure",
    "run_stream",
    "run_until_accounted",
    "run_until_stopped",
    "start_line",
    "state_store_conf",
]
