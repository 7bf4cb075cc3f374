"""The streaming job's checkpoint: what it is valid for, and what Spark recorded in it.

``seqstream.json`` beside Spark's own files names the query a checkpoint belongs to (topics,
mode, model shape, state layout); a checkpoint of another query or of an older state layout is
refused before Spark starts, with the offsets to go on from. Spark's offset log (``offsets/N``:
a version line, the batch's metadata with its session conf, then the source offsets) and commit
log (``commits/N``) are read by one reader, ``SparkCheckpoint``: on a local disk directly, on any
other file system Spark reads through Hadoop's, given the Spark session.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from seqstream.model.spec import ModelSpec
from seqstream.pipeline.config import Settings
from seqstream.pipeline.errors import SeqstreamError
from seqstream.pipeline.sinks.outputs import on_local_disk
from seqstream.pipeline.state.buckets import READABLE_LAYOUTS, STATE_LAYOUT
from seqstream.pipeline.state.time_windows import TIME_LAYOUT

CHECKPOINT_IDENTITY = "seqstream.json"  # beside Spark's own files in stream.checkpoint


class SparkCheckpoint:
    """Spark's offset and commit logs in a checkpoint folder. Local paths (and ``file:`` URIs)
    are read directly, before Spark starts; others through Hadoop's file system, which needs
    ``spark``."""

    def __init__(self, location: Path | str, spark: Any = None) -> None:
        self.location = str(location)
        self.local = on_local_disk(self.location)
        self.spark = spark
        if not self.local and spark is None:
            raise ValueError(f"reading {self.location} needs a Spark session")

    def _local(self, *parts: str) -> Path:
        return Path(self.location.removeprefix("file://"), *parts)

    def exists(self, folder: str) -> bool:
        """Whether Spark has made ``folder`` (``offsets`` or ``commits``) yet."""
        if self.local:
            return self._local(folder).is_dir()
        fs, path = self._hadoop(folder)
        return bool(fs.exists(path))

    def batches(self, folder: str) -> list[int]:
        """The micro-batch numbers Spark recorded in ``folder`` (``offsets`` or ``commits``)."""
        if not self.exists(folder):
            return []
        if self.local:
            names = [p.name for p in self._local(folder).iterdir()]
        else:
            fs, path = self._hadoop(folder)
            names = [s.getPath().getName() for s in fs.listStatus(path)]
        return sorted(int(n) for n in names if n.isdigit())

    def _hadoop(self, *parts: str) -> tuple[Any, Any]:
        hadoop = self.spark._jvm.org.apache.hadoop.fs
        path = hadoop.Path(self.location)
        for part in parts:
            path = hadoop.Path(path, part)
        return path.getFileSystem(self.spark._jsc.hadoopConfiguration()), path

    def _offset_log(self, batch: int) -> list[str]:
        if self.local:
            return self._local("offsets", str(batch)).read_text().splitlines()
        fs, path = self._hadoop("offsets", str(batch))
        stream = fs.open(path)
        try:
            text = self.spark._jvm.org.apache.commons.io.IOUtils.toString(stream, "UTF-8")
        finally:
            stream.close()
        return str(text).splitlines()

    def conf(self, batch: int) -> dict[str, str]:
        """The session conf micro-batch ``batch`` ran with (the offset log's second line)."""
        lines = self._offset_log(batch)
        return dict(json.loads(lines[1]).get("conf", {})) if len(lines) > 1 else {}

    def offsets(self, batch: int) -> dict[str, dict[str, int]]:
        """The Kafka offsets micro-batch ``batch`` ends at (the offset log's third line)."""
        lines = self._offset_log(batch)
        return json.loads(lines[2]) if len(lines) > 2 else {}

    def committed_offsets(self) -> dict[str, dict[str, int]]:
        """Where the query will go on from: the end offsets of its last committed micro-batch."""
        committed = self.batches("commits")
        return self.offsets(committed[-1]) if committed else {}

    def state_partitions(self) -> int | None:
        """``spark.sql.shuffle.partitions`` of the last micro-batch: Spark fixes the state's
        partitions at a checkpoint's first run."""
        batches = self.batches("offsets")
        value = self.conf(batches[-1]).get("spark.sql.shuffle.partitions") if batches else None
        return int(value) if value else None


def committed_offsets(checkpoint: Path | str) -> dict[str, dict[str, int]]:
    """Where the query of a local ``checkpoint`` will go on from."""
    return SparkCheckpoint(checkpoint).committed_offsets()


def query_identity(
    settings: Settings, spec: ModelSpec, layout: str = STATE_LAYOUT
) -> dict[str, Any]:
    """What a checkpoint's offsets and state are only valid for. New weights for the same shape
    are not part of it: a model can be retrained without losing the stream's place."""
    stream = settings.stream
    identity: dict[str, Any] = {
        "topics": sorted(stream.topics),
        "mode": stream.mode,
        "model_kind": spec.kind,
        "features": list(spec.features),
    }
    if spec.kind == "window":
        identity["window"] = spec.window_spec.length
    else:
        identity["carry_state"] = spec.state_shape()
    if stream.mode == "time":
        identity.update(
            state_layout=TIME_LAYOUT, time_window=stream.time_window, time_slide=stream.time_slide
        )
    else:
        identity.update(state_layout=layout, state_buckets=stream.state_buckets)
    return identity


def check_checkpoint(settings: Settings, spec: ModelSpec) -> str:
    """Refuse a checkpoint made for other topics or another model shape (the query would go on
    mixing histories); ``record_checkpoint`` then writes this query's identity, once every check
    has passed. Returns the state layout to run with: the checkpoint's own when it is one this
    version reads (``READABLE_LAYOUTS``); a checkpoint made with per-key state, or event-time
    state from before ``TIME_LAYOUT``, is refused with the offsets to go on from. Not checked on
    non-local file systems (they run ``STATE_LAYOUT``)."""
    checkpoint = settings.stream.checkpoint
    if checkpoint is None or "://" in str(checkpoint):
        return STATE_LAYOUT
    path = Path(checkpoint) / CHECKPOINT_IDENTITY
    recorded = json.loads(path.read_text()) if path.is_file() else None
    layout = (recorded or {}).get("state_layout", STATE_LAYOUT)
    identity = query_identity(
        settings, spec, layout if layout in READABLE_LAYOUTS else STATE_LAYOUT
    )
    # Made before identities were recorded (no seqstream.json), or before state layouts were.
    made_before = (recorded is None and bool(SparkCheckpoint(checkpoint).batches("offsets"))) or (
        recorded is not None
        and recorded.get("mode") == settings.stream.mode
        and "state_layout" not in recorded
    )
    if made_before:
        raise SeqstreamError(_made_before(settings, Path(checkpoint)))
    if recorded is not None:
        differs = {k: (recorded.get(k), v) for k, v in identity.items() if recorded.get(k) != v}
        if differs:
            what = "; ".join(f"{k}: {was} there, {now} now" for k, (was, now) in differs.items())
            raise SeqstreamError(
                f"stream.checkpoint {checkpoint} belongs to another query ({what}): its offsets "
                "and window state only fit the query that made them. Use a new "
                "stream.checkpoint (the query then starts at stream.starting_offsets), or run "
                "with the settings it was made for"
            )
        return str(identity.get("state_layout", STATE_LAYOUT))
    return STATE_LAYOUT


def _made_before(settings: Settings, checkpoint: Path) -> str:
    """Why a checkpoint of an earlier seqstream's state cannot go on, and where to go on from."""
    offsets = json.dumps(committed_offsets(checkpoint), separators=(",", ":"))
    if settings.stream.mode == "time":
        kept = (
            f"event-time windows without the late-event step of this one ({TIME_LAYOUT}), "
            "whose state it cannot read"
        )
        then = "Windows open at its stop then start again from their next events"
    else:
        kept = (
            "one window state value per key; this one keeps keys in buckets "
            f"({STATE_LAYOUT}) and cannot read it"
        )
        then = (
            "Each key's history then starts again from its next event; `seqstream backfill` "
            "over the offsets from there scores that stretch with whole histories"
        )
    return (
        f"stream.checkpoint {checkpoint} was made by an earlier seqstream, which kept {kept}. "
        "Keep running it with the version that made it, or start a new stream.checkpoint "
        f"that goes on where this one stopped: --starting-offsets '{offsets}'. {then}"
    )


def record_checkpoint(settings: Settings, spec: ModelSpec, layout: str) -> None:
    """Write this query's identity into its checkpoint (``seqstream.json``), if not there yet."""
    checkpoint = settings.stream.checkpoint
    if checkpoint is None or "://" in str(checkpoint):
        return
    path = Path(checkpoint) / CHECKPOINT_IDENTITY
    if not path.is_file():
        Path(checkpoint).mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(query_identity(settings, spec, layout), indent=1) + "\n")
