"""Read battle files into validated battle records.

Formats (``fmt`` of :func:`read_battle_records`):

- ``jsonl``: our own export, one :class:`~lamarena.store.records.BattleRecord` per line (blank
  lines ignored; records are named by line number in errors). ``counted``, ``flags`` and
  ``equal_pace`` are read as given; a file from before they existed imports with the defaults
  (counted, no flags, free pace).
- ``talk-arena``: Talk Arena's TinyDB JSON (github.com/SALT-NLP/talk-arena, ``live_votes.json``):
  ``{"_default": {"<uuid>": {"model_a", "model_b", "outcome", "why", "audio_hash",
  "model_a_latency", "model_b_latency"}}}``. ``outcome`` 0 = model_a wins, 1 = model_b wins,
  0.5 = tie. A latency is ``{"time_to_first_token": s, "total_time": s, "response_length":
  chars}`` (a bare number is taken as the total time; older votes have no latency at all).
  ``audio_hash`` is kept as given in ``query_audio_sha256``: Talk Arena stores
  ``xxhash.xxh32(samples).hexdigest()`` (8 hex digits), not a sha256. ``why`` becomes
  ``feedback_text``. The file has no timestamps: every battle gets ``imported_at``.
- ``fastchat``: FastChat's cleaned battles (``fastchat/serve/monitor/clean_battle_data.py``):
  a JSON array (or JSON lines) of ``{"model_a", "model_b", "winner", "tstamp", "judge",
  "question_id"?, "turn"?, "conversation_a"?, "conversation_b"?, ...}`` with ``winner`` in
  ``model_a | model_b | tie | tie (bothbad)``; ``tie (bothbad)`` becomes ``both_bad`` and the
  Unix ``tstamp`` becomes ``created_at``. See :func:`_fastchat_record` for the other fields.
- ``parquet``: our own Parquet export (as ``jsonl``: a file without the ``counted``, ``flags``
  or ``equal_pace`` columns imports with the defaults).

Talk Arena and FastChat have no such signals: their battles import counted, unflagged, free
pace. Every reader keeps a record's ``source`` as given (our formats) or names the format
(``talk-arena``, ``fastchat``); a session id is imported as written, hashed or not (see
:mod:`lamarena.store.hashing` for why an export of it is stable).

Every reader validates the whole file before returning, so a bad record anywhere means nothing
is imported. Errors are one line and name the file, the record and the field.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, get_args

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import ValidationError

from lamarena.errors import InvalidInputError, RecordError
from lamarena.store.records import (
    BattleRecord,
    Winner,
    describe_session_owner,
    record_error_from_validation,
)

__all__ = [
    "BattleFormat",
    "jsonl_lines",
    "jsonl_record",
    "parquet_record",
    "read_battle_records",
]

logger = logging.getLogger(__name__)

BattleFormat = Literal["talk-arena", "fastchat", "jsonl", "parquet"]

_ID_NAMESPACE = uuid.UUID("0b8e0f4c-2f7a-4d1e-9a0c-6661737463ff")
_TALK_ARENA_OUTCOMES = {0: Winner.MODEL_A, 1: Winner.MODEL_B, 0.5: Winner.TIE}
_TALK_ARENA_LATENCY_KEYS = {
    "time_to_first_token": "ttft_s",
    "total_time": "total_s",
    "response_length": "chars",
}
_TALK_ARENA_FIELDS = {
    "battle_id": "(id)",
    "feedback_text": "why",
    "query_audio_sha256": "audio_hash",
    "latency_a": "model_a_latency",
    "latency_b": "model_b_latency",
    "ttft_s": "time_to_first_token",
    "total_s": "total_time",
    "chars": "response_length",
}
_FASTCHAT_WINNERS = {
    "model_a": Winner.MODEL_A,
    "model_b": Winner.MODEL_B,
    "tie": Winner.TIE,
    "tie (bothbad)": Winner.BOTH_BAD,
}
_FASTCHAT_FIELDS = {
    "battle_id": "question_id",
    "created_at": "tstamp",
    "participant_id": "judge",
    "session_id": "judge",
    "query_transcript": "conversation_a",
    "reply_a": "conversation_a",
    "reply_b": "conversation_b",
    "turns": "conversation_a",
}


class _DuplicateKeyError(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKeyError(key)
        result[key] = value
    return result


def _loads(source: str, text: str, *, line: int | None = None) -> Any:
    try:
        return json.loads(text, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as exc:
        where = (
            f"line {line}, column {exc.colno}" if line else f"line {exc.lineno}, column {exc.colno}"
        )
        raise InvalidInputError(f"{source}: invalid JSON at {where}: {exc.msg}") from exc
    except _DuplicateKeyError as exc:
        where = f" on line {line}" if line else ""
        raise InvalidInputError(
            f"{source}: key {exc.key!r} appears twice in one JSON object{where} "
            "(a duplicated record?)"
        ) from exc


def _read_text(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError as exc:
        raise InvalidInputError(f"{path}: no such file") from exc
    except IsADirectoryError as exc:
        raise InvalidInputError(f"{path}: is a directory, not a battle file") from exc
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"{path}: not UTF-8 text (bad byte at offset {exc.start})") from exc
    except OSError as exc:
        raise InvalidInputError(f"{path}: cannot be read: {exc.strerror}") from exc


def _validate(
    source: str, label: str, fields: dict[str, Any], field_names: dict[str, str] | None = None
) -> BattleRecord:
    try:
        return BattleRecord.model_validate(fields)
    except ValidationError as exc:
        raise record_error_from_validation(source, label, exc, field_names=field_names) from exc


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# --- Talk Arena -----------------------------------------------------------------------------


def _talk_arena_latency(source: str, key: str, field: str, value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if _is_number(value):
        return {"total_s": value}
    if isinstance(value, dict):
        unknown = sorted(set(value) - set(_TALK_ARENA_LATENCY_KEYS))
        if unknown:
            expected = ", ".join(_TALK_ARENA_LATENCY_KEYS)
            raise RecordError(
                source, key, field, f"unknown key {unknown[0]!r} (expected {expected})"
            )
        return {ours: value.get(theirs) for theirs, ours in _TALK_ARENA_LATENCY_KEYS.items()}
    if isinstance(value, list) and 1 <= len(value) <= 3:
        return dict(zip(("ttft_s", "total_s", "chars"), value, strict=False))
    raise RecordError(
        source,
        key,
        field,
        f"{value!r} is not a latency (an object with time_to_first_token, "
        "total_time, response_length, or a number of seconds)",
    )


def _read_talk_arena(
    path: Path, source: str, imported_at: datetime
) -> Iterator[tuple[str, BattleRecord]]:
    data = _loads(source, _read_text(path))
    table = data.get("_default") if isinstance(data, dict) else None
    if not isinstance(table, dict):
        raise InvalidInputError(
            f"{source}: not a Talk Arena TinyDB file (expected an object with a '_default' table "
            "of votes)"
        )
    for other in sorted(set(data) - {"_default"}):
        logger.warning("%s: ignoring TinyDB table %r (votes are in '_default')", source, other)
    for key, doc in table.items():
        if not isinstance(doc, dict):
            raise RecordError(
                source, key, "(record)", f"expected an object, got {type(doc).__name__}"
            )
        if "outcome" not in doc:
            raise RecordError(source, key, "outcome", "is missing")
        outcome = doc["outcome"]
        if not _is_number(outcome) or outcome not in _TALK_ARENA_OUTCOMES:
            raise RecordError(source, key, "outcome", f"{outcome!r} is not one of 0, 0.5, 1")
        for name in ("model_a", "model_b"):
            if name not in doc:
                raise RecordError(source, key, name, "is missing")
        fields = {
            "battle_id": key,
            "created_at": imported_at,
            "model_a": doc["model_a"],
            "model_b": doc["model_b"],
            "winner": _TALK_ARENA_OUTCOMES[outcome],
            "query_audio_sha256": doc.get("audio_hash"),
            "feedback_text": doc.get("why"),
            "latency_a": _talk_arena_latency(
                source, key, "model_a_latency", doc.get("model_a_latency")
            ),
            "latency_b": _talk_arena_latency(
                source, key, "model_b_latency", doc.get("model_b_latency")
            ),
            "source": "talk-arena",
        }
        yield key, _validate(source, key, fields, _TALK_ARENA_FIELDS)


# --- FastChat -------------------------------------------------------------------------------


def _messages(source: str, label: str, field: str, value: Any) -> list[dict[str, Any]] | None:
    """A FastChat conversation: OpenAI-format ``{role, content}`` messages (None when absent)."""
    if value is None:
        return None
    if not isinstance(value, list) or not all(
        isinstance(turn, dict) and isinstance(turn.get("content"), str | None) for turn in value
    ):
        raise RecordError(source, label, field, "expected a list of {role, content} messages")
    return value


def _by_role(messages: list[dict[str, Any]] | None, role: str) -> list[str | None]:
    return [m.get("content") for m in messages or [] if m.get("role") == role]


def _fastchat_turns(
    source: str, label: str, conversation_a: Any, conversation_b: Any
) -> list[dict[str, Any]]:
    """The turns of a FastChat battle: the k-th user message with each side's k-th answer.

    FastChat's cleaned battles hold each side's whole conversation (``to_openai_format`` of its
    messages: user and assistant alternating); both sides were asked the same user messages,
    so side A's are the queries. Each reply's ``chars`` is its own length.
    """
    side_a = _messages(source, label, "conversation_a", conversation_a)
    side_b = _messages(source, label, "conversation_b", conversation_b)
    queries = _by_role(side_a, "user") or _by_role(side_b, "user")
    answers = {"a": _by_role(side_a, "assistant"), "b": _by_role(side_b, "assistant")}
    turns: list[dict[str, Any]] = []
    for index in range(max(1, len(queries))):
        turn: dict[str, Any] = {
            "query_transcript": queries[index] if index < len(queries) else None
        }
        for side, said in answers.items():
            text = said[index] if index < len(said) else None
            turn[f"reply_{side}"] = text
            turn[f"latency_{side}"] = {"chars": len(text)} if text is not None else None
        turns.append(turn)
    return turns


def _fastchat_record(source: str, label: str, doc: Any) -> BattleRecord:
    """Map one FastChat battle to a record.

    ``question_id`` (the conversation id) is the battle id, suffixed ``-turn{N}`` for a vote
    after turn N > 1 of the same conversation; without it the id is a UUID derived from the
    battle's content, so importing the same file twice is caught. ``judge`` becomes the
    participant and, prefixed ``fastchat:``, the session. The conversations become the battle's
    turns (:func:`_fastchat_turns`): a vote after a three-turn conversation is a three-turn
    battle, each reply with its own ``chars`` (the analysis frame sums a side's over the
    conversation, as FastChat's style control does). Other keys (``anony``, ``language``, tags)
    are ignored.
    """
    if not isinstance(doc, dict):
        raise RecordError(
            source, label, "(record)", f"expected an object, got {type(doc).__name__}"
        )
    for name in ("model_a", "model_b", "winner", "tstamp"):
        if name not in doc:
            raise RecordError(source, label, name, "is missing")
    winner = doc["winner"]
    if not isinstance(winner, str) or winner not in _FASTCHAT_WINNERS:
        allowed = ", ".join(repr(name) for name in _FASTCHAT_WINNERS)
        raise RecordError(source, label, "winner", f"{winner!r} is not one of {allowed}")
    tstamp = doc["tstamp"]
    try:
        if not _is_number(tstamp):
            raise TypeError
        created_at = datetime.fromtimestamp(tstamp, UTC)
    except (TypeError, ValueError, OverflowError, OSError) as exc:
        raise RecordError(
            source, label, "tstamp", f"{tstamp!r} is not a Unix time in seconds"
        ) from exc
    judge = doc.get("judge")
    if judge is not None and not isinstance(judge, str):
        raise RecordError(source, label, "judge", f"{judge!r} is not a string")
    question_id = doc.get("question_id")
    turn = doc.get("turn")
    if question_id is not None and not isinstance(question_id, str):
        raise RecordError(source, label, "question_id", f"{question_id!r} is not a string")
    if question_id:
        battle_id = question_id if turn in (None, 0, 1) else f"{question_id}-turn{turn}"
    else:
        content = "\x1f".join(
            str(doc.get(k)) for k in ("tstamp", "model_a", "model_b", "judge", "winner")
        )
        battle_id = str(uuid.uuid5(_ID_NAMESPACE, content))
    turns = _fastchat_turns(source, label, doc.get("conversation_a"), doc.get("conversation_b"))
    fields = {
        "battle_id": battle_id,
        "created_at": created_at,
        "session_id": f"fastchat:{judge}" if judge else None,
        "participant_id": judge or None,
        "model_a": doc["model_a"],
        "model_b": doc["model_b"],
        "winner": _FASTCHAT_WINNERS[winner],
        "turns": turns,
        "source": "fastchat",
    }
    return _validate(source, label, fields, _FASTCHAT_FIELDS)


def _read_fastchat(path: Path, source: str) -> Iterator[tuple[str, BattleRecord]]:
    text = _read_text(path)
    if text.lstrip().startswith("["):
        data = _loads(source, text)
        for position, doc in enumerate(data, start=1):
            label = str(position)
            if isinstance(doc, dict) and isinstance(doc.get("question_id"), str):
                label = f"{position} ({doc['question_id']})"
            yield label, _fastchat_record(source, label, doc)
        return
    if not text.lstrip().startswith("{"):
        raise InvalidInputError(
            f"{source}: not FastChat battles (expected a JSON array of battles)"
        )
    for line_number, line in _lines(
        text
    ):  # the JSON-lines variant (vote_time_stats/clean_battle.py)
        label = str(line_number)
        yield label, _fastchat_record(source, label, _loads(source, line, line=line_number))


# --- our JSONL and Parquet ------------------------------------------------------------------


def _lines(text: str) -> Iterator[tuple[int, str]]:
    # Split on "\n" only: str.splitlines() would also split on U+2028 and friends, which JSON
    # strings written with ensure_ascii=False may contain.
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.removesuffix("\r")
        if line.strip():
            yield number, line


def jsonl_lines(path: Path) -> Iterator[tuple[int, str]]:
    """The record lines of a JSONL battle file with their 1-based numbers (blank lines skipped).

    Raises:
        InvalidInputError: the file is missing, a directory, unreadable or not UTF-8.
    """
    yield from _lines(_read_text(path))


def jsonl_record(source: str, line_number: int, line: str) -> BattleRecord:
    """Parse and validate one JSONL line, as the record loader does.

    Raises:
        InvalidInputError: the line is not JSON or has a key twice.
        RecordError: the line is not a valid battle record.
    """
    label = str(line_number)
    doc = _loads(source, line, line=line_number)
    if not isinstance(doc, dict):
        raise RecordError(
            source, label, "(record)", f"expected an object, got {type(doc).__name__}"
        )
    doc.setdefault("source", "jsonl")
    return _validate(source, label, doc)


def parquet_record(source: str, position: int, row: dict[str, Any]) -> BattleRecord:
    """Validate one Parquet row (``position`` 1-based), as the record loader does.

    Raises:
        RecordError: the row is not a valid battle record.
    """
    return _validate(source, str(position), row)


def _read_jsonl(path: Path, source: str) -> Iterator[tuple[str, BattleRecord]]:
    for line_number, line in jsonl_lines(path):
        yield str(line_number), jsonl_record(source, line_number, line)


def _read_parquet(path: Path, source: str) -> Iterator[tuple[str, BattleRecord]]:
    if not path.is_file():
        raise InvalidInputError(f"{path}: no such file")
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise InvalidInputError(f"{source}: not a readable Parquet file: {exc}") from exc
    for position, row in enumerate(table.to_pylist(), start=1):
        yield str(position), parquet_record(source, position, row)


# --- entry point ----------------------------------------------------------------------------


def _shown(participant_id: str | None) -> str:
    return "null" if participant_id is None else repr(participant_id)


def _check_unique(source: str, labelled: list[tuple[str, BattleRecord]], id_field: str) -> None:
    """Refuse reused battle ids, and sessions whose battles disagree on the participant.

    A participant belongs to a session, not to a battle, so every battle of a session must give
    the same ``participant_id`` (``null`` included); anything else could not be stored without
    changing some battle's participant.
    """
    first_label: dict[str, str] = {}
    owner: dict[str, tuple[str | None, str]] = {}
    for label, record in labelled:
        if record.battle_id in first_label:
            raise RecordError(
                source,
                label,
                id_field,
                f"battle id {record.battle_id!r} is already used by record "
                f"{first_label[record.battle_id]}",
            )
        first_label[record.battle_id] = label
        if record.session_id is None:
            continue
        known, known_label = owner.setdefault(record.session_id, (record.participant_id, label))
        if record.participant_id != known:
            raise RecordError(
                source,
                label,
                "participant_id",
                f"is {_shown(record.participant_id)}, but "
                f"{describe_session_owner(record.session_id, known)} (record {known_label}); "
                "every battle of a session needs the same participant_id",
            )


def read_battle_records(
    path: str | Path, fmt: BattleFormat, *, imported_at: datetime | None = None
) -> list[BattleRecord]:
    """Read and validate every battle of a file.

    Args:
        path: the file.
        fmt: ``talk-arena``, ``fastchat``, ``jsonl`` or ``parquet`` (see the module docstring).
        imported_at: ``created_at`` of battles whose file has no time (Talk Arena); now if None.

    Returns:
        The battles in file order.

    Raises:
        InvalidInputError: the file is missing, is not UTF-8 or not JSON (with line and column),
            or is not in the format named.
        RecordError: a record is invalid, reuses a battle id, or gives another
            ``participant_id`` than an earlier battle of its session; the one-line message names
            the file, the record (id or line/position) and the field.
    """
    path = Path(path)
    source = str(path)
    readers: dict[str, Callable[[], Iterator[tuple[str, BattleRecord]]]] = {
        "talk-arena": lambda: _read_talk_arena(path, source, imported_at or datetime.now(UTC)),
        "fastchat": lambda: _read_fastchat(path, source),
        "jsonl": lambda: _read_jsonl(path, source),
        "parquet": lambda: _read_parquet(path, source),
    }
    if fmt not in readers:
        allowed = ", ".join(get_args(BattleFormat))
        raise InvalidInputError(f"unknown battle file format {fmt!r}; use one of {allowed}")
    labelled = list(readers[fmt]())
    _check_unique(source, labelled, "question_id" if fmt == "fastchat" else "battle_id")
    logger.info("%s: read %d battles (%s)", source, len(labelled), fmt)
    return [record for _, record in labelled]
