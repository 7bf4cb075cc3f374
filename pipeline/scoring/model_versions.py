"""Which model the stream scores with: chosen on the driver between micro-batches (hot swap).

``stream.model`` names one of:

- an artifact folder (``config.json`` in it): that model, for the query's whole life;
- a folder of artifact folders: the current one is the last by name in natural order
  (``v9`` < ``v10``), so publishing a version is adding a folder (write it elsewhere, then
  rename it in: a half-copied folder fails the checks and is retried at the next batch);
- a pointer file whose one line names the current artifact folder (relative to the file's
  folder): publishing is rewriting that line (write a new file, then rename it over).

Before each micro-batch the driver looks again. A new artifact is loaded and checked as at start
(``check_artifact``) and its reference is put in a Spark local property that every task of the
batch reads (``scoring.MODEL_PROPERTY``): all workers switch at the same batch boundary, and each
score row names its ``model_version``. An artifact that fails a check is refused with a log line
and a metric, and the running model goes on scoring. One that reads other features or another
window length is refused too: the window state and the checkpoint only fit the running shape,
so changing it takes a restart (on a new checkpoint).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from seqstream.model.artifact import CONFIG_FILE, DEMO_MODEL_DIR, load_artifact
from seqstream.model.spec import ModelSpec
from seqstream.pipeline.config import Settings
from seqstream.pipeline.errors import SeqstreamError
from seqstream.pipeline.scoring.worker import MODEL_PROPERTY, ModelRef

log = logging.getLogger("seqstream.model")


def _natural(name: str) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def current_artifact(location: Path) -> Path:
    """The artifact folder ``stream.model`` names now (see the module docstring)."""
    if location.is_file():
        named = location.read_text().strip()
        if not named:
            raise SeqstreamError(f"model pointer file {location} is empty: it must name a folder")
        return (location.parent / named).resolve()
    if not location.is_dir() or (location / CONFIG_FILE).is_file():
        return location  # an artifact folder (or a missing path, which load_artifact names)
    versions = sorted(
        (p for p in location.iterdir() if (p / CONFIG_FILE).is_file()),
        key=lambda p: _natural(p.name),
    )
    if not versions:
        raise SeqstreamError(
            f"stream.model {location} holds no model artifact (a folder with {CONFIG_FILE}), "
            "nor is it one"
        )
    return versions[-1]


def check_artifact(
    path: Path, settings: Settings, running: ModelSpec | None = None
) -> tuple[ModelRef, ModelSpec]:
    """Load and validate an artifact on the driver: it must read ``events.features`` (and, for
    a swap, keep the ``running`` model's window length)."""
    spec = load_artifact(path).spec
    if spec.features != list(settings.events.features):
        then = (
            "; a model that reads other features needs a restart with events.features changed, "
            "on a new stream.checkpoint"
            if running is not None
            else ""
        )
        raise SeqstreamError(
            f"model {spec.version} at {path} reads features {spec.features}, but events.features "
            f"is {list(settings.events.features)}: they must be the same names in the same "
            f"order{then}"
        )
    if running is not None and spec.state_shape() != running.state_shape():
        new, old = spec.state_shape(), running.state_shape()
        differs = ", ".join(
            f"{k} {new.get(k)} (running: {old.get(k)})"
            for k in sorted(set(new) | set(old))
            if new.get(k) != old.get(k)
        )
        raise SeqstreamError(
            f"model {spec.version} at {path} keeps another per-key state than the running model "
            f"{running.version}: {differs}. The stream's state fits only the running shape, so "
            "this model needs a restart on a new stream.checkpoint"
        )
    stream = settings.stream
    ref = ModelRef(
        str(path), spec.weights_sha256 or "", stream.device, stream.model_batch_size, spec.version
    )
    return ref, spec


class ModelVersions:
    """The driver's choice of model per micro-batch. ``on_change(outcome)`` hears each swap
    ("swapped") and each refused artifact ("refused"), for the metrics."""

    def __init__(
        self,
        settings: Settings,
        ref: ModelRef,
        spec: ModelSpec,
        location: Path,
        on_change: Callable[[str], None] | None = None,
    ) -> None:
        self.settings = settings
        self.ref, self.spec = ref, spec
        self.location = location
        self.on_change = on_change
        self._refused: set[tuple[str, float]] = set()  # (folder, config mtime) refused once

    def _look(self) -> None:
        try:
            path = current_artifact(self.location)
        except Exception as exc:
            self._refuse(str(self.location), 0.0, exc)
            return
        if str(path) == self.ref.path:
            return
        try:
            stamp = (path / CONFIG_FILE).stat().st_mtime
        except OSError:
            stamp = 0.0
        if (str(path), stamp) in self._refused:
            return
        try:
            ref, spec = check_artifact(path, self.settings, self.spec)
        except Exception as exc:  # whatever is wrong with it, the running model goes on
            self._refuse(str(path), stamp, exc)
            return
        log.info(
            "model %s (%s) replaces %s (%s) from this micro-batch on",
            ref.version,
            ref.path,
            self.ref.version,
            self.ref.path,
        )
        self.ref, self.spec = ref, spec
        if self.on_change is not None:
            self.on_change("swapped")

    def _refuse(self, path: str, stamp: float, why: BaseException) -> None:
        if (path, stamp) not in self._refused:
            self._refused.add((path, stamp))
            log.warning(
                "model at %s refused, %s (%s) goes on scoring: %s",
                path,
                self.ref.version,
                self.ref.path,
                why,
            )
            if self.on_change is not None:
                self.on_change("refused")

    def around(self, write: Callable[[Any, int], None]) -> Callable[[Any, int], None]:
        """``write`` (a ``foreachBatch`` function) run after the batch's model is chosen: the
        choice is made before the batch's first action, so all its tasks score with it."""

        def chosen_then_written(batch: Any, batch_id: int) -> None:
            self.before_batch(batch.sparkSession.sparkContext)
            write(batch, batch_id)

        return chosen_then_written

    def before_batch(self, context: Any) -> ModelRef:
        """Choose the model for the micro-batch about to run on ``context`` (the SparkContext of
        the batch's thread) and hand it to its tasks."""
        self._look()
        context.setLocalProperty(MODEL_PROPERTY, json.dumps(asdict(self.ref)))
        return self.ref


def check_model(settings: Settings) -> tuple[ModelRef, ModelSpec]:
    """Load and validate the model ``stream.model`` names now, on the driver, before any data
    is read."""
    return check_artifact(current_artifact(model_location(settings)), settings)


def model_location(settings: Settings) -> Path:
    return Path(settings.stream.model or DEMO_MODEL_DIR).resolve()
