"""Columnar loading of vote files: a million battles read and checked in seconds.

:func:`read_vote_columns` reads a JSONL or Parquet battle file with Apache Arrow (``pyarrow``,
already the Parquet engine of the exports: its JSON reader parses in C++ on every core, and it
keeps strings in buffers rather than one Python object each) and returns the columns a
leaderboard needs as integer codes (:class:`VoteColumns`). Arrow was chosen over DuckDB and
Polars because it adds no dependency and its dictionary encoding gives model, session and
participant codes in order of first appearance, which keeps seeded bootstraps equal to the record
loader's.

Validation is the record loader's (:func:`~lamarena.store.importers.read_battle_records`),
exactly: every constraint of :class:`~lamarena.store.records.BattleRecord` is checked on whole
columns as a *sufficient* condition (a row that passes is certainly valid). A row that does not
pass, or that Arrow cannot tell apart from an invalid one (a ``null`` where leaving the key out
would be valid), is validated again by the record model from its own line or row, in file
order, so the first invalid record raises the record loader's own one-line error. A file Arrow
cannot read as expected (bad JSON, mixed types, a key repeated, an unknown field, reused battle
ids, a session with two participants) is read by the record loader instead, which raises its
exact error, or, for a valid file in a shape the fast path does not know, reads it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj
import pyarrow.parquet as pq
from numpy.typing import NDArray

from lamarena.codes import first_appearance
from lamarena.store.importers import (
    jsonl_lines,
    jsonl_record,
    parquet_record,
    read_battle_records,
)
from lamarena.store.records import (
    FLAGS_MAX_LENGTH,
    MAX_TURNS,
    TURN_FIELDS,
    BattleRecord,
    Winner,
)
from lamarena.store.tables import ID_LENGTH, INTEGER_MAX, MODEL_NAME_LENGTH
from lamarena.threads import CPU_THREADS

__all__ = [
    "VoteColumns",
    "battle_id_column",
    "codes_of",
    "read_vote_columns",
    "vote_columns_from_records",
]

logger = logging.getLogger(__name__)

_JSON_BLOCK = 4 << 20
"""Bytes Arrow's JSON reader parses per block: a million-vote file (1.1 GB) reads in 2.3 s,
against 2.5-2.9 s with Arrow's default of 1 MB (measured on two cores)."""
_PART_ROWS = 250_000
"""Rows checked at once by one thread (see ``_suspect_in_parts``)."""

WINNERS = tuple(member.value for member in Winner)
MODES = ("text", "speech")

# Every character Python's str.strip() removes (str.isspace), as a regular-expression class.
_PY_SPACE = (
    "\\t\\n\\x0b\\x0c\\r\\x1c\\x1d\\x1e\\x1f \\x{85}\\x{a0}\\x{1680}\\x{2000}-\\x{200a}"
    "\\x{2028}\\x{2029}\\x{202f}\\x{205f}\\x{3000}"
)
_EDGE_SPACE = f"^[{_PY_SPACE}]|[{_PY_SPACE}]$"
_CREATED_AT = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]([01]\d|2[0-3]):[0-5]\d)$"
_SHA256 = r"^[0-9a-f]{64}$"
_FLAG = r"^[a-z][a-z0-9_]{0,39}$"

_TEXT = (
    "query_transcript",
    "reply_a",
    "reply_b",
    "error_a",
    "error_b",
    "notice_a",
    "notice_b",
    "feedback_text",
)
_LATENCY_SECONDS = ("ttft_s", "total_s", "ttfab_s", "audio_s")
_FIELDS = set(BattleRecord.model_fields) | {"n_turns"}
_TURN_KEYS = set(TURN_FIELDS)
_LATENCY_KEYS = {*_LATENCY_SECONDS, "chars"}


class _Unreadable(Exception):
    """The fast path cannot read this file; the record loader must."""


@dataclass(frozen=True, eq=False)
class VoteColumns:
    """The votes of a file (or of the store) as the columns a leaderboard needs.

    Attributes:
        models: the model names ``model_a`` and ``model_b`` index (in no particular order).
        model_a: ``(n,)`` index into ``models``.
        model_b: ``(n,)`` index into ``models``.
        outcome: ``(n,)`` 0 model_a won, 1 model_b won, 2 tie, 3 both bad.
        counted: ``(n,)`` whether the vote counts.
        participant: ``(n,)`` participant code in order of first appearance (-1: none).
        session: ``(n,)`` session code in order of first appearance (-1: none).
        probability: ``(n,)`` sampling probability (NaN: not recorded).
        mode: ``(n,)`` 0 text, 1 speech.
        n_turns: ``(n,)`` turns before the vote.
        participants: the participant ids ``participant`` codes index, in code order.
        sessions: the session ids ``session`` codes index, in code order.
        battle_ids: ``(n,)`` the battle ids, as Arrow strings (no Python object per vote).
        fast: whether the columns came from the columnar path (False: the record loader's).
    """

    models: tuple[str, ...]
    model_a: NDArray[np.intp]
    model_b: NDArray[np.intp]
    outcome: NDArray[np.int8]
    counted: NDArray[np.bool_]
    participant: NDArray[np.intp]
    session: NDArray[np.intp]
    probability: NDArray[np.float64]
    mode: NDArray[np.int8]
    n_turns: NDArray[np.int64]
    participants: tuple[str, ...]
    sessions: tuple[str, ...]
    battle_ids: pa.ChunkedArray
    fast: bool = True

    def __len__(self) -> int:
        return int(self.model_a.size)

    def take(self, mask: NDArray[np.bool_]) -> VoteColumns:
        """The battles where ``mask`` holds (session and participant codes renumbered)."""
        participant, old_participants = _renumber(self.participant[mask])
        session, old_sessions = _renumber(self.session[mask])
        return VoteColumns(
            models=self.models,
            model_a=self.model_a[mask],
            model_b=self.model_b[mask],
            outcome=self.outcome[mask],
            counted=self.counted[mask],
            participant=participant,
            session=session,
            probability=self.probability[mask],
            mode=self.mode[mask],
            n_turns=self.n_turns[mask],
            participants=tuple(self.participants[code] for code in old_participants),
            sessions=tuple(self.sessions[code] for code in old_sessions),
            battle_ids=self.battle_ids.filter(pa.array(np.asarray(mask, dtype=bool))),
            fast=self.fast,
        )


def _renumber(codes: NDArray[np.intp]) -> tuple[NDArray[np.intp], list[int]]:
    new, old = first_appearance(codes)
    return new, old.tolist()


def read_vote_columns(path: str | Path, fmt: str) -> VoteColumns:
    """Read and validate a battle file into :class:`VoteColumns` (see the module docstring).

    Args:
        path: the file.
        fmt: ``jsonl`` or ``parquet`` (columnar); ``talk-arena`` and ``fastchat`` files are read
            by the record loader and then encoded.

    Raises:
        InvalidInputError: exactly what :func:`~lamarena.store.importers.read_battle_records`
            raises for the same file (the same one-line messages).
    """
    path = Path(path)
    if fmt not in ("jsonl", "parquet"):
        return vote_columns_from_records(read_battle_records(path, fmt))  # type: ignore[arg-type]
    try:
        table = _read_table(path, fmt)
        _check_schema(table)
    except _Unreadable as exc:
        logger.info("%s: read record by record (%s)", path, exc)
        return vote_columns_from_records(read_battle_records(path, fmt))  # type: ignore[arg-type]
    suspect = _suspect_in_parts(table)
    if suspect.any():
        _validate_rows(path, fmt, np.flatnonzero(suspect))
    if _has_duplicates(table):
        # the record loader names the first reused id or disagreeing session exactly
        return vote_columns_from_records(read_battle_records(path, fmt))  # type: ignore[arg-type]
    return _encode(table)


def _read_table(path: Path, fmt: str) -> pa.Table:
    if fmt == "parquet":
        if not path.is_file():
            raise _Unreadable("not a file")
        try:
            return pq.read_table(path)
        except (pa.ArrowException, OSError) as exc:
            raise _Unreadable(str(exc)) from exc
    try:
        table = pj.read_json(
            path,
            read_options=pj.ReadOptions(block_size=_JSON_BLOCK),
            parse_options=pj.ParseOptions(explicit_schema=pa.schema([("created_at", pa.string())])),
        )
        table.validate(full=True)  # UTF-8 of every string
    except (pa.ArrowException, OSError) as exc:
        raise _Unreadable(str(exc)) from exc
    return table


def _check_schema(table: pa.Table) -> None:
    """Refuse a file whose columns the fast path does not know (some record is then invalid)."""
    for name in table.column_names:
        if name not in _FIELDS:
            raise _Unreadable(f"unknown field {name!r}")
    for name in ("latency_a", "latency_b"):
        if name in table.column_names:
            _check_latency_type(table.schema.field(name).type)
    if "turns" in table.column_names:
        kind = table.schema.field("turns").type
        if pa.types.is_null(kind):
            return
        if not pa.types.is_list(kind) and not pa.types.is_large_list(kind):
            raise _Unreadable("turns is not a list")
        item = kind.value_type
        if pa.types.is_null(item):
            return
        if not pa.types.is_struct(item):
            raise _Unreadable("turns are not objects")
        for index in range(item.num_fields):
            field = item.field(index)
            if field.name not in _TURN_KEYS:
                raise _Unreadable(f"unknown turn field {field.name!r}")
            if field.name.startswith("latency_"):
                _check_latency_type(field.type)


def _check_latency_type(kind: pa.DataType) -> None:
    if pa.types.is_null(kind):
        return
    if not pa.types.is_struct(kind):
        raise _Unreadable("a latency is not an object")
    for index in range(kind.num_fields):
        field = kind.field(index)
        if field.name not in _LATENCY_KEYS:
            raise _Unreadable(f"unknown latency field {field.name!r}")


# --- sufficient conditions, one column at a time --------------------------------------------


def _bad(values: Any) -> NDArray[np.bool_]:
    """A boolean Arrow result as a NumPy mask where null counts as bad (not proven valid)."""
    if isinstance(values, np.ndarray):
        return values.astype(bool)
    filled = pc.fill_null(values, True)
    return np.asarray(filled.to_numpy(zero_copy_only=False), dtype=bool)


def _string_bad(column: pa.ChunkedArray, *, required: bool, lo: int, hi: int | None) -> Any:
    """Where a string column is not certainly a valid value (None allowed unless required)."""
    if pa.types.is_null(column.type):
        return pa.chunked_array([pa.array(np.full(len(column), required))])
    if not pa.types.is_string(column.type) and not pa.types.is_large_string(column.type):
        return pa.chunked_array([pa.array(np.ones(len(column), dtype=bool))])
    length = pc.utf8_length(column)
    bad = pc.or_(pc.less(length, lo), pc.match_substring(column, "\x00"))
    if hi is not None:
        bad = pc.or_(bad, pc.greater(length, hi))
    null = pc.is_null(column)
    return pc.if_else(null, required, bad)


def _column(table: pa.Table, name: str) -> pa.ChunkedArray | None:
    return table.column(name) if name in table.column_names else None


def _suspect_in_parts(table: pa.Table) -> NDArray[np.bool_]:
    """:func:`_suspect_rows` on slices of :data:`_PART_ROWS` rows at once, on every core.

    Every check looks at one row at a time, so the slices' masks joined are the whole table's;
    Arrow's kernels release the GIL, so the slices run side by side in threads.
    """
    n = table.num_rows
    if n <= _PART_ROWS or CPU_THREADS == 1:
        return _suspect_rows(table)
    starts = range(0, n, _PART_ROWS)
    with ThreadPoolExecutor(max_workers=CPU_THREADS) as pool:
        parts = list(pool.map(lambda start: _suspect_rows(table.slice(start, _PART_ROWS)), starts))
    return np.concatenate(parts)


def _suspect_rows(table: pa.Table) -> NDArray[np.bool_]:
    """Rows not proven valid by the column checks (see the module docstring).

    JSONL and Parquet share every check: a null that JSONL cannot tell from a missing key is
    suspect wherever leaving the key out would be valid.
    """
    n = table.num_rows
    suspect = np.zeros(n, dtype=bool)

    def mark(bad: Any) -> None:
        nonlocal suspect
        suspect |= _bad(bad)

    def absent_or(name: str, check: Any) -> None:
        column = _column(table, name)
        if column is not None:
            mark(check(column))

    for name, required, hi in (
        ("battle_id", True, ID_LENGTH),
        ("session_id", False, ID_LENGTH),
        ("participant_id", False, ID_LENGTH),
        ("model_a", True, MODEL_NAME_LENGTH),
        ("model_b", True, MODEL_NAME_LENGTH),
    ):
        column = _column(table, name)
        if column is None:
            if required:
                suspect[:] = True
            continue
        mark(_string_bad(column, required=required, lo=1, hi=hi))
        if pa.types.is_string(column.type):
            mark(pc.fill_null(pc.match_substring_regex(column, _EDGE_SPACE), False))
    if suspect.all():
        return suspect
    model_a, model_b = table.column("model_a"), table.column("model_b")
    if pa.types.is_string(model_a.type) and pa.types.is_string(model_b.type):
        mark(pc.equal(model_a, model_b))
    session, participant = _column(table, "session_id"), _column(table, "participant_id")
    if participant is not None and not pa.types.is_null(participant.type):
        no_session = (
            pc.is_null(session) if session is not None else pa.array(np.ones(n, dtype=bool))
        )
        mark(pc.and_(pc.is_valid(participant), no_session))
    winner = _column(table, "winner")
    if winner is None or not pa.types.is_string(winner.type):
        suspect[:] = True
    else:
        mark(pc.invert(pc.is_in(winner, value_set=pa.array(WINNERS))))
    mark(_created_at_bad(table))
    absent_or("query_audio_sha256", lambda c: _string_bad(c, required=False, lo=0, hi=ID_LENGTH))
    for name in ("reply_audio_a_sha256", "reply_audio_b_sha256"):
        absent_or(name, _sha256_bad)
    for name in _TEXT:
        absent_or(name, lambda c: _string_bad(c, required=False, lo=0, hi=None))
    for name in ("latency_a", "latency_b"):
        absent_or(name, _latency_bad)
    for name in ("audio_kept", "counted", "equal_pace"):
        absent_or(name, _bool_bad)
    kept = _column(table, "audio_kept")
    if kept is not None and pa.types.is_boolean(kept.type):
        no_session = pc.is_null(session) if session is not None else pa.array(np.ones(n, bool))
        mark(pc.and_(pc.fill_null(kept, False), no_session))
    source = _column(table, "source")
    if source is not None:
        mark(_string_bad(source, required=True, lo=1, hi=32))
    absent_or("flags", _flags_bad)
    absent_or("sampling_probability", _probability_bad)
    absent_or("mode", lambda c: _in_bad(c, MODES))
    mark(_turns_bad(table))
    return suspect


def _created_at_bad(table: pa.Table) -> Any:
    column = _column(table, "created_at")
    n = table.num_rows
    if column is None:
        return pa.array(np.ones(n, dtype=bool))
    if pa.types.is_timestamp(column.type):
        if column.type.tz is None:  # a naive time is not aware: the record says so
            return pa.array(np.ones(n, dtype=bool))
        return pc.is_null(column)
    if not pa.types.is_string(column.type):
        return pa.array(np.ones(n, dtype=bool))
    matched = pc.fill_null(pc.match_substring_regex(column, _CREATED_AT), False)
    shaped = np.asarray(matched.to_numpy(zero_copy_only=False), dtype=bool)
    # the calendar, checked on the digits (YYYY-MM-DDTHH:MM:SS); a row not shaped gets 2000-01-01
    text = pc.if_else(pa.array(shaped), column.combine_chunks(), "2000-01-01T00:00:00")

    def part(start: int, stop: int) -> NDArray[np.int64]:
        digits = pc.utf8_slice_codeunits(text, start, stop)
        return np.asarray(pc.cast(digits, pa.int64()).to_numpy(zero_copy_only=False), np.int64)

    year, month, day = part(0, 4), part(5, 7), part(8, 10)
    hour, minute, second = part(11, 13), part(14, 16), part(17, 19)
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    month_days = np.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])
    days = np.where((month == 2) & leap, 29, month_days[np.clip(month, 1, 12) - 1])
    valid = (
        shaped
        & (month >= 1)
        & (month <= 12)
        & (day >= 1)
        & (day <= days)
        & (hour <= 23)
        & (minute <= 59)
        & (second <= 59)
        # years 1 and 9999 may leave the range once converted to UTC: the record decides
        & (year > 1)
        & (year < 9999)
    )
    return ~valid


def _sha256_bad(column: pa.ChunkedArray) -> Any:
    if pa.types.is_null(column.type):
        return pa.array(np.zeros(len(column), dtype=bool))
    if not pa.types.is_string(column.type):
        return pa.array(np.ones(len(column), dtype=bool))
    return pc.if_else(
        pc.is_null(column), False, pc.invert(pc.match_substring_regex(column, _SHA256))
    )


def _number_bad(values: Any, *, integer: bool) -> Any:
    """Where a (nullable) number is not certainly valid seconds (or, ``integer``, a count)."""
    kind = values.type
    if pa.types.is_null(kind):
        return pa.array(np.zeros(len(values), dtype=bool))
    if integer:
        if not pa.types.is_integer(kind):
            return pc.is_valid(values)
        bad = pc.or_(pc.less(values, 0), pc.greater(values, INTEGER_MAX))
    else:
        if not (pa.types.is_floating(kind) or pa.types.is_integer(kind)):
            return pc.is_valid(values)
        as_float = pc.cast(values, pa.float64())
        bad = pc.or_(pc.invert(pc.is_finite(as_float)), pc.less(as_float, 0.0))
    return pc.fill_null(bad, False)


def _latency_bad(column: pa.ChunkedArray) -> Any:
    if pa.types.is_null(column.type):
        return pa.array(np.zeros(len(column), dtype=bool))
    bad = pa.array(np.zeros(len(column), dtype=bool))
    for name in _LATENCY_KEYS:
        if column.type.get_field_index(name) < 0:
            continue
        values = pc.struct_field(column, name)
        bad = pc.or_(bad, _number_bad(values, integer=name == "chars"))
    return bad


def _bool_bad(column: pa.ChunkedArray) -> Any:
    if not pa.types.is_boolean(column.type):
        return pa.array(np.ones(len(column), dtype=bool))
    return pc.is_null(column)  # null: invalid, or (JSONL) a missing key; the record tells


def _in_bad(column: pa.ChunkedArray, allowed: tuple[str, ...]) -> Any:
    if not pa.types.is_string(column.type):
        return pa.array(np.ones(len(column), dtype=bool))
    return pc.fill_null(pc.invert(pc.is_in(column, value_set=pa.array(allowed))), True)


def _probability_bad(column: pa.ChunkedArray) -> Any:
    kind = column.type
    if pa.types.is_null(kind):
        return pa.array(np.zeros(len(column), dtype=bool))
    if not (pa.types.is_floating(kind) or pa.types.is_integer(kind)):
        return pa.array(np.ones(len(column), dtype=bool))
    values = pc.cast(column, pa.float64())
    good = pc.and_(
        pc.and_(pc.is_finite(values), pc.greater(values, 0.0)), pc.less_equal(values, 1.0)
    )
    return pc.if_else(pc.is_null(values), False, pc.invert(good))


def _flags_bad(column: pa.ChunkedArray) -> NDArray[np.bool_]:
    n = len(column)
    kind = column.type
    if not pa.types.is_list(kind):
        return np.ones(n, dtype=bool)
    bad = _bad(pc.is_null(column))
    if pa.types.is_null(kind.value_type):
        return bad | (_bad(pc.greater(pc.list_value_length(column), 0)) & ~bad)
    if not pa.types.is_string(kind.value_type):
        return np.ones(n, dtype=bool)
    combined = column.combine_chunks()
    flat = pc.list_flatten(combined)
    parent = pc.list_parent_indices(combined).to_numpy(zero_copy_only=False)
    wrong = ~np.asarray(
        pc.fill_null(pc.match_substring_regex(flat, _FLAG), False).to_numpy(zero_copy_only=False),
        dtype=bool,
    )
    bad[parent[wrong]] = True
    length = np.asarray(pc.utf8_length(flat).to_numpy(zero_copy_only=False), dtype=np.int64)
    joined = np.bincount(parent, weights=length + 1, minlength=n) - 1  # an upper bound
    bad |= joined > FLAGS_MAX_LENGTH
    return bad


def _turns_bad(table: pa.Table) -> NDArray[np.bool_]:
    """Turns proven valid: none given, or one turn that agrees with the top-level fields."""
    n = table.num_rows
    turns = _column(table, "turns")
    n_turns = _column(table, "n_turns")
    given = np.ones(n, dtype=np.int64)
    bad = np.zeros(n, dtype=bool)
    if turns is not None and not pa.types.is_null(turns.type):
        combined = turns.combine_chunks()
        bad |= _bad(pc.is_null(combined))  # null: invalid, or (JSONL) a missing key
        length = np.asarray(
            pc.fill_null(pc.list_value_length(combined), 0).to_numpy(zero_copy_only=False),
            dtype=np.int64,
        )
        bad |= length > 1  # a conversation: the record checks every turn
        given = np.maximum(length, 1)
        item = combined.type.value_type
        single = np.flatnonzero(length == 1)
        if pa.types.is_struct(item) and single.size:
            offsets = np.asarray(combined.offsets.to_numpy(zero_copy_only=False), dtype=np.int64)
            first = combined.values.take(pa.array(offsets[single]))
            # only the first turn's fields are compared: take just those columns, and only
            # when some rows have no single turn (taking a million nested rows costs seconds)
            mine = table.select([name for name in TURN_FIELDS if name in table.column_names])
            if single.size != n:
                mine = mine.take(pa.array(single))
            bad[single] |= _turn_disagrees(mine, first)
    elif turns is not None:
        bad |= True  # turns: null in every record (a list is expected)
    if n_turns is not None and not pa.types.is_null(n_turns.type):
        if not pa.types.is_integer(n_turns.type):
            bad |= _bad(pc.is_valid(n_turns))
        else:
            values = n_turns.to_numpy(zero_copy_only=False)
            known = ~_bad(pc.is_null(n_turns))
            counts = np.where(known, np.nan_to_num(values.astype(np.float64)), given)
            bad |= known & (counts != given)
    bad |= given > MAX_TURNS
    return bad


def _turn_disagrees(table: pa.Table, first: pa.Array) -> NDArray[np.bool_]:
    """Where the first turn's field is set but differs from (or lacks) the top-level one."""
    n = table.num_rows
    bad = np.zeros(n, dtype=bool)
    kind = first.type
    for index in range(kind.num_fields):
        name = kind.field(index).name
        theirs = pc.struct_field(first, name)
        if pa.types.is_null(theirs.type):
            continue
        mine = _column(table, name)
        set_here = _bad(pc.is_valid(theirs))
        if mine is None or pa.types.is_null(mine.type):
            bad |= set_here
            continue
        mine_array = mine.combine_chunks()
        if pa.types.is_struct(theirs.type):
            same = _structs_equal(mine_array, theirs)
        elif theirs.type == mine_array.type:
            same = np.asarray(
                pc.fill_null(pc.equal(mine_array, theirs), False).to_numpy(zero_copy_only=False),
                dtype=bool,
            )
        else:
            same = np.zeros(n, dtype=bool)
        bad |= set_here & ~same
    return bad


def _structs_equal(mine: pa.Array, theirs: pa.Array) -> NDArray[np.bool_]:
    """Where two latency structs are both set and equal field by field (nulls equal)."""
    n = len(mine)
    if not pa.types.is_struct(mine.type):
        return np.zeros(n, dtype=bool)
    same = _bad(pc.is_valid(mine)) & _bad(pc.is_valid(theirs))
    names = {mine.type.field(i).name for i in range(mine.type.num_fields)} | {
        theirs.type.field(i).name for i in range(theirs.type.num_fields)
    }
    for name in names:
        left = pc.struct_field(mine, name) if mine.type.get_field_index(name) >= 0 else None
        right = pc.struct_field(theirs, name) if theirs.type.get_field_index(name) >= 0 else None
        left_np = _numbers(left, n)
        right_np = _numbers(right, n)
        both_nan = np.isnan(left_np) & np.isnan(right_np)
        same &= both_nan | (left_np == right_np)
    return same


def _numbers(values: pa.Array | None, n: int) -> NDArray[np.float64]:
    if values is None or pa.types.is_null(values.type):
        return np.full(n, np.nan)
    return np.asarray(
        pc.cast(values, pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64
    )


# --- the rows the columns could not prove valid ----------------------------------------------


def _validate_rows(path: Path, fmt: str, rows: NDArray[np.intp]) -> None:
    """Validate these rows with the record model, in file order; raise the first error."""
    if fmt == "parquet":
        table = pq.read_table(path)
        for row in rows:
            parquet_record(str(path), int(row) + 1, table.slice(int(row), 1).to_pylist()[0])
        return
    wanted = iter(rows.tolist())
    target = next(wanted, None)
    for index, (line_number, line) in enumerate(_record_lines(path)):
        if index == target:
            jsonl_record(str(path), line_number, line)
            target = next(wanted, None)
            if target is None:
                return


def _record_lines(path: Path) -> Iterator[tuple[int, str]]:
    """The JSONL record lines with their numbers, as the record loader splits them."""
    yield from jsonl_lines(path)


def _has_duplicates(table: pa.Table) -> bool:
    """Whether a battle id repeats or a session's battles name different participants."""
    ids = table.column("battle_id")
    if pc.count_distinct(ids).as_py() != len(ids):
        return True
    session, participant = _column(table, "session_id"), _column(table, "participant_id")
    if session is None or pa.types.is_null(session.type):
        return False
    pairs = pa.table(
        {
            "session": session,
            "participant": (
                participant
                if participant is not None and not pa.types.is_null(participant.type)
                else pa.nulls(len(session), pa.string())
            ),
        }
    ).filter(pc.is_valid(session))
    per_session = pairs.group_by("session").aggregate(
        [("participant", "count_distinct", pc.CountOptions(mode="all"))]
    )
    most = pc.max(per_session.column("participant_count_distinct")).as_py()
    return bool((most or 0) > 1)


# --- codes --------------------------------------------------------------------------------


def _codes(column: pa.ChunkedArray | None, n: int) -> tuple[NDArray[np.intp], tuple[str, ...]]:
    """Dictionary codes in order of first appearance (-1 for null), and the values they name."""
    if column is None or pa.types.is_null(column.type):
        return np.full(n, -1, dtype=np.intp), ()
    encoded = pc.dictionary_encode(column.combine_chunks())
    indices = encoded.indices.to_numpy(zero_copy_only=False)
    codes = np.asarray(np.nan_to_num(indices.astype(np.float64), nan=-1.0), dtype=np.intp)
    return codes, tuple(str(value) for value in encoded.dictionary.to_pylist())


def _encode(table: pa.Table) -> VoteColumns:
    n = table.num_rows
    both = pa.concat_arrays(
        [table.column("model_a").combine_chunks(), table.column("model_b").combine_chunks()]
    )
    encoded = pc.dictionary_encode(both)
    indices = encoded.indices.to_numpy(zero_copy_only=False).astype(np.intp)
    winner = pc.index_in(table.column("winner"), value_set=pa.array(WINNERS))
    counted = _column(table, "counted")
    probability = _column(table, "sampling_probability")
    mode = _column(table, "mode")
    n_turns = np.ones(n, dtype=np.int64)
    turns = _column(table, "turns")
    if turns is not None and not pa.types.is_null(turns.type):
        length = pc.fill_null(pc.list_value_length(turns), 0).to_numpy(zero_copy_only=False)
        n_turns = np.maximum(np.asarray(length, dtype=np.int64), 1)
    participant, participants = _codes(_column(table, "participant_id"), n)
    session, sessions = _codes(_column(table, "session_id"), n)
    return VoteColumns(
        models=tuple(str(name) for name in encoded.dictionary.to_pylist()),
        model_a=indices[:n],
        model_b=indices[n:],
        outcome=np.asarray(winner.to_numpy(zero_copy_only=False), dtype=np.int8),
        counted=(
            np.ones(n, dtype=bool)
            if counted is None
            # a null that passed the record model is a key left out: the default
            else np.asarray(pc.fill_null(counted, True).to_numpy(zero_copy_only=False), bool)
        ),
        participant=participant,
        session=session,
        probability=(
            np.full(n, np.nan)
            if probability is None or pa.types.is_null(probability.type)
            else np.asarray(
                pc.cast(probability, pa.float64()).to_numpy(zero_copy_only=False),
                dtype=np.float64,
            )
        ),
        mode=(
            np.zeros(n, dtype=np.int8)
            if mode is None
            else np.asarray(
                pc.fill_null(pc.index_in(mode, value_set=pa.array(MODES)), 0).to_numpy(
                    zero_copy_only=False
                ),
                dtype=np.int8,
            )
        ),
        n_turns=n_turns,
        participants=participants,
        sessions=sessions,
        battle_ids=table.column("battle_id"),
    )


def vote_columns_from_records(records: list[BattleRecord]) -> VoteColumns:
    """The :class:`VoteColumns` of validated records (the record loader's path)."""
    n = len(records)
    participant, participants = codes_of([record.participant_id for record in records])
    session, sessions = codes_of([record.session_id for record in records])
    names: dict[str, int] = {}
    model_a = [names.setdefault(record.model_a, len(names)) for record in records]
    model_b = [names.setdefault(record.model_b, len(names)) for record in records]
    return VoteColumns(
        models=tuple(names),
        model_a=np.array(model_a, dtype=np.intp),
        model_b=np.array(model_b, dtype=np.intp),
        outcome=np.array([WINNERS.index(record.winner.value) for record in records], np.int8),
        counted=np.array([record.counted for record in records], dtype=bool),
        participant=participant,
        session=session,
        probability=np.array(
            [
                np.nan if record.sampling_probability is None else record.sampling_probability
                for record in records
            ],
            dtype=np.float64,
        ).reshape(n),
        mode=np.array([MODES.index(record.mode) for record in records], dtype=np.int8),
        n_turns=np.array([record.n_turns for record in records], dtype=np.int64),
        participants=participants,
        sessions=sessions,
        battle_ids=battle_id_column([record.battle_id for record in records]),
        fast=False,
    )


def codes_of(values: Sequence[object]) -> tuple[NDArray[np.intp], tuple[str, ...]]:
    """Codes in order of first appearance (-1 for None), and the values they name."""
    seen: dict[object, int] = {}
    codes = np.fromiter(
        (-1 if value is None else seen.setdefault(value, len(seen)) for value in values),
        dtype=np.intp,
        count=len(values),
    )
    return codes, tuple(str(value) for value in seen)


def battle_id_column(ids: list[str]) -> pa.ChunkedArray:
    """Battle ids as the Arrow column :attr:`VoteColumns.battle_ids` holds."""
    return pa.chunked_array([pa.array(ids, type=pa.string())])
