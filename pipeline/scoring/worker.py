"""The model as a worker holds it: loaded once per worker, the micro-batch's version, its device.

The model is found by path (local, ``--files`` or shared storage) and checked against the sha256
the driver saw, so every worker scores with the same weights; it is cached per worker by that
hash and never reloaded per batch.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from typing import TypeVar

from seqstream.model.artifact import load_artifact
from seqstream.model.carry import CarryScorer
from seqstream.model.inference import WindowScorer
from seqstream.pipeline.errors import SeqstreamError

_SCORERS: dict[ModelRef, WindowScorer | CarryScorer] = {}


@dataclass(frozen=True)
class ModelRef:
    """What the driver ships to workers: where the artifact is and which one it must be."""

    path: str
    sha256: str
    device: str = "cpu"
    batch_size: int = 1024
    version: str = ""  # the artifact's model version, for messages


# The Spark local property in which the driver names each micro-batch's model (a ModelRef as
# JSON; ``model_versions``): every task of the batch scores with it, so a new model starts at
# a batch boundary on every worker at once.
MODEL_PROPERTY = "seqstream.model"


def batch_model(default: ModelRef) -> ModelRef:
    """The model this task's micro-batch was given, else ``default`` (the query's first)."""
    from pyspark import TaskContext

    context = TaskContext.get()
    chosen = context.getLocalProperty(MODEL_PROPERTY) if context is not None else None
    return ModelRef(**json.loads(chosen)) if chosen else default


def executor_device(requested: str, gpu_addresses: list[str], visible: str | None) -> str:
    """``cuda`` means the GPU Spark gave this task (``spark.task.resource.gpu.amount``), when it
    gave one: its address is a physical index, renumbered if CUDA_VISIBLE_DEVICES narrows them."""
    if requested != "cuda" or not gpu_addresses:
        return requested
    address = gpu_addresses[0]
    if visible:
        ordinals = [v.strip() for v in visible.split(",")]
        if address in ordinals:
            return f"cuda:{ordinals.index(address)}"
    return f"cuda:{address}"


def _task_device(requested: str) -> str:
    from pyspark import TaskContext

    context = TaskContext.get()
    resources = context.resources() if context is not None else {}
    gpu = resources.get("gpu")
    return executor_device(
        requested, list(gpu.addresses) if gpu else [], os.environ.get("CUDA_VISIBLE_DEVICES")
    )


def scorer_for(ref: ModelRef) -> WindowScorer | CarryScorer:
    device = _task_device(ref.device)
    if device != ref.device:
        ref = dataclasses.replace(ref, device=device)
    if ref not in _SCORERS:
        for old in [r for r in _SCORERS if (r.path, r.sha256) != (ref.path, ref.sha256)]:
            del _SCORERS[old]  # a worker keeps the current model only: a swapped-out one goes
        loaded = load_artifact(ref.path)
        if loaded.spec.weights_sha256 != ref.sha256:
            raise SeqstreamError(
                f"model at {ref.path} on this worker has weights {loaded.spec.weights_sha256}, the "
                f"driver checked {ref.sha256}: ship the same artifact to every node"
            )
        kind = CarryScorer if loaded.spec.kind == "carry" else WindowScorer
        _SCORERS[ref] = kind(loaded, device=ref.device, batch_size=ref.batch_size)
    return _SCORERS[ref]


Scorer = TypeVar("Scorer", WindowScorer, CarryScorer)


def batch_scorer(ref: ModelRef, kind: type[Scorer]) -> Scorer:
    """The scorer of this task's micro-batch model (``batch_model``), which must be of ``kind``:
    a query's state is made for one kind, and a swap to the other is refused, naming both."""
    scorer = scorer_for(batch_model(ref))
    if not isinstance(scorer, kind):
        raise SeqstreamError(
            f"model {scorer.spec.version} is a {scorer.spec.kind} model, but this query's state "
            f"was made for {'window' if kind is WindowScorer else 'carry'} models"
        )
    return scorer
