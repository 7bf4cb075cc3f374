"""Event series read from files: CSV (one key per file) and Parquet event tables.

What the producer replays, what training fits and what the demo draws all come through here,
so a series means the same thing everywhere: one key's feature rows in event-time order.
The NAB series bundled for the demo live in ``demo_data/nab`` (MIT licence, see its README).
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib.resources import files
from pathlib import Path

import numpy as np
import pandas as pd

from seqstream.pipeline.config import EventSchema
from seqstream.pipeline.errors import SeqstreamError
from seqstream.pipeline.sources.events import Event

DEMO_NAB_DIR = Path(str(files("seqstream.pipeline") / "demo_data" / "nab"))


def demo_series_files() -> list[Path]:
    """The NAB series bundled with the package (see demo_data/nab/README.md)."""
    return sorted(DEMO_NAB_DIR.glob("*/*.csv"))


def expand_csv_paths(paths: Iterable[str | Path]) -> list[Path]:
    """Files as given, folders as the CSV files below them; a missing path is an error."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend(sorted(path.rglob("*.csv")))
        elif path.is_file():
            found.append(path)
        else:
            raise SeqstreamError(f"no such CSV file or folder: {path}")
    if not found:
        raise SeqstreamError(f"no CSV files found in {[str(p) for p in paths]}")
    return found


def read_series_csv(
    path: Path, schema: EventSchema, *, time_column: str = "timestamp"
) -> list[Event]:
    """One key's events (the file name is the key) from a CSV with a time column and one column
    per schema feature, in time order."""
    return read_csv_events(path, schema, time_column=time_column)[0]


def read_csv_events(
    path: Path,
    schema: EventSchema,
    *,
    time_column: str = "timestamp",
    key_column: str | None = None,
) -> list[list[Event]]:
    """Each key's events in time order: one key per file (named after it), or with
    ``key_column`` (long format) the keys that column names, many per file."""
    frame = pd.read_csv(path, keep_default_na=False)  # "n/a" is not a number, not a gap
    needed = [time_column, *schema.features, *([key_column] if key_column else [])]
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise SeqstreamError(
            f"{path}: missing column(s) {missing}; it has {list(frame.columns)} "
            "(events.features names the feature columns, --time-column the time column, "
            "--key-column the key column)"
        )
    times = pd.to_datetime(frame[time_column], utc=True, errors="coerce")
    if times.isna().any():
        row = int(times.isna().to_numpy().argmax())
        raise SeqstreamError(
            f"{path}: unparseable time {frame[time_column].iloc[row]!r} in row {row + 2}"
        )
    ts_ms = (times.astype("int64") // 1_000_000).to_numpy()  # ns -> ms, whatever the unit
    values = _numbers(frame, list(schema.features), path)
    if key_column is None:
        _check_one_key(frame, path, [time_column, *schema.features], ts_ms)
        keys = np.full(len(frame), path.stem, dtype=object)
    else:
        keys = frame[key_column].astype(str).str.strip().to_numpy()
        empty = np.flatnonzero(keys == "")
        if len(empty):
            raise SeqstreamError(
                f"{path}: an empty key in column {key_column!r}, row {int(empty[0]) + 2}"
            )
    series = []
    for key in sorted(set(keys.tolist())) if len(keys) else [path.stem]:
        rows = np.flatnonzero(keys == key)
        order = rows[np.argsort(ts_ms[rows], kind="stable")]
        series.append(
            [Event(key, int(ts_ms[i]), tuple(float(v) for v in values[i])) for i in order]
        )
    return series


def _check_one_key(frame: pd.DataFrame, path: Path, used: list[str], ts_ms: np.ndarray) -> None:
    """A file read as one key's series must look like one: refuse, naming the column, a file
    whose other columns look like a key (a few values, each on many rows) or where many times
    repeat, rather than interleave several keys' events under the file's name."""
    rows = len(frame)
    for column in (c for c in frame.columns if c not in used):
        values = frame[column].astype(str).str.strip()
        distinct = values.nunique()
        if 1 < distinct <= rows // 2:
            raise SeqstreamError(
                f"{path}: column {column!r} looks like a key column ({distinct} distinct values "
                f"over {rows} rows), and without --key-column every row is read as one key "
                f"{path.stem!r}: pass --key-column {column} (long format, many keys per file), "
                "or drop that column"
            )
    repeated = rows - len(np.unique(ts_ms))
    if repeated > rows // 10:  # a real series may repeat a time now and then (clock changes)
        raise SeqstreamError(
            f"{path}: {repeated} of {rows} rows repeat an earlier time, so the file holds more "
            f"than one series, and without --key-column every row is read as one key "
            f"{path.stem!r}: pass --key-column with the column that names each row's key"
        )


def _numbers(frame: pd.DataFrame, columns: list[str], path: Path) -> np.ndarray:
    """The feature columns as float64, or an error naming the first cell that is not a number."""
    numbers = frame[columns].apply(pd.to_numeric, errors="coerce")
    bad = numbers.isna().to_numpy()
    if bad.any():
        row, column = (int(i) for i in np.argwhere(bad)[0])
        cell = frame[columns[column]].iloc[row]
        empty = pd.isna(cell) or not str(cell).strip()
        what = "an empty cell" if empty else f"{cell!r}, not a number,"
        raise SeqstreamError(
            f"{path}: {what} in column {columns[column]!r}, row {row + 2} (the header is row 1)"
        )
    return numbers.to_numpy(dtype=np.float64)


def _is_parquet(path: Path) -> bool:
    return path.suffix == ".parquet" or (path.is_dir() and any(path.rglob("*.parquet")))


def _read_parquet_events(path: Path, schema: EventSchema) -> dict[str, np.ndarray]:
    frame = pd.read_parquet(path)
    missing = [c for c in (schema.key_field, schema.time_field, *schema.features) if c not in frame]
    if missing:
        raise SeqstreamError(f"{path}: missing column(s) {missing}; it has {list(frame.columns)}")
    frame = frame.sort_values([schema.key_field, schema.time_field], kind="stable")
    return {
        str(key): rows[list(schema.features)].to_numpy(np.float32)
        for key, rows in frame.groupby(schema.key_field, sort=True)
    }


def load_series(
    paths: Iterable[str | Path],
    schema: EventSchema,
    *,
    time_column: str = "timestamp",
    key_column: str | None = None,
) -> dict[str, np.ndarray]:
    """Per key, the feature rows in time order, from CSV files (one key each, or many with
    ``key_column``; folders searched) or Parquet event tables (columns: the schema's key, time
    and feature fields)."""
    series: dict[str, np.ndarray] = {}
    for path in map(Path, paths):
        if _is_parquet(path):
            series.update(_read_parquet_events(path, schema))
            continue
        for csv_file in expand_csv_paths([path]):
            for events in read_csv_events(
                csv_file, schema, time_column=time_column, key_column=key_column
            ):
                if events:
                    series[events[0].key] = np.asarray([e.features for e in events], np.float32)
    return series
