"""SQLAlchemy table models of the battle store.

One *battle* is one recorded query answered by two anonymous models (``replies``, side ``a`` and
``b``) and judged by one ``votes`` row. Battles belong to a ``sessions`` row (one visit, with its
audio consent), which may belong to a ``participants`` row (an external id such as a Prolific
pid). Timestamps are stored UTC-aware on every database: :class:`UTCDateTime` attaches UTC to the
naive values SQLite returns and refuses naive values on the way in. ``pair_counts`` and
``cluster_pair_counts`` hold the counted votes summed per pair (and per cluster), kept in each
vote's own transaction by :mod:`lamarena.store.vote_counts`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "CLIENT_HASH_LENGTH",
    "CLUSTER_LENGTH",
    "ID_LENGTH",
    "INTEGER_MAX",
    "MODEL_NAME_LENGTH",
    "REPLY_MODES",
    "SIDES",
    "WINNERS",
    "Base",
    "Battle",
    "ClientEvent",
    "ClusterPairCount",
    "HealthCheck",
    "PairCount",
    "Participant",
    "Reply",
    "Session",
    "StoreSecret",
    "Turn",
    "UTCDateTime",
    "Vote",
]

ID_LENGTH = 128
"""Longest battle, session or participant id the store accepts."""

MODEL_NAME_LENGTH = 200
"""Longest model name the store accepts."""

CLUSTER_LENGTH = ID_LENGTH + 2
"""Longest cluster key of ``cluster_pair_counts`` (``p:``, ``s:`` or ``b:`` and an id)."""

CLIENT_HASH_LENGTH = 64
"""Length of a stored salted hash (hex sha256) of a client address or session."""

INTEGER_MAX = 2**31 - 1
"""Largest value of an ``Integer`` column on every database (32-bit on PostgreSQL)."""

WINNERS = ("model_a", "model_b", "tie", "both_bad")
"""The wire values of a vote, as in DESIGN.md (``records.Winner`` mirrors them)."""

SIDES = ("a", "b")
REPLY_MODES = ("text", "speech")
"""What a battle's replies are: text, or speech (``serve --mode``)."""

# Named constraints keep Alembic batch mode (SQLite) and autogenerate comparisons stable.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware datetime column that always reads back in UTC.

    PostgreSQL stores ``timestamptz``; SQLite stores text without an offset, so values are
    converted to UTC before they are written and UTC is attached when they are read.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Convert an aware datetime to UTC (naive datetimes are a programming error)."""
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: timestamps must be UTC-aware")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        """Return the stored value as an aware datetime in UTC."""
        if value is None:
            return None
        if not isinstance(value, datetime):  # pragma: no cover - drivers return datetimes
            raise TypeError(f"unexpected timestamp value {value!r}")
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _in(column: str, values: tuple[str, ...]) -> str:
    quoted = ", ".join(f"'{value}'" for value in values)
    return f"{column} IN ({quoted})"


class Base(DeclarativeBase):
    """Declarative base of every lamarena table."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime()}


class Participant(Base):
    """A person taking part, known by an external id (for example a Prolific pid)."""

    __tablename__ = "participants"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    created_at: Mapped[datetime]


class Session(Base):
    """One visit to the arena: its participant (if known) and its audio consent."""

    __tablename__ = "sessions"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    participant_id: Mapped[str | None] = mapped_column(
        ForeignKey("participants.id", ondelete="SET NULL"), index=True
    )
    created_at: Mapped[datetime]
    consent_keep_audio: Mapped[bool] = mapped_column(Boolean, default=False)


class Battle(Base):
    """One query answered by two anonymous models."""

    __tablename__ = "battles"
    __table_args__ = (
        CheckConstraint("model_a <> model_b", name="distinct_models"),
        CheckConstraint("kept_audio_path IS NULL OR audio_kept", name="audio_path_needs_consent"),
        CheckConstraint(_in("mode", REPLY_MODES), name="mode"),
        Index("ix_battles_created_at", "created_at"),
        Index("ix_battles_query_audio_sha256", "query_audio_sha256"),
        Index("ix_battles_client_hash", "client_hash"),
    )

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    session_id: Mapped[str | None] = mapped_column(
        ForeignKey("sessions.id", ondelete="SET NULL"), index=True
    )
    created_at: Mapped[datetime]
    model_a: Mapped[str] = mapped_column(String(MODEL_NAME_LENGTH))
    model_b: Mapped[str] = mapped_column(String(MODEL_NAME_LENGTH))
    query_audio_sha256: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    query_transcript: Mapped[str | None] = mapped_column(Text)
    audio_kept: Mapped[bool] = mapped_column(Boolean, default=False)
    kept_audio_path: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(32))
    participant_id: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    """The participant when the battle was opened (a later ``pid`` never changes it)."""
    client_hash: Mapped[str | None] = mapped_column(String(CLIENT_HASH_LENGTH))
    """Salted hash of the client address that opened it (never the address itself)."""
    counted: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    """Whether its vote enters the leaderboard (False for a flagged battle)."""
    flags: Mapped[str | None] = mapped_column(String(200))
    """Comma-separated flags (``self_identified``, ``duplicate_audio``), or None."""
    equal_pace: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    """Whether both replies were shown at one pace (``serve --equal-pace``)."""
    feedback_transcriptions: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    """Spoken reasons transcribed for this battle (each a model call; bounded)."""
    server_run: Mapped[str | None] = mapped_column(String(64))
    """The ``serve`` run generating its replies (a later run marks them lost at start)."""
    sampling_probability: Mapped[float | None] = mapped_column(Float)
    """The chance its unordered pair had when drawn (None: not recorded), for inverse-probability
    weighting of an adaptive design."""
    mode: Mapped[str] = mapped_column(String(8), default="text", server_default="text")
    """``text`` or ``speech``: what its replies were (``serve --mode``)."""


class Turn(Base):
    """A later turn of a conversation: the person spoke again before voting.

    The battle row itself is the first turn (its ``query_*`` columns, its replies of turn 1);
    this table holds turns 2, 3, ... with their own query. Their replies are the ``replies``
    rows with the same ``turn``.
    """

    __tablename__ = "turns"
    __table_args__ = (
        CheckConstraint("turn >= 2", name="later_turn"),
        CheckConstraint("kept_audio_path IS NULL OR audio_kept", name="audio_path_needs_consent"),
        Index("ix_turns_created_at", "created_at"),
    )

    battle_id: Mapped[str] = mapped_column(
        ForeignKey("battles.id", ondelete="CASCADE"), primary_key=True
    )
    turn: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    created_at: Mapped[datetime]
    query_audio_sha256: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    query_transcript: Mapped[str | None] = mapped_column(Text)
    audio_kept: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    kept_audio_path: Mapped[str | None] = mapped_column(Text)


class Reply(Base):
    """What one side of a battle answered in one turn, with its timings (all optional)."""

    __tablename__ = "replies"
    __table_args__ = (
        UniqueConstraint("battle_id", "turn", "side"),
        CheckConstraint(_in("side", SIDES), name="side"),
        CheckConstraint("turn >= 1", name="turn"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    battle_id: Mapped[str] = mapped_column(ForeignKey("battles.id", ondelete="CASCADE"))
    turn: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    """1 for the battle's own query, 2, 3, ... for the turns of :class:`Turn`."""
    side: Mapped[str] = mapped_column(String(1))
    text: Mapped[str | None] = mapped_column(Text)
    ttft_s: Mapped[float | None] = mapped_column(Float)
    total_s: Mapped[float | None] = mapped_column(Float)
    chars: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    ttfab_s: Mapped[float | None] = mapped_column(Float)
    """Seconds to a spoken reply's first audio byte."""
    audio_s: Mapped[float | None] = mapped_column(Float)
    """A spoken reply's audio duration in seconds."""
    audio_sha256: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    """The sha256 of a spoken reply's WAV, kept content-addressed under the data folder."""
    notice: Mapped[str | None] = mapped_column(Text)
    """What the model was not given as asked (a clip cut to its ``max_audio_s``)."""


class Vote(Base):
    """The one vote of a battle."""

    __tablename__ = "votes"
    __table_args__ = (CheckConstraint(_in("winner", WINNERS), name="winner"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    battle_id: Mapped[str] = mapped_column(
        ForeignKey("battles.id", ondelete="CASCADE"), unique=True
    )
    winner: Mapped[str] = mapped_column(String(16))
    feedback_text: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    client_hash: Mapped[str | None] = mapped_column(String(CLIENT_HASH_LENGTH))
    """Salted hash of the client address the vote came from."""
    seconds_after_replies: Mapped[float | None] = mapped_column(Float)
    """Seconds from the end of the slower reply to the vote (a voter signal)."""


class ClientEvent(Base):
    """One thing a client address did (a battle, a vote, a transcription, a refused upload).

    Limits per address count these rows, so every worker process sees the same counts.
    """

    __tablename__ = "client_events"
    __table_args__ = (
        Index("ix_client_events_client_kind_time", "client_hash", "kind", "created_at"),
        Index("ix_client_events_kind_time", "kind", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    client_hash: Mapped[str] = mapped_column(String(CLIENT_HASH_LENGTH))
    kind: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]


class StoreSecret(Base):
    """A secret of this database, made once by migration 0003 (the salt of stored hashes)."""

    __tablename__ = "store_secrets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(128))


class HealthCheck(Base):
    """The one row ``/healthz`` rewrites: a write that commits proves the store takes writes."""

    __tablename__ = "health_checks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    checked_at: Mapped[datetime]


class PairCount(Base):
    """The counted votes of one unordered pair, kept up to date as votes arrive.

    One row per mode, number of turns and pair of models, ``model_first`` before
    ``model_second`` in Python's string order; a vote for ``model_first`` adds to
    ``first_wins``. Only votes on counted battles are in it. Maintained in each vote's own
    transaction by :mod:`lamarena.store.vote_counts` (migration 0007 filled it from the votes
    stored before), so a leaderboard reads O(pairs) rows instead of every vote.
    """

    __tablename__ = "pair_counts"

    mode: Mapped[str] = mapped_column(String(8), primary_key=True)
    n_turns: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    model_first: Mapped[str] = mapped_column(String(MODEL_NAME_LENGTH), primary_key=True)
    model_second: Mapped[str] = mapped_column(String(MODEL_NAME_LENGTH), primary_key=True)
    first_wins: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    second_wins: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    ties: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    both_bad: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class ClusterPairCount(Base):
    """:class:`PairCount` split by cluster, with inverse-probability weights.

    ``cluster`` is ``p:`` and the battle's participant, else ``s:`` and its session, else ``b:``
    and the battle id: the analysis layer's ``cluster="auto"`` grouping. ``*_ipw`` sum
    ``1 / sampling_probability`` over the row's battles whose probability is known;
    ``missing_probability`` counts those without one; ``min_probability`` and
    ``max_probability`` span the known ones (None when none is known).
    """

    __tablename__ = "cluster_pair_counts"

    mode: Mapped[str] = mapped_column(String(8), primary_key=True)
    n_turns: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    cluster: Mapped[str] = mapped_column(String(CLUSTER_LENGTH), primary_key=True)
    model_first: Mapped[str] = mapped_column(String(MODEL_NAME_LENGTH), primary_key=True)
    model_second: Mapped[str] = mapped_column(String(MODEL_NAME_LENGTH), primary_key=True)
    first_wins: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    second_wins: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    ties: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    both_bad: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    first_wins_ipw: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    second_wins_ipw: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    ties_ipw: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    both_bad_ipw: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    missing_probability: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    min_probability: Mapped[float | None] = mapped_column(Float)
    max_probability: Mapped[float | None] = mapped_column(Float)
