"""Scoring window rows in the Python step that makes them, with the model loaded once per worker.

The model is found by path (local, ``--files`` or shared storage) and checked against the sha256
the driver saw, so every worker scores with the same weights; it is cached per worker by that
hash and never reloaded per batch.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from seqstream.model.artifact import load_artifact
from seqstream.model.inference import WindowScorer
from seqstream.pipeline.errors import SeqstreamError
from seqstream.pipeline.rows import SCORED_COLUMNS

_SCORERS: dict[ModelRef, WindowScorer] = {}


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


def scorer_for(ref: ModelRef) -> WindowScorer:
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
        _SCORERS[ref] = WindowScorer(loaded, device=ref.device, batch_size=ref.batch_size)
    return _SCORERS[ref]


def score_windows(rows: pd.DataFrame, windows: np.ndarray, ref: ModelRef) -> pd.DataFrame:
    """``rows`` (``rows.WINDOW_SCHEMA``) with score, prediction and model_version added where the
    window (``windows[i]``, [length, features]) is long enough to score. The windows are not
    sent back: nothing writes them, and sending them costs more than the model on small models.
    Called where the windows are made, in the same Python worker; the micro-batch's model
    (``batch_model``) wins over ``ref``."""
    scorer = scorer_for(batch_model(ref))
    spec = scorer.spec
    batch = rows.copy(deep=False)
    batch["window"] = None
    batch["score"] = np.nan
    batch["prediction"] = None
    batch["model_version"] = None
    batch["scoring_s"] = np.nan
    batch["model_batch"] = None
    batch["state_keys"] = None
    ready = (batch["window_length"] >= spec.window.min_length).to_numpy() & batch[
        "reason"
    ].isna().to_numpy()
    count = int(ready.sum())
    if count:
        started = time.perf_counter()
        scores = scorer.score(windows[ready], batch["window_length"].to_numpy()[ready])
        batch.loc[ready, "score"] = scores.score
        batch.loc[ready, "prediction"] = pd.Series(
            list(scores.prediction), index=batch.index[ready]
        )
        batch.loc[ready, "model_version"] = spec.version
        batch.loc[ready, "scoring_s"] = (time.perf_counter() - started) / count
        sizes = np.minimum(
            scorer.batch_size, count - np.arange(count) // scorer.batch_size * scorer.batch_size
        )
        batch.loc[ready, "model_batch"] = sizes
    batch["score"] = batch["score"].where(ready, None)
    batch["scoring_s"] = batch["scoring_s"].where(ready, None)
    return batch[SCORED_COLUMNS]
