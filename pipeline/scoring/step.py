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
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from seqstream.model.artifact import load_artifact
from seqstream.model.carry import CarryScorer
from seqstream.model.inference import WindowScorer
from seqstream.pipeline.config import EventSchema
from seqstream.pipeline.errors import SeqstreamError
from seqstream.pipeline.records.rows import SCORED_COLUMNS
from seqstream.pipeline.state.window_step import ParsedRows, parse_rows, window_rows

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


def _scored_columns(rows: pd.DataFrame) -> pd.DataFrame:
    batch = rows.copy(deep=False)
    batch["window"] = None
    batch["score"] = np.nan
    batch["prediction"] = None
    batch["model_version"] = None
    batch["scoring_s"] = np.nan
    batch["model_batch"] = None
    batch["state_keys"] = None
    batch["keys_expired"] = None
    return batch


def _with_scores(
    batch: pd.DataFrame,
    ready: np.ndarray,
    score: np.ndarray,
    prediction: np.ndarray,
    version: str,
    seconds: float,
    model_batch: np.ndarray,
) -> pd.DataFrame:
    """``batch`` (``_scored_columns``) with the ``ready`` rows' score, prediction, model version,
    share of the model's ``seconds`` and model batch size; the others keep nulls."""
    count = int(ready.sum())
    if count:
        batch.loc[ready, "score"] = score
        batch.loc[ready, "prediction"] = pd.Series(list(prediction), index=batch.index[ready])
        batch.loc[ready, "model_version"] = version
        batch.loc[ready, "scoring_s"] = seconds / count
        batch.loc[ready, "model_batch"] = model_batch
    batch["score"] = batch["score"].where(ready, None)
    batch["scoring_s"] = batch["scoring_s"].where(ready, None)
    return batch[SCORED_COLUMNS]


def _scorer_of_kind(ref: ModelRef, kind: type[WindowScorer] | type[CarryScorer]) -> Any:
    scorer = scorer_for(batch_model(ref))
    if not isinstance(scorer, kind):
        raise SeqstreamError(
            f"model {scorer.spec.version} is a {scorer.spec.kind} model, but this query's state "
            f"was made for {'window' if kind is WindowScorer else 'carry'} models"
        )
    return scorer


def score_windows(rows: pd.DataFrame, windows: np.ndarray, ref: ModelRef) -> pd.DataFrame:
    """``rows`` (``rows.WINDOW_SCHEMA``) with score, prediction and model_version added where the
    window (``windows[i]``, [length, features]) is long enough to score. The windows are not
    sent back: nothing writes them, and sending them costs more than the model on small models.
    Called where the windows are made, in the same Python worker; the micro-batch's model
    (``batch_model``) wins over ``ref``."""
    scorer: WindowScorer = _scorer_of_kind(ref, WindowScorer)
    spec = scorer.spec
    batch = _scored_columns(rows)
    ready = (batch["window_length"] >= spec.window_spec.min_length).to_numpy() & batch[
        "reason"
    ].isna().to_numpy()
    count = int(ready.sum())
    started = time.perf_counter()
    scores = scorer.score(windows[ready], batch["window_length"].to_numpy()[ready])
    seconds = time.perf_counter() - started
    sizes = np.minimum(
        scorer.batch_size, count - np.arange(count) // scorer.batch_size * scorer.batch_size
    )
    return _with_scores(batch, ready, scores.score, scores.prediction, spec.version, seconds, sizes)


def score_carried(
    parsed: ParsedRows, states: list[np.ndarray | None], ref: ModelRef
) -> tuple[pd.DataFrame, list[np.ndarray]]:
    """Carry models: ``parsed``'s rows (``SCORED_SCHEMA``) with every valid event scored from its
    key's carried state (``states[i]`` for ``parsed.keys[i]``; None: a new key), and each key's
    state after them. ``window_length`` is the event's position in its key's history (the
    events its score has read), capped at 2^31 - 1."""
    scorer: CarryScorer = _scorer_of_kind(ref, CarryScorer)
    batch = _scored_columns(parsed.rows)
    n = len(parsed.codes)
    if not n:
        return batch[SCORED_COLUMNS], []
    started = time.perf_counter()
    scores, new_states = scorer.score(states, parsed.codes, parsed.features)
    seconds = time.perf_counter() - started
    ready = np.zeros(len(batch), bool)
    ready[:n] = ~np.isnan(scores.score)
    batch["window_length"] = np.concatenate(
        [np.minimum(scores.position, 2**31 - 1), np.zeros(len(batch) - n, np.int64)]
    ).astype(np.int32)
    done = ready[:n]
    scored = _with_scores(
        batch,
        ready,
        scores.score[done],
        scores.prediction[done],
        scorer.spec.version,
        seconds,
        scores.model_batch[done],
    )
    return scored, new_states


@dataclass(frozen=True)
class ScoredPartition:
    """One Kafka partition's rows scored (``SCORED_SCHEMA``, those at or after ``emit_from``)
    and each key's state after them: a window model's last events [events, features], a carry
    model's state vector [1, state size]."""

    rows: pd.DataFrame
    states: dict[str, np.ndarray]


def score_partition(
    kafka_rows: pd.DataFrame,
    state_of: Callable[[str], np.ndarray | None],
    *,
    carry: bool,
    length: int,
    schema: EventSchema,
    max_bytes: int,
    ref: ModelRef,
    emit_from: int = 0,
) -> ScoredPartition:
    """The step the streaming processor and the backfill share: parse one partition's Kafka
    rows, score them from each key's state (``state_of``) and move the states on. A window
    model scores only the rows at or after ``emit_from`` (a backfill's context read scores
    none); a carry model runs every event, since each one moves its key's state."""
    if carry:
        parsed = parse_rows(kafka_rows, schema, max_bytes)
        stored = [state_of(k) for k in parsed.keys]
        scored, states = score_carried(
            parsed, [None if s is None else s.ravel() for s in stored], ref
        )
        emit = (scored["offset"] >= emit_from).to_numpy()
        return ScoredPartition(
            scored if emit.all() else scored[emit].reset_index(drop=True),
            dict(zip(parsed.keys, (s[None] for s in states), strict=True)),
        )
    made = window_rows(kafka_rows, state_of, length, schema, max_bytes)
    emit = (made.rows["offset"] >= emit_from).to_numpy()
    if not emit.any():  # a context read: no model work
        return ScoredPartition(_scored_columns(made.rows.iloc[:0])[SCORED_COLUMNS], made.contexts)
    if emit.all():
        return ScoredPartition(score_windows(made.rows, made.windows, ref), made.contexts)
    rows = made.rows[emit].reset_index(drop=True)
    return ScoredPartition(score_windows(rows, made.windows[emit], ref), made.contexts)
