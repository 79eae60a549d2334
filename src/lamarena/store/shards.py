"""Votes spread over a folder of shards, read in one process or on a Dask cluster, then merged.

A folder of vote shards holds JSONL or Parquet battle files (``*.jsonl`` or ``*.parquet``; names
starting with a dot, a writer's temporary files, are skipped). Its votes are those of one file
holding every shard's records, shards in sorted name order: :func:`read_vote_shards` reads each
shard with :func:`~lamarena.store.columnar.read_vote_columns` and merges the columns, model,
session and participant codes renumbered in the global order of first appearance, so the merge
equals the columns of that one file (and a seeded bootstrap the same rounds);
:func:`read_shard_frame` reads each shard's records into the analysis DataFrame and concatenates
them.

With a ``scheduler`` address (``tcp://host:8786``) every shard is read and checked as a task on
that Dask cluster, the same engine as the static runner's ``--scheduler``: the workers read the
shard files themselves, so the folder must be on storage they share with this process (one
machine, or a network file system). Only plain data crosses the wire: the path and format to
the workers, NumPy and Arrow arrays, tuples of names or a DataFrame back.

Each shard is validated by the record loader's rules; a bad shard raises that shard's own error
(its message names the shard's path), the first bad shard in name order. Across shards, as the
record loader does within a file, a battle id may be used once and every battle of a session
must name the same participant: the first record that breaks either raises a one-line
:class:`~lamarena.errors.RecordError` naming its shard and record and the shard and record it
clashes with.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from lamarena.codes import first_appearance
from lamarena.errors import ConfigError, InvalidInputError, RecordError
from lamarena.store.columnar import VoteColumns, read_vote_columns
from lamarena.store.importers import jsonl_lines, read_battle_records
from lamarena.store.records import describe_session_owner, records_to_frame

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "SHARD_FORMATS",
    "merge_vote_columns",
    "read_shard_frame",
    "read_vote_shards",
    "shard_paths",
]

logger = logging.getLogger(__name__)

SHARD_FORMATS = ("jsonl", "parquet")
"""The formats a folder of shards may hold."""

CONNECT_TIMEOUT_S = 30.0
"""How long to wait for the Dask scheduler to answer."""


# --- the folder -------------------------------------------------------------------------------


def shard_paths(folder: str | Path, fmt: str) -> list[Path]:
    """The shard files of ``folder`` (``*.<fmt>``, no dot-files), in sorted name order.

    Raises:
        InvalidInputError: ``fmt`` is not jsonl or parquet, the folder is missing or not a
            folder, or it holds no such file.
    """
    if fmt not in SHARD_FORMATS:
        raise InvalidInputError(
            f"a folder of vote shards holds jsonl or parquet files, not {fmt}: give --from jsonl "
            f"or --from parquet, or name one {fmt} file"
        )
    folder = Path(folder)
    if not folder.exists():
        raise InvalidInputError(f"{folder}: no such folder of vote shards")
    if not folder.is_dir():
        raise InvalidInputError(f"{folder}: not a folder (name a folder of *.{fmt} shards)")
    paths = sorted(
        (
            path
            for path in folder.iterdir()
            if path.suffix == f".{fmt}" and not path.name.startswith(".") and path.is_file()
        ),
        key=lambda path: path.name,
    )
    if not paths:
        others = sorted({path.suffix for path in folder.iterdir() if path.suffix})
        found = f" (it holds {', '.join(others)} files)" if others else ""
        raise InvalidInputError(
            f"{folder}: no *.{fmt} shard in this folder{found}; write the votes there as one or "
            f"more .{fmt} files, or give --from for the shards it holds"
        )
    return [path.absolute() for path in paths]


# --- the per-shard tasks (what runs on a worker) ----------------------------------------------


def _columns_task(path: str, fmt: str) -> dict[str, Any]:
    """Read one shard as vote columns, as plain data (a worker's task)."""
    columns = read_vote_columns(path, fmt)
    return {field.name: getattr(columns, field.name) for field in fields(columns)}


def _frame_task(path: str, fmt: str, feedback: bool) -> pd.DataFrame:
    """Read one shard's records into the analysis frame (a worker's task)."""
    records = read_battle_records(path, fmt)  # type: ignore[arg-type]
    frame = records_to_frame(records)
    if feedback:
        frame["feedback_text"] = [record.feedback_text for record in records]
    return frame


def _guarded(task: Callable[..., Any], *args: Any) -> dict[str, Any]:
    """Run ``task``; a refused input comes back as data (a custom exception may not unpickle)."""
    try:
        return {"result": task(*args)}
    except RecordError as exc:
        return {"record_error": (exc.source, exc.record, exc.field, exc.problem)}
    except InvalidInputError as exc:
        return {"input_error": str(exc)}


def _raise_failure(outcome: dict[str, Any]) -> Any:
    """The task's result, or its error raised again here."""
    if "record_error" in outcome:
        raise RecordError(*outcome["record_error"])
    if "input_error" in outcome:
        raise InvalidInputError(outcome["input_error"])
    return outcome["result"]


def _run_tasks(
    task: Callable[..., Any], paths: list[Path], args: tuple[Any, ...], scheduler: str | None
) -> list[Any]:
    """``task(path, *args)`` for every shard, here or on the cluster, in shard order.

    Raises:
        InvalidInputError: the error of the first shard (in name order) that failed.
        ConfigError: Dask is missing or the scheduler cannot be reached.
    """
    if scheduler is None:
        return [task(str(path), *args) for path in paths]
    outcomes = _on_cluster(scheduler, task, [str(path) for path in paths], args)
    return [_raise_failure(outcome) for outcome in outcomes]


def _on_cluster(
    scheduler: str, task: Callable[..., Any], paths: list[str], args: tuple[Any, ...]
) -> list[dict[str, Any]]:
    """Every ``_guarded(task, path, *args)`` as a Dask task; the outcomes in shard order."""
    try:
        from distributed import Client
    except ImportError as exc:  # pragma: no cover - the dask extra is a dev dependency
        raise ConfigError(
            "--scheduler needs Dask distributed: pip install 'lamarena[dask]'"
        ) from exc
    try:
        client = Client(  # type: ignore[no-untyped-call]
            scheduler, timeout=CONNECT_TIMEOUT_S, set_as_default=False
        )
    except (OSError, TimeoutError, ValueError) as exc:
        raise ConfigError(
            f"cannot reach the Dask scheduler at {scheduler} ({type(exc).__name__}: {exc}); "
            "start one (`dask scheduler` and `dask worker ADDRESS`) or run without --scheduler"
        ) from exc
    try:
        futures = [client.submit(_guarded, task, path, *args, pure=False) for path in paths]
        logger.info("%d vote shards submitted to %s", len(futures), scheduler)
        outcomes: list[dict[str, Any]] = client.gather(futures)  # type: ignore[no-untyped-call]
    finally:
        client.close()  # type: ignore[no-untyped-call]
    return outcomes


# --- vote columns -----------------------------------------------------------------------------


def read_vote_shards(
    folder: str | Path, fmt: str = "parquet", *, scheduler: str | None = None
) -> VoteColumns:
    """Read every shard of ``folder`` as vote columns and merge them (see the module docstring).

    Args:
        folder: the folder of shards.
        fmt: ``parquet`` (``*.parquet`` shards) or ``jsonl`` (``*.jsonl``).
        scheduler: a Dask scheduler address; each shard is then read and checked by a worker.

    Returns:
        The columns :func:`~lamarena.store.columnar.read_vote_columns` gives for one file of
        every shard's records in name order.

    Raises:
        InvalidInputError: no such folder or no shard in it; a bad shard (its own error); a
            battle id reused or a session's participant changed across shards (RecordError).
        ConfigError: the scheduler cannot be reached.
    """
    paths = shard_paths(folder, fmt)
    wires = _run_tasks(_columns_task, paths, (fmt,), scheduler)
    parts = [VoteColumns(**wire) for wire in wires]
    return merge_vote_columns(paths, fmt, parts)


def merge_vote_columns(
    paths: Sequence[Path], fmt: str, parts: Sequence[VoteColumns]
) -> VoteColumns:
    """Merge the columns of the shards at ``paths`` (in that order), checked across shards.

    Raises:
        RecordError: a battle id is used by two shards, or a session's battles name different
            participants in two shards (the first such record, as one file would).
    """
    merged = _merge_keys([_ShardKeys.of_columns(part) for part in parts])
    _check_across(paths, fmt, merged)
    models, model_a, model_b = _merge_models(parts)

    def joined(name: str, dtype: Any) -> NDArray[Any]:
        values = [getattr(part, name) for part in parts]
        return np.concatenate(values).astype(dtype) if values else np.zeros(0, dtype)

    return VoteColumns(
        models=models,
        model_a=model_a,
        model_b=model_b,
        outcome=joined("outcome", np.int8),
        counted=joined("counted", bool),
        participant=merged.participant,
        session=merged.session,
        probability=joined("probability", np.float64),
        mode=joined("mode", np.int8),
        n_turns=joined("n_turns", np.int64),
        participants=merged.participants,
        sessions=merged.sessions,
        battle_ids=merged.battle_ids,
        fast=all(part.fast for part in parts),
    )


def _merge_models(
    parts: Sequence[VoteColumns],
) -> tuple[tuple[str, ...], NDArray[np.intp], NDArray[np.intp]]:
    """Model names and codes as one file numbers them: every ``model_a``, then every ``model_b``."""
    provisional: dict[str, int] = {}
    model_a, model_b = [], []
    for part in parts:
        lookup = _lookup(part.models, provisional)
        model_a.append(lookup[part.model_a])
        model_b.append(lookup[part.model_b])
    if not parts:
        return (), np.zeros(0, np.intp), np.zeros(0, np.intp)
    codes, old = first_appearance(np.concatenate([*model_a, *model_b]).astype(np.intp))
    names = tuple(provisional)
    n = sum(len(part) for part in parts)
    return tuple(names[code] for code in old.tolist()), codes[:n], codes[n:]


# --- the analysis frame -----------------------------------------------------------------------


def read_shard_frame(
    folder: str | Path,
    fmt: str = "parquet",
    *,
    scheduler: str | None = None,
    feedback: bool = False,
) -> pd.DataFrame:
    """Every shard's records as one analysis frame (``records_to_frame``), shards in name order.

    Every record gives a row, counted or not, as for one file. With ``scheduler``, each shard's
    records are read, validated and turned into frame rows by a worker; this process checks the
    shards against each other and concatenates.

    Args:
        folder: the folder of shards.
        fmt: ``parquet`` or ``jsonl``.
        scheduler: a Dask scheduler address.
        feedback: also a ``feedback_text`` column (the vote's reason).

    Raises:
        InvalidInputError: as :func:`read_vote_shards`.
        ConfigError: the scheduler cannot be reached.
    """
    import pandas as pd

    paths = shard_paths(folder, fmt)
    frames = _run_tasks(_frame_task, paths, (fmt, feedback), scheduler)
    _check_across(paths, fmt, _merge_keys([_ShardKeys.of_frame(frame) for frame in frames]))
    merged: pd.DataFrame = pd.concat(frames, ignore_index=True)
    return merged


# --- checks across shards ---------------------------------------------------------------------


@dataclass(frozen=True)
class _ShardKeys:
    """What the checks across shards need of one shard: ids, sessions and participants."""

    battle_ids: pa.ChunkedArray
    session: NDArray[np.intp]
    sessions: tuple[str, ...]
    participant: NDArray[np.intp]
    participants: tuple[str, ...]

    @classmethod
    def of_columns(cls, columns: VoteColumns) -> _ShardKeys:
        return cls(
            columns.battle_ids,
            columns.session,
            columns.sessions,
            columns.participant,
            columns.participants,
        )

    @classmethod
    def of_frame(cls, frame: pd.DataFrame) -> _ShardKeys:
        import pandas as pd

        session, sessions = pd.factorize(frame["session_id"], use_na_sentinel=True)
        participant, participants = pd.factorize(frame["participant_id"], use_na_sentinel=True)
        ids = frame["battle_id"].astype(object).tolist()
        return cls(
            pa.chunked_array([pa.array(ids, type=pa.string())]),
            np.asarray(session, dtype=np.intp),
            tuple(str(value) for value in sessions),
            np.asarray(participant, dtype=np.intp),
            tuple(str(value) for value in participants),
        )


@dataclass(frozen=True)
class _Merged:
    """The shards' keys in one numbering (codes in the global order of first appearance)."""

    n: int
    offsets: NDArray[np.int64]
    battle_ids: pa.ChunkedArray
    session: NDArray[np.intp]
    sessions: tuple[str, ...]
    participant: NDArray[np.intp]
    participants: tuple[str, ...]


def _lookup(names: Sequence[str], index: dict[str, int]) -> NDArray[np.intp]:
    """Global codes of a shard's names (new ones appended in order), with -1 kept as -1."""
    codes = [index.setdefault(name, len(index)) for name in names]
    return np.array([*codes, -1], dtype=np.intp)


def _merge_keys(keys: Sequence[_ShardKeys]) -> _Merged:
    session_index: dict[str, int] = {}
    participant_index: dict[str, int] = {}
    sessions, participants = [], []
    for part in keys:
        sessions.append(_lookup(part.sessions, session_index)[part.session])
        participants.append(_lookup(part.participants, participant_index)[part.participant])
    sizes = np.array([part.session.size for part in keys], dtype=np.int64)
    return _Merged(
        n=int(sizes.sum()),
        offsets=np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64),
        battle_ids=_concat_ids([part.battle_ids for part in keys]),
        session=np.concatenate(sessions) if keys else np.zeros(0, np.intp),
        sessions=tuple(session_index),
        participant=np.concatenate(participants) if keys else np.zeros(0, np.intp),
        participants=tuple(participant_index),
    )


def _concat_ids(columns: list[pa.ChunkedArray]) -> pa.ChunkedArray:
    """The shards' battle ids as one column (large strings if the shards' types differ)."""
    types = {column.type for column in columns}
    kind = types.pop() if len(types) == 1 else pa.large_string()
    chunks = [chunk.cast(kind) for column in columns for chunk in column.chunks]
    return pa.chunked_array(chunks, type=kind)


def _check_across(paths: Sequence[Path], fmt: str, merged: _Merged) -> None:
    """Raise the record loader's error for the first record that clashes with another shard."""
    reused = _first_reused_id(merged.battle_ids)
    moved = _first_moved_session(merged)
    if reused is None and moved is None:
        return
    if reused is not None and (moved is None or reused[0] <= moved[0]):
        row, first = reused
        battle_id = merged.battle_ids[row].as_py()
        source, label = _where(paths, fmt, merged.offsets, row)
        raise RecordError(
            source,
            label,
            "battle_id",
            f"battle id {battle_id!r} is already used by record "
            f"{_other(paths, fmt, merged.offsets, first, source)}",
        )
    assert moved is not None
    row, first = moved
    source, label = _where(paths, fmt, merged.offsets, row)
    session_id = merged.sessions[merged.session[row]]
    raise RecordError(
        source,
        label,
        "participant_id",
        f"is {_shown(merged, row)}, but "
        f"{describe_session_owner(session_id, _participant(merged, first))} "
        f"(record {_other(paths, fmt, merged.offsets, first, source)}); "
        "every battle of a session needs the same participant_id",
    )


def _first_reused_id(ids: pa.ChunkedArray) -> tuple[int, int] | None:
    """``(row, first)``: the first row whose battle id an earlier row has, and that row."""
    if len(ids) == 0 or pc.count_distinct(ids).as_py() == len(ids):
        return None
    distinct = pc.unique(ids)
    codes = np.asarray(pc.index_in(ids, value_set=distinct).to_numpy(), dtype=np.int64)
    return _first_repeat(codes)


def _first_repeat(codes: NDArray[np.int64]) -> tuple[int, int] | None:
    """For codes in order of first appearance: the first repeated row and its first row."""
    best = np.maximum.accumulate(codes)
    repeated = np.flatnonzero(codes[1:] <= best[:-1]) + 1
    if repeated.size == 0:
        return None
    row = int(repeated[0])
    first = int(np.flatnonzero(codes == codes[row])[0])
    return row, first


def _first_moved_session(merged: _Merged) -> tuple[int, int] | None:
    """``(row, first)``: the first battle naming another participant than its session's first."""
    known = merged.session >= 0
    if not known.any():
        return None
    codes, first_rows = np.unique(merged.session[known], return_index=True)
    owner_row = np.zeros(len(merged.sessions), dtype=np.intp)  # each session's first row
    owner_row[codes] = np.flatnonzero(known)[first_rows]
    session = np.where(known, merged.session, 0)
    moved = known & (merged.participant != merged.participant[owner_row[session]])
    if not moved.any():
        return None
    row = int(np.flatnonzero(moved)[0])
    return row, int(owner_row[merged.session[row]])


def _participant(merged: _Merged, row: int) -> str | None:
    code = int(merged.participant[row])
    return None if code < 0 else merged.participants[code]


def _shown(merged: _Merged, row: int) -> str:
    participant = _participant(merged, row)
    return "null" if participant is None else repr(participant)


def _where(
    paths: Sequence[Path], fmt: str, offsets: NDArray[np.int64], row: int
) -> tuple[str, str]:
    """The shard file and the record label (line or position) of merged row ``row``."""
    shard = int(np.searchsorted(offsets, row, side="right")) - 1
    local = row - int(offsets[shard])
    path = paths[shard]
    if fmt == "parquet":
        return str(path), str(local + 1)
    for index, (line_number, _) in enumerate(jsonl_lines(path)):
        if index == local:
            return str(path), str(line_number)
    return str(path), str(local + 1)  # pragma: no cover - the shard changed since it was read


def _other(
    paths: Sequence[Path], fmt: str, offsets: NDArray[np.int64], row: int, source: str
) -> str:
    """How an error names another record: ``3`` in the same shard, ``3 of PATH`` elsewhere."""
    where, label = _where(paths, fmt, offsets, row)
    return label if where == source else f"{label} of {where}"
