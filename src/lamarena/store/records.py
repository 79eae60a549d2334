"""The battle record: the one schema of exported and imported battles (DESIGN.md).

A :class:`BattleRecord` is one battle with its vote, as written to JSONL (one record per line)
or Parquet, and as read back by the importers. :func:`records_to_frame` turns records into the
DataFrame the analysis layer consumes; :func:`records_from_frame` goes the other way (used by
``lamarena simulate``).
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal

import pandas as pd
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    StrictBool,
    ValidationError,
    ValidationInfo,
    computed_field,
    field_validator,
    model_serializer,
    model_validator,
)

from lamarena.errors import InvalidInputError, RecordError
from lamarena.store.tables import ID_LENGTH, INTEGER_MAX, MODEL_NAME_LENGTH

__all__ = [
    "FLAGS_MAX_LENGTH",
    "FRAME_COLUMNS",
    "BattleRecord",
    "Latency",
    "TurnRecord",
    "Winner",
    "battles_frame_from_columns",
    "describe_session_owner",
    "record_error_from_validation",
    "records_from_frame",
    "records_to_frame",
]

Identifier = Annotated[str, Field(min_length=1, max_length=ID_LENGTH)]
ModelName = Annotated[str, Field(min_length=1, max_length=MODEL_NAME_LENGTH)]
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
"""A content address: the lowercase hex sha256 of a file (a spoken reply's WAV)."""
ReplyMode = Literal["text", "speech"]
"""What a battle's replies were: text, or speech (``serve --mode``); ratings keep them apart."""


def _positive_zero(value: float) -> float:
    # -0.0 passes ge=0, but SQLite reads it back as 0.0: store 0.0 on every database.
    return value + 0.0


Seconds = Annotated[float, Field(ge=0, allow_inf_nan=False), AfterValidator(_positive_zero)]
"""A duration: finite, not negative (a double on every database)."""
Count = Annotated[int, Field(ge=0, le=INTEGER_MAX)]
"""A count stored in an ``Integer`` column: 0 to 2**31 - 1 on every database."""
Probability = Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)]
"""A battle's sampling probability: in (0, 1]."""

FLAGS_MAX_LENGTH = 200
"""Longest comma-joined list of flags the store keeps (``battles.flags``)."""
_FLAG = re.compile(r"[a-z][a-z0-9_]{0,39}")

FRAME_COLUMNS = (
    "battle_id",
    "model_a",
    "model_b",
    "winner",
    "chars_a",
    "chars_b",
    "ttft_a_s",
    "ttft_b_s",
    "total_a_s",
    "total_b_s",
    "query_transcript",
    "created_at",
    "counted",
    "session_id",
    "participant_id",
    "sampling_probability",
    "n_turns",
    "mode",
    "ttfab_a_s",
    "ttfab_b_s",
    "audio_a_s",
    "audio_b_s",
)
"""Columns of :func:`records_to_frame` (and of ``repo.battles_frame``), in order.

``session_id`` and ``participant_id`` are the clusters of the votes (a participant's votes are
not independent): the analysis resamples them whole (``leaderboard --cluster``). ``n_turns`` is
how many turns the person spoke before voting (``leaderboard --by turns``). ``mode`` is what the
replies were (``text`` or ``speech``: ratings of the two are kept apart); ``ttfab_*_s`` and
``audio_*_s`` are a spoken reply's time to its first audio byte and its audio's duration (NaN for
a text reply).
"""

_STRING_COLUMNS = (
    "battle_id",
    "model_a",
    "model_b",
    "winner",
    "query_transcript",
    "session_id",
    "participant_id",
    "mode",
)
_NUMBER_COLUMNS = (
    "chars_a",
    "chars_b",
    "ttft_a_s",
    "ttft_b_s",
    "total_a_s",
    "total_b_s",
    "sampling_probability",
    "n_turns",
    "ttfab_a_s",
    "ttfab_b_s",
    "audio_a_s",
    "audio_b_s",
)
_BOOL_COLUMNS = ("counted",)
_SIMULATED_START = datetime(2025, 1, 1, tzinfo=UTC)
_SIMULATED_SPACING = timedelta(seconds=30)
_ID_NAMESPACE = uuid.UUID("5d0f6f2e-6f0e-4d55-9a59-6c616d617265")


class Winner(StrEnum):
    """The outcome of a vote; the values are DESIGN.md's wire strings."""

    MODEL_A = "model_a"
    MODEL_B = "model_b"
    TIE = "tie"
    BOTH_BAD = "both_bad"


class Latency(BaseModel):
    """Timings of one reply: time to first token, total time (seconds) and length (characters).

    A spoken reply also has ``ttfab_s``, the time to its first audio byte, and ``audio_s``, its
    audio's duration (seconds).

    Every value fits every database the store supports, so SQLite and PostgreSQL accept the same
    files: seconds are finite and not negative (``-0.0`` becomes ``0.0``), ``chars`` is at most
    2**31 - 1 (the column is a 32-bit integer on PostgreSQL).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    ttft_s: Seconds | None = None
    total_s: Seconds | None = None
    chars: Count | None = None
    ttfab_s: Seconds | None = None
    audio_s: Seconds | None = None

    @model_serializer(mode="wrap")
    def _without_unknown_audio(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # a text reply's timings are written as before: no audio keys
        data: dict[str, Any] = handler(self)
        for name in ("ttfab_s", "audio_s"):
            if data.get(name) is None:
                data.pop(name, None)
        return data

    def is_empty(self) -> bool:
        """Whether no timing is known."""
        return all(
            value is None
            for value in (self.ttft_s, self.total_s, self.chars, self.ttfab_s, self.audio_s)
        )


def _none_if_empty(value: Latency | None) -> Latency | None:
    return None if value is None or value.is_empty() else value


KnownLatency = Annotated[Latency | None, AfterValidator(_none_if_empty)]
"""A reply's timings; an object with no known field is stored as None."""

TURN_FIELDS = (
    "query_audio_sha256",
    "query_transcript",
    "reply_a",
    "reply_b",
    "latency_a",
    "latency_b",
    "error_a",
    "error_b",
    "reply_audio_a_sha256",
    "reply_audio_b_sha256",
    "notice_a",
    "notice_b",
)
"""Fields of one turn; a battle record's top-level fields of these names are its first turn's."""

MAX_TURNS = 50
"""The most turns a record may hold (the arena's ``--max-turns`` is far below)."""


class TurnRecord(BaseModel):
    """One turn of a conversation: the person's query and both sides' replies with timings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    query_audio_sha256: Annotated[str, Field(max_length=ID_LENGTH)] | None = None
    query_transcript: str | None = None
    reply_a: str | None = None
    reply_b: str | None = None
    latency_a: KnownLatency = None
    latency_b: KnownLatency = None
    error_a: str | None = None
    error_b: str | None = None
    reply_audio_a_sha256: Sha256 | None = None
    reply_audio_b_sha256: Sha256 | None = None
    notice_a: str | None = None
    notice_b: str | None = None


class BattleRecord(BaseModel):
    """One battle with its vote, as exported to and imported from JSONL or Parquet.

    ``created_at`` is converted to UTC (a time whose UTC date falls outside years 1 to 9999 is
    invalid). A ``latency_*`` object with no known field is stored as ``None``. Text fields keep
    their exact content (no stripping); ``None`` (unknown) and ``""`` (empty) stay distinct.
    A participant belongs to a session: every record of one session gives the same
    ``participant_id`` (checked by the importers and the store).

    ``counted`` says whether the vote enters the leaderboard (the arena stores a flagged battle
    with ``counted`` false); ``flags`` says why a battle was flagged (``self_identified``,
    ``duplicate_audio``, ...): short identifiers (a lowercase letter, then lowercase letters,
    digits or ``_``; at most 40 characters), kept sorted and without repeats (the record sorts
    them and drops repeats), at most 200 characters once joined with commas. ``equal_pace``
    says whether both replies were shown at one pace. ``sampling_probability`` is the chance
    the battle's unordered pair had when it was drawn (in (0, 1]; None where not recorded), which
    inverse-probability weighting needs. Files written before these fields existed read with the
    defaults: counted, no flags, free pace, no probability.

    ``turns`` holds every turn of the conversation in order (:class:`TurnRecord`), and
    ``n_turns`` (written, and checked when read) how many. The top-level ``query_*``, ``reply_*``,
    ``latency_*`` and ``error_*`` fields are the first turn's, as in every file written before
    conversations existed: a record without ``turns`` gets one turn made of them, and a record
    with ``turns`` must agree with them (a top-level field left out is taken from the first turn).

    A record loaded from the store carries the session of an arena battle as its salted hash
    (see :mod:`lamarena.store.hashing`), never the cookie value.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    battle_id: Identifier
    created_at: AwareDatetime
    session_id: Identifier | None = None
    participant_id: Identifier | None = None
    model_a: ModelName
    model_b: ModelName
    winner: Winner
    query_audio_sha256: Annotated[str, Field(max_length=ID_LENGTH)] | None = None
    query_transcript: str | None = None
    reply_a: str | None = None
    reply_b: str | None = None
    latency_a: KnownLatency = None
    latency_b: KnownLatency = None
    error_a: str | None = None
    error_b: str | None = None
    reply_audio_a_sha256: Sha256 | None = None
    reply_audio_b_sha256: Sha256 | None = None
    notice_a: str | None = None
    notice_b: str | None = None
    feedback_text: str | None = None
    audio_kept: StrictBool = False
    source: Annotated[str, Field(min_length=1, max_length=32)] = "arena"
    counted: StrictBool = True
    flags: list[str] = []
    equal_pace: StrictBool = False
    sampling_probability: Probability | None = None
    turns: list[TurnRecord] = []
    mode: ReplyMode = "text"

    @model_validator(mode="before")
    @classmethod
    def _turn_count(cls, data: Any) -> Any:
        # ``n_turns`` is derived (written for readers of the files); check it, then drop it
        if isinstance(data, Mapping) and "n_turns" in data:
            data = dict(data)
            count = data.pop("n_turns")
            turns = data.get("turns")
            given = len(turns) if isinstance(turns, list) and turns else 1
            if count is not None and count != given:
                raise ValueError(f"n_turns is {count!r} but the record holds {given} turn(s)")
        return data

    @model_validator(mode="after")
    def _first_turn(self) -> BattleRecord:
        if len(self.turns) > MAX_TURNS:
            raise ValueError(f"turns: {len(self.turns)} turns; a record holds at most {MAX_TURNS}")
        if not self.turns:
            first = TurnRecord(**{name: getattr(self, name) for name in TURN_FIELDS})
            object.__setattr__(self, "turns", [first])
            return self
        first = self.turns[0]
        for name in TURN_FIELDS:
            mine, theirs = getattr(self, name), getattr(first, name)
            if mine is None:
                object.__setattr__(self, name, theirs)
            elif theirs is not None and mine != theirs:
                raise ValueError(
                    f"{name} differs from turns[0].{name}; the top-level fields are the first "
                    "turn's"
                )
        if any(getattr(first, name) is None for name in TURN_FIELDS):
            merged = first.model_copy(update={name: getattr(self, name) for name in TURN_FIELDS})
            object.__setattr__(self, "turns", [merged, *self.turns[1:]])
        return self

    @computed_field  # type: ignore[prop-decorator]
    @property
    def n_turns(self) -> int:
        """How many turns the conversation had before the vote."""
        return len(self.turns)

    @field_validator("*", mode="after")
    @classmethod
    def _storable_text(cls, value: Any) -> Any:
        # PostgreSQL cannot store NUL in text, and no database stores lone surrogates.
        if isinstance(value, str):
            if "\x00" in value:
                raise ValueError("contains a NUL character, which the database cannot store")
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise ValueError("is not valid Unicode (a lone surrogate)") from exc
        return value

    @field_validator("battle_id", "session_id", "participant_id", "model_a", "model_b")
    @classmethod
    def _no_surrounding_space(cls, value: str | None) -> str | None:
        if value is not None and value != value.strip():
            raise ValueError(f"{value!r} starts or ends with white space")
        return value

    @field_validator("created_at")
    @classmethod
    def _to_utc(cls, value: datetime) -> datetime:
        try:
            return value.astimezone(UTC)
        except OverflowError as exc:  # 0001-01-01T00:00+01:00 is in year 0 in UTC
            raise ValueError(
                f"{value.isoformat()} is outside years 1 to 9999 once converted to UTC"
            ) from exc

    @field_validator("model_b")
    @classmethod
    def _distinct_models(cls, value: str, info: ValidationInfo) -> str:
        if value == info.data.get("model_a"):
            raise ValueError(f"{value!r} is the same model as model_a; a battle needs two")
        return value

    @field_validator("participant_id")
    @classmethod
    def _participant_needs_session(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and info.data.get("session_id") is None:
            raise ValueError("a participant_id needs a session_id")
        return value

    @field_validator("flags")
    @classmethod
    def _flags_are_identifiers(cls, value: list[str]) -> list[str]:
        for flag in value:
            if _FLAG.fullmatch(flag) is None:
                raise ValueError(
                    f"flag {flag!r} is not a short identifier (a lowercase letter, then "
                    "lowercase letters, digits or _, at most 40 characters)"
                )
        flags = sorted(set(value))
        if len(",".join(flags)) > FLAGS_MAX_LENGTH:
            raise ValueError(f"the flags are longer than {FLAGS_MAX_LENGTH} characters joined")
        return flags

    @field_validator("audio_kept")
    @classmethod
    def _kept_needs_session(cls, value: bool, info: ValidationInfo) -> bool:
        if value and info.data.get("session_id") is None:
            raise ValueError("audio_kept is true only with consent, which needs a session_id")
        return value


def describe_session_owner(session_id: str, participant_id: str | None) -> str:
    """Say who a session belongs to, for error messages.

    Returns:
        ``session 's1' belongs to participant 'p1'`` or ``session 's1' has no participant``.
    """
    if participant_id is None:
        return f"session {session_id!r} has no participant"
    return f"session {session_id!r} belongs to participant {participant_id!r}"


def _short_repr(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def record_error_from_validation(
    source: str,
    record: str,
    exc: ValidationError,
    *,
    field_names: Mapping[str, str] | None = None,
) -> RecordError:
    """Turn a pydantic error into a one-line :class:`RecordError` naming the first bad field.

    Args:
        source: the file (or other input) the record came from.
        record: how to name the record: its id or its line/position.
        exc: the validation error of that record.
        field_names: the input's own name for a record field (``{"feedback_text": "why"}``), so
            the message names the field the user sees in their file.

    Returns:
        The error to raise (``raise ... from exc``).
    """
    first = exc.errors(include_url=False)[0]
    names = field_names or {}
    field = ".".join(names.get(str(part), str(part)) for part in first["loc"]) or "(record)"
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "missing":
        problem = "is missing"
    elif first["type"] == "extra_forbidden":
        problem = "is not a field of a battle record"
    elif first["type"] == "value_error":  # our validators say what was wrong themselves
        problem = message
    else:
        problem = f"{_short_repr(first.get('input'))}: {message}"
    problem = " ".join(problem.split())  # one line, whatever the input held
    return RecordError(source, record, field, problem)


def battles_frame_from_columns(columns: Mapping[str, Sequence[Any]]) -> pd.DataFrame:
    """Build the analysis DataFrame from one sequence per column of :data:`FRAME_COLUMNS`.

    Strings use pandas' string dtype (missing as NaN), numbers are float64 (NaN where unknown),
    ``counted`` is bool and ``created_at`` is ``datetime64[us, UTC]``.
    """
    data: dict[str, Any] = {}
    for name in _STRING_COLUMNS:
        data[name] = pd.Series(list(columns[name]), dtype="str")
    for name in _NUMBER_COLUMNS:
        values = [math.nan if value is None else value for value in columns[name]]
        data[name] = pd.Series(values, dtype="float64")
    for name in _BOOL_COLUMNS:
        data[name] = pd.Series([bool(value) for value in columns[name]], dtype="bool")
    created = pd.to_datetime(pd.Series(list(columns["created_at"]), dtype=object), utc=True)
    data["created_at"] = created.astype("datetime64[us, UTC]")
    return pd.DataFrame({name: data[name] for name in FRAME_COLUMNS})


def _conversation_chars(record: BattleRecord, side: str) -> int | None:
    """A side's characters over the whole conversation (None when its first reply's are unknown).

    What the person read before voting, as FastChat's style control sums a conversation's
    assistant tokens; a later turn of unknown length adds nothing.
    """
    latencies: list[Latency | None] = [getattr(turn, f"latency_{side}") for turn in record.turns]
    counts = [latency.chars if latency is not None else None for latency in latencies]
    if counts[0] is None:
        return None
    return sum(count for count in counts if count is not None)


def records_to_frame(records: Iterable[BattleRecord]) -> pd.DataFrame:
    """Turn battle records into the DataFrame the analysis layer consumes.

    Args:
        records: the battles.

    Returns:
        One row per battle with the columns of :data:`FRAME_COLUMNS`: ``battle_id, model_a,
        model_b, winner`` (wire strings), ``chars_a, chars_b`` (the characters of a side's
        replies over the whole conversation), ``ttft_a_s, ttft_b_s, total_a_s, total_b_s`` (the
        first turn's; float, NaN where unknown), ``query_transcript``, ``created_at`` (UTC),
        ``counted`` (bool), ``session_id``, ``participant_id`` and ``sampling_probability``
        (NaN where unknown). Every
        record gives a row, counted or not: a caller ranking votes keeps
        ``frame[frame["counted"]]`` (as ``repo.battles_frame`` does by default).
    """
    columns: dict[str, list[Any]] = {name: [] for name in FRAME_COLUMNS}
    for record in records:
        columns["battle_id"].append(record.battle_id)
        columns["model_a"].append(record.model_a)
        columns["model_b"].append(record.model_b)
        columns["winner"].append(record.winner.value)
        for side, latency in (("a", record.latency_a), ("b", record.latency_b)):
            columns[f"chars_{side}"].append(_conversation_chars(record, side))
            columns[f"ttft_{side}_s"].append(latency.ttft_s if latency else None)
            columns[f"total_{side}_s"].append(latency.total_s if latency else None)
        columns["query_transcript"].append(record.query_transcript)
        columns["created_at"].append(record.created_at)
        columns["counted"].append(record.counted)
        columns["session_id"].append(record.session_id)
        columns["participant_id"].append(record.participant_id)
        columns["sampling_probability"].append(record.sampling_probability)
        columns["n_turns"].append(record.n_turns)
        columns["mode"].append(record.mode)
        for side, latency in (("a", record.latency_a), ("b", record.latency_b)):
            columns[f"ttfab_{side}_s"].append(latency.ttfab_s if latency else None)
            columns[f"audio_{side}_s"].append(latency.audio_s if latency else None)
    return battles_frame_from_columns(columns)


def _cell(value: Any) -> Any:
    """A frame cell as a plain Python value, with every kind of missing as None."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item) and not isinstance(value, str):
        value = item()
        if isinstance(value, float) and math.isnan(value):
            return None
    return value


def _whole_number(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def records_from_frame(
    frame: pd.DataFrame,
    *,
    source: str = "simulate",
    namespace: str = "simulate",
    start: datetime = _SIMULATED_START,
    battles_per_session: int = 10,
) -> list[BattleRecord]:
    """Turn a DataFrame of battles (for example simulated ones) into battle records.

    The frame needs ``model_a, model_b, winner`` and may have any of ``chars_a, chars_b,
    ttft_a_s, ttft_b_s, total_a_s, total_b_s, query_transcript, battle_id, created_at,
    session_id, participant_id, feedback_text, counted, sampling_probability``. Missing ids and
    times are generated deterministically from the row position: the same frame and
    ``namespace`` always give the same records (use a different ``namespace`` per run to import
    several runs into one store).

    Args:
        frame: one row per battle.
        source: the ``source`` of every record.
        namespace: seeds the generated battle and session ids.
        start: ``created_at`` of the first generated battle; later ones follow 30 s apart.
        battles_per_session: how many consecutive battles share a generated session.

    Returns:
        The records, in row order.

    Raises:
        InvalidInputError: a required column is missing or ``battles_per_session`` < 1.
        RecordError: a row is not a valid battle (naming its 1-based row and the field).
    """
    missing = [name for name in ("model_a", "model_b", "winner") if name not in frame.columns]
    if missing:
        raise InvalidInputError(f"battles frame: missing column(s) {', '.join(missing)}")
    if battles_per_session < 1:
        raise InvalidInputError(
            f"battles_per_session must be at least 1, got {battles_per_session}"
        )
    if start.tzinfo is None:
        raise InvalidInputError(f"start {start.isoformat()} must be timezone-aware")
    records: list[BattleRecord] = []
    for position, row in enumerate(frame.to_dict(orient="records")):
        cells = {str(key): _cell(value) for key, value in row.items()}
        session_number = position // battles_per_session
        fields: dict[str, Any] = {
            "battle_id": cells.get("battle_id")
            or str(uuid.uuid5(_ID_NAMESPACE, f"{namespace}/battle/{position}")),
            "created_at": cells.get("created_at") or start + position * _SIMULATED_SPACING,
            "session_id": cells.get("session_id")
            or str(uuid.uuid5(_ID_NAMESPACE, f"{namespace}/session/{session_number}")),
            "participant_id": cells.get("participant_id"),
            "model_a": cells["model_a"],
            "model_b": cells["model_b"],
            "winner": cells["winner"],
            "query_transcript": cells.get("query_transcript"),
            "feedback_text": cells.get("feedback_text"),
            "source": source,
        }
        if cells.get("counted") is not None:
            fields["counted"] = cells["counted"]
        if cells.get("sampling_probability") is not None:
            fields["sampling_probability"] = cells["sampling_probability"]
        for side in ("a", "b"):
            fields[f"latency_{side}"] = {
                "ttft_s": cells.get(f"ttft_{side}_s"),
                "total_s": cells.get(f"total_{side}_s"),
                "chars": _whole_number(cells.get(f"chars_{side}")),
            }
        try:
            records.append(BattleRecord.model_validate(fields))
        except ValidationError as exc:
            raise record_error_from_validation("battles frame", str(position + 1), exc) from exc
    return records
