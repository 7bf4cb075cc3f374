"""The scoring step the streaming job and the backfill share, one implementation per model kind.

A step takes one Kafka partition's rows, in log order, and each key's state (``state_of``),
and returns the rows scored (or dead-lettered) and each key's state after them. It is built once
from the model spec (``scoring_step``) and shipped to the workers; the state, stream and backfill
code run it without knowing the kind, as Beam's ``ModelHandler`` hides the framework:

- ``WindowStep``: a key's state is its last N - 1 events; each event is scored on the window of
  its last N events.
- ``CarryStep``: a key's state is its LSTM state vector; each event is scored from it and moves it
  on, so a key's whole history counts.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from seqstream.model.carry import CarryLayout, CarryScorer
from seqstream.model.inference import WindowScorer
from seqstream.model.spec import ModelSpec
from seqstream.model.windows import empty_state, keyed_windows
from seqstream.pipeline.config import EventSchema
from seqstream.pipeline.records.partition import ParsedRows, parse_rows
from seqstream.pipeline.records.rows import SCORED_COLUMNS
from seqstream.pipeline.scoring.worker import ModelRef, batch_scorer

StateOf = Callable[[str], "np.ndarray | None"]


@dataclass(frozen=True)
class ScoredPartition:
    """One Kafka partition's rows scored (``SCORED_SCHEMA``, those at or after ``emit_from``)
    and each key's state after them: a window model's last events [events, features], a carry
    model's state vector [1, state size]."""

    rows: pd.DataFrame
    states: dict[str, np.ndarray]


@dataclass(frozen=True)
class ScoringStep(ABC):
    """Kafka rows of one partition + each key's state -> scored rows + each key's next state.
    Picklable: the driver builds it once and every task runs it."""

    ref: ModelRef
    schema: EventSchema
    max_bytes: int

    @property
    @abstractmethod
    def state_width(self) -> int:
        """Numbers per row of a key's state (a state is rows of this width)."""

    @property
    @abstractmethod
    def history(self) -> int | None:
        """How many of a key's last events its state stands for: a backfill reads them before
        its range; None for all of them (the backfill replays the partition from its start)."""

    @abstractmethod
    def score(
        self, kafka_rows: pd.DataFrame, state_of: StateOf, *, emit_from: int = 0
    ) -> ScoredPartition:
        """Parse one partition's Kafka rows, score them from each key's state (``state_of``)
        and move the states on; only rows at offset ``emit_from`` or later come out."""


@dataclass(frozen=True)
class WindowStep(ScoringStep):
    """A window model: each event scored on its key's last ``length`` events."""

    length: int

    @property
    def state_width(self) -> int:
        return len(self.schema.features)

    @property
    def history(self) -> int | None:
        return self.length - 1

    def score(
        self, kafka_rows: pd.DataFrame, state_of: StateOf, *, emit_from: int = 0
    ) -> ScoredPartition:
        """Only the rows at or after ``emit_from`` are scored: a backfill's read of the events
        before its range scores none."""
        made = window_rows(kafka_rows, state_of, self.length, self.schema, self.max_bytes)
        emit = (made.rows["offset"] >= emit_from).to_numpy()
        if not emit.any():  # a read of earlier events: no model work
            return ScoredPartition(_scored_columns(made.rows.iloc[:0])[SCORED_COLUMNS], made.states)
        if emit.all():
            return ScoredPartition(score_windows(made.rows, made.windows, self.ref), made.states)
        rows = made.rows[emit].reset_index(drop=True)
        return ScoredPartition(score_windows(rows, made.windows[emit], self.ref), made.states)


@dataclass(frozen=True)
class CarryStep(ScoringStep):
    """A carry model: each event scored from its key's carried LSTM state (``state_size``
    numbers), which it moves on."""

    state_size: int

    @property
    def state_width(self) -> int:
        return self.state_size

    @property
    def history(self) -> int | None:
        return None

    def score(
        self, kafka_rows: pd.DataFrame, state_of: StateOf, *, emit_from: int = 0
    ) -> ScoredPartition:
        """Every event runs, since each one moves its key's state; only those at or after
        ``emit_from`` come out."""
        parsed = parse_rows(kafka_rows, self.schema, self.max_bytes)
        stored = [state_of(k) for k in parsed.keys]
        scored, states = score_carried(
            parsed, [None if s is None else s.ravel() for s in stored], self.ref
        )
        emit = (scored["offset"] >= emit_from).to_numpy()
        return ScoredPartition(
            scored if emit.all() else scored[emit].reset_index(drop=True),
            dict(zip(parsed.keys, (s[None] for s in states), strict=True)),
        )


def scoring_step(
    spec: ModelSpec, ref: ModelRef, schema: EventSchema, max_bytes: int
) -> ScoringStep:
    """The step for ``spec``'s kind: the one place the kind is decided."""
    if spec.kind == "carry":
        return CarryStep(ref, schema, max_bytes, CarryLayout.of(spec).size)
    return WindowStep(ref, schema, max_bytes, spec.window_spec.length)


@dataclass(frozen=True)
class WindowedRows:
    """One partition's rows: ``rows`` in ``WINDOW_SCHEMA``, events first in log order, then the
    dead letters; ``windows[i]`` is row i's window (zeros for a dead letter); ``states`` each
    key's last events, to carry to the next batch."""

    rows: pd.DataFrame
    windows: np.ndarray
    states: dict[str, np.ndarray]


def window_rows(
    kafka_rows: pd.DataFrame, state_of: StateOf, length: int, schema: EventSchema, max_bytes: int
) -> WindowedRows:
    """Parse the Kafka rows of one partition (``parse_rows``) and window each valid event over
    its key's history, preceded by the events its state carries (``state_of(key)``)."""
    width = len(schema.features)
    parsed = parse_rows(kafka_rows, schema, max_bytes)
    stored = [state_of(k) for k in parsed.keys]
    made = keyed_windows(
        [empty_state(width) if c is None else c for c in stored],
        parsed.codes,
        parsed.features,
        length,
    )
    rows = parsed.rows
    rows["window_length"] = np.concatenate([made.lengths, np.zeros(parsed.dead, np.int64)]).astype(
        np.int32
    )
    windows = np.concatenate([made.windows, np.zeros((parsed.dead, length, width), np.float32)])
    return WindowedRows(rows, windows, dict(zip(parsed.keys, made.states, strict=False)))


def _scored_columns(rows: pd.DataFrame) -> pd.DataFrame:
    batch = rows.copy(deep=False)
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


def score_windows(rows: pd.DataFrame, windows: np.ndarray, ref: ModelRef) -> pd.DataFrame:
    """``rows`` (``rows.WINDOW_SCHEMA``) with score, prediction and model_version added where the
    window (``windows[i]``, [length, features]) is long enough to score. The windows are not
    sent back: nothing writes them, and sending them costs more than the model on small models.
    Called where the windows are made, in the same Python worker; the micro-batch's model
    (``batch_model``) wins over ``ref``."""
    scorer = batch_scorer(ref, WindowScorer)
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
    scorer = batch_scorer(ref, CarryScorer)
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
