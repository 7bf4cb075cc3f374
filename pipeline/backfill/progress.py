"""A backfill's progress folder: its plan, then per finished chunk its counts and every key's
state after it, so that a re-run resumes after the last finished chunk.

Key state is kept as the streaming job keeps it (``state.buckets``' codec): one encoded bucket
per Kafka partition.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from seqstream.pipeline.backfill.plan import BackfillPlan
from seqstream.pipeline.errors import SeqstreamError
from seqstream.pipeline.kafka import TopicPartition

# Every key's state, one encoded bucket (``state.buckets.encode_bucket``) per Kafka partition.
States = dict[TopicPartition, bytes]

_STATE_SCHEMA = pa.schema(
    [("topic", pa.string()), ("partition", pa.int32()), ("state", pa.binary())]
)


@dataclass(frozen=True)
class ChunkCounts:
    chunk: int
    events_in: int
    scored: int
    not_yet_scoreable: int
    dead_lettered: int
    seconds: float
    # Events read but outside the request's event-time range: not written (and not counted as
    # scored or not yet scoreable). events_in = scored + not_yet_scoreable + dead_lettered + this.
    outside_event_time: int = 0


class Progress:
    """``plan.json``, then per finished chunk ``chunk-NNNNN.json`` (counts) and
    ``chunk-NNNNN.state.parquet`` (every key's state after it); ``before.state.parquet`` holds
    the state before the range. A file appears only once complete (written aside, then
    renamed)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def plan(self) -> BackfillPlan | None:
        path = self.folder / "plan.json"
        if not path.exists():
            return None
        try:
            return BackfillPlan.from_json(path.read_text())
        except (ValueError, KeyError, TypeError):
            raise SeqstreamError(
                f"{self.folder} holds the progress of a backfill planned by another seqstream "
                "version, which this one cannot resume: pass --restart to discard it, or give "
                "this one its own --progress-dir (backfill.progress_dir)"
            ) from None

    def start(self, plan: BackfillPlan) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._write(self.folder / "plan.json", plan.to_json().encode())

    def clear(self) -> None:
        if self.folder.exists():
            shutil.rmtree(self.folder)

    def finished(self) -> list[ChunkCounts]:
        """The counts of the stored plan's chunks finished so far, in order."""
        plan = self.plan()
        done = []
        for index in range(len(plan.chunks) if plan else 0):
            path = self.folder / f"chunk-{index:05d}.json"
            if not path.exists():
                break
            done.append(ChunkCounts(**json.loads(path.read_text())))
        return done

    def state(self, name: str) -> States | None:
        path = self.folder / f"{name}.state.parquet"
        if not path.exists():
            return None
        table = pq.read_table(path, schema=_STATE_SCHEMA).to_pydict()
        return {
            TopicPartition(t, p): s
            for t, p, s in zip(table["topic"], table["partition"], table["state"], strict=True)
        }

    def save_state(self, name: str, states: States) -> None:
        table = pa.table(
            [
                pa.array([tp.topic for tp in states], pa.string()),
                pa.array([tp.partition for tp in states], pa.int32()),
                pa.array(list(states.values()), pa.binary()),
            ],
            schema=_STATE_SCHEMA,
        )
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        self._write(self.folder / f"{name}.state.parquet", sink.getvalue().to_pybytes())

    def finish_chunk(self, counts: ChunkCounts, states: States) -> None:
        self.save_state(f"chunk-{counts.chunk:05d}", states)
        self._write(
            self.folder / f"chunk-{counts.chunk:05d}.json", json.dumps(asdict(counts)).encode()
        )

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        aside = path.with_name(path.name + ".tmp")
        aside.write_bytes(data)
        aside.replace(path)
