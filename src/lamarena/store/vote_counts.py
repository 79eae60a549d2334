"""Counts of the votes, kept up to date as votes arrive (``pair_counts``, ``cluster_pair_counts``).

A live leaderboard over a million votes must not read every vote. The store keeps two small
tables of aggregates instead, changed in the same transaction as the change they reflect:

- ``pair_counts`` (:class:`~lamarena.store.tables.PairCount`): per ``mode`` (``text`` or
  ``speech``), ``n_turns`` (the battle's turns when it was voted on) and unordered pair of
  models, the votes for ``model_first``, for ``model_second``, the ties and the both-bad votes.
  ``model_first`` comes before ``model_second`` in Python's string order (compared in Python: a
  database's collation need not agree).
- ``cluster_pair_counts`` (:class:`~lamarena.store.tables.ClusterPairCount`): the same per
  cluster, ``p:`` and the battle's participant, else ``s:`` and its session, else ``b:`` and the
  battle id (the analysis layer's ``cluster="auto"``; a participant or session id of ``""``
  counts as none, as there), with each outcome's sum of ``1 / sampling_probability`` over the
  battles whose probability is known (``*_ipw``), the battles without one
  (``missing_probability``) and the smallest and largest known probability.

Only votes on counted battles (``battles.counted``) are in them. Who keeps them:

- :func:`lamarena.store.repo.record_vote` adds a vote (:func:`add_votes`);
- :func:`lamarena.store.repo.insert_battle_records` (imports) adds the imported votes;
- :func:`lamarena.store.repo.flag_battle` takes out the vote of a counted battle it flags, and
  :func:`lamarena.store.repo.add_turn` moves a voted battle to its new number of turns
  (:func:`remove_vote`, :func:`move_vote`); a row whose four counts fall to zero is deleted;
- migration 0007 filled them from the votes stored before it.

An upsert (``INSERT ... ON CONFLICT DO UPDATE SET n = n + excluded.n``) adds to a row, so
concurrent writers never lose an increment: PostgreSQL locks the row until the writer commits,
and SQLite lets one writer in at a time. Each writer locks the battle first, then the
``pair_counts`` rows, then the ``cluster_pair_counts`` rows, each in key order, so they cannot
deadlock. Reading the tables is in :mod:`lamarena.store.vote_counts_read`; recounting them
from the votes and checking them in :mod:`lamarena.store.vote_counts_check`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    String,
    Table,
    and_,
    case,
    delete,
    func,
    literal_column,
    or_,
    select,
    type_coerce,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from lamarena.store.tables import Battle, ClusterPairCount, PairCount, Turn, Vote

__all__ = [
    "CLUSTER_COLUMNS",
    "CLUSTER_KEY",
    "IPW_COLUMNS",
    "OUTCOMES",
    "PAIR_COLUMNS",
    "PAIR_KEY",
    "LockedBattle",
    "VoteContribution",
    "add_votes",
    "cluster_of",
    "counted_vote",
    "lock_battle",
    "move_vote",
    "remove_vote",
    "vote_contribution",
]

OUTCOMES = ("first_wins", "second_wins", "ties", "both_bad")
"""The four counts of a row, in this order."""
IPW_COLUMNS = tuple(f"{outcome}_ipw" for outcome in OUTCOMES)
"""Each outcome's sum of ``1 / sampling_probability`` (``cluster_pair_counts`` only)."""
PAIR_KEY = ("mode", "n_turns", "model_first", "model_second")
"""The primary key of ``pair_counts``."""
CLUSTER_KEY = ("mode", "n_turns", "cluster", "model_first", "model_second")
"""The primary key of ``cluster_pair_counts``."""
PAIR_COLUMNS = (*PAIR_KEY, *OUTCOMES)
"""The columns of ``pair_counts`` (and of
:func:`~lamarena.store.vote_counts_read.read_pair_counts`), in order."""
CLUSTER_COLUMNS = (
    *CLUSTER_KEY,
    *OUTCOMES,
    *IPW_COLUMNS,
    "missing_probability",
    "min_probability",
    "max_probability",
)
"""The columns of ``cluster_pair_counts`` (and of
:func:`~lamarena.store.vote_counts_read.read_cluster_pair_counts`), in order."""

_PAIRS: Table = PairCount.__table__  # type: ignore[assignment]
_CLUSTERS: Table = ClusterPairCount.__table__  # type: ignore[assignment]
_CHUNK = 1_000  # rows per upsert or insert statement

Key = tuple[Any, ...]


@dataclass(frozen=True)
class VoteContribution:
    """What one counted vote adds to the two tables.

    Attributes:
        mode: the battle's mode, ``text`` or ``speech``.
        n_turns: its number of turns.
        cluster: its cluster key (:func:`cluster_of`).
        model_first: the first of its two models in Python's string order.
        model_second: the other one.
        outcome: which count it adds to, one of :data:`OUTCOMES`.
        probability: its ``sampling_probability`` (None: not recorded).
    """

    mode: str
    n_turns: int
    cluster: str
    model_first: str
    model_second: str
    outcome: str
    probability: float | None

    @property
    def pair_key(self) -> Key:
        """Its ``pair_counts`` primary key (:data:`PAIR_KEY`)."""
        return (self.mode, self.n_turns, self.model_first, self.model_second)

    @property
    def cluster_key(self) -> Key:
        """Its ``cluster_pair_counts`` primary key (:data:`CLUSTER_KEY`)."""
        return (self.mode, self.n_turns, self.cluster, self.model_first, self.model_second)


def cluster_of(participant_id: str | None, session_id: str | None, battle_id: str) -> str:
    """The cluster of a battle: ``p:`` participant, else ``s:`` session, else ``b:`` battle."""
    if participant_id:
        return f"p:{participant_id}"
    if session_id:
        return f"s:{session_id}"
    return f"b:{battle_id}"


def _outcome(winner: str, swapped: bool) -> str:
    """The count a winner adds to; ``swapped``: ``model_a`` is the pair's second model."""
    if winner == "tie":
        return "ties"
    if winner == "both_bad":
        return "both_bad"
    return "first_wins" if (winner == "model_a") != swapped else "second_wins"


def vote_contribution(
    *,
    battle_id: str,
    mode: str,
    n_turns: int,
    model_a: str,
    model_b: str,
    winner: str,
    session_id: str | None,
    participant_id: str | None,
    sampling_probability: float | None,
) -> VoteContribution:
    """What a counted vote on a battle adds (the pair ordered in Python, the cluster chosen).

    Args:
        battle_id: the battle.
        mode: its mode.
        n_turns: its number of turns.
        model_a: its model shown as A.
        model_b: its model shown as B.
        winner: the vote, ``model_a``, ``model_b``, ``tie`` or ``both_bad``.
        session_id: its session, if any.
        participant_id: its participant, if any.
        sampling_probability: the chance its pair had when drawn, if recorded.

    Returns:
        The vote's contribution.
    """
    swapped = not model_a < model_b
    first, second = (model_b, model_a) if swapped else (model_a, model_b)
    return VoteContribution(
        mode=mode,
        n_turns=n_turns,
        cluster=cluster_of(participant_id, session_id, battle_id),
        model_first=first,
        model_second=second,
        outcome=_outcome(winner, swapped),
        probability=sampling_probability,
    )


@dataclass
class _Cell:
    """One row's values: the four counts, their weights and the probabilities seen."""

    counts: list[int] = field(default_factory=lambda: [0] * len(OUTCOMES))
    ipw: list[float] = field(default_factory=lambda: [0.0] * len(OUTCOMES))
    missing: int = 0
    low: float | None = None
    high: float | None = None

    def add(
        self,
        outcome: str,
        votes: int,
        ipw: float,
        known: int,
        low: float | None,
        high: float | None,
    ) -> None:
        """Add ``votes`` votes for ``outcome``, ``known`` of them with a probability."""
        index = OUTCOMES.index(outcome)
        self.counts[index] += votes
        self.ipw[index] += ipw
        self.missing += votes - known
        if low is not None:
            self.low = low if self.low is None else min(self.low, low)
        if high is not None:
            self.high = high if self.high is None else max(self.high, high)

    def add_vote(self, vote: VoteContribution) -> None:
        """Add one vote."""
        p = vote.probability
        self.add(vote.outcome, 1, 0.0 if p is None else 1.0 / p, int(p is not None), p, p)

    def is_empty(self) -> bool:
        """Whether it counts no vote (such a row is deleted, and is the same as no row)."""
        return not any(self.counts)

    def values(self, *, weighted: bool) -> dict[str, Any]:
        """Its value columns (with the weighted ones for ``cluster_pair_counts``)."""
        values: dict[str, Any] = dict(zip(OUTCOMES, self.counts, strict=True))
        if weighted:
            values.update(zip(IPW_COLUMNS, self.ipw, strict=True))
            values.update(
                missing_probability=self.missing,
                min_probability=self.low,
                max_probability=self.high,
            )
        return values

    @classmethod
    def from_row(cls, row: Any, *, weighted: bool) -> _Cell:
        """The cell of a stored row."""
        cell = cls(counts=[int(getattr(row, name)) for name in OUTCOMES])
        if weighted:
            cell.ipw = [float(getattr(row, name)) for name in IPW_COLUMNS]
            cell.missing = int(row.missing_probability)
            cell.low, cell.high = row.min_probability, row.max_probability
        return cell


Cells = dict[Key, _Cell]


def _aggregate(votes: Iterable[VoteContribution]) -> tuple[Cells, Cells]:
    """Sum votes into ``pair_counts`` and ``cluster_pair_counts`` cells."""
    pairs: Cells = {}
    clusters: Cells = {}
    for vote in votes:
        pairs.setdefault(vote.pair_key, _Cell()).add_vote(vote)
        clusters.setdefault(vote.cluster_key, _Cell()).add_vote(vote)
    return pairs, clusters


# -- keeping the tables -------------------------------------------------------------------------


def _extreme(stored: Any, added: Any, *, smallest: bool) -> Any:
    """The smaller (or larger) of a stored and an added probability, either possibly NULL."""
    better = added < stored if smallest else added > stored
    return case(
        (added.is_(None), stored),
        (or_(stored.is_(None), better), added),
        else_=stored,
    )


def _upsert(session: Session, table: Table, cells: Cells, *, weighted: bool) -> None:
    """Add ``cells`` to ``table``'s rows, inserting the rows not there yet, in key order."""
    if not cells:
        return
    keys = CLUSTER_KEY if weighted else PAIR_KEY
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(table)
    added = statement.excluded
    changes: dict[str, Any] = {
        name: table.c[name] + added[name]
        for name in (*OUTCOMES, *IPW_COLUMNS, "missing_probability")
        if name in table.c
    }
    if weighted:
        changes["min_probability"] = _extreme(
            table.c.min_probability, added.min_probability, smallest=True
        )
        changes["max_probability"] = _extreme(
            table.c.max_probability, added.max_probability, smallest=False
        )
    statement = statement.on_conflict_do_update(index_elements=list(keys), set_=changes)
    rows = [
        dict(zip(keys, key, strict=True)) | cells[key].values(weighted=weighted)
        for key in sorted(cells)
    ]
    for start in range(0, len(rows), _CHUNK):
        session.execute(statement, rows[start : start + _CHUNK])


def add_votes(session: Session, votes: Iterable[VoteContribution]) -> None:
    """Add counted votes to both tables (in the caller's transaction).

    Args:
        session: the database session of the transaction that stores the votes.
        votes: the votes' contributions (:func:`vote_contribution`); only counted votes.
    """
    pairs, clusters = _aggregate(votes)
    _upsert(session, _PAIRS, pairs, weighted=False)
    _upsert(session, _CLUSTERS, clusters, weighted=True)


def _where_key(table: Table, key: Key, names: Sequence[str]) -> ColumnElement[bool]:
    return and_(*(table.c[name] == value for name, value in zip(names, key, strict=True)))


def _take_pair(session: Session, vote: VoteContribution) -> None:
    """One vote less in its ``pair_counts`` row (deleted when no vote is left)."""
    pair = _where_key(_PAIRS, vote.pair_key, PAIR_KEY)
    column = _PAIRS.c[vote.outcome]
    session.execute(update(_PAIRS).where(pair).values({column: column - 1}))
    session.execute(delete(_PAIRS).where(pair, ~or_(*(_PAIRS.c[n] != 0 for n in OUTCOMES))))


def _take_cluster(session: Session, vote: VoteContribution) -> None:
    """Recompute the vote's ``cluster_pair_counts`` row from the votes its cell still holds."""
    where = _where_key(_CLUSTERS, vote.cluster_key, CLUSTER_KEY)
    # lock the row first, so a vote arriving meanwhile adds to what is written here
    session.execute(select(_CLUSTERS.c.mode).where(where).with_for_update())
    cell = _recount_cell(session, vote)
    if cell.is_empty():
        session.execute(delete(_CLUSTERS).where(where))
    else:
        session.execute(update(_CLUSTERS).where(where).values(cell.values(weighted=True)))


def remove_vote(session: Session, vote: VoteContribution) -> None:
    """Take a vote out of both tables once its battle no longer counts it (a flag).

    Call it after the change is flushed: the vote's ``cluster_pair_counts`` row is recomputed
    from the votes its cell still holds, so its probability range and weights are exact; its
    ``pair_counts`` count goes down by one. A row left without votes is deleted.

    Args:
        session: the database session of the transaction that makes the change.
        vote: what the vote added (:func:`counted_vote`, read before the change).
    """
    _take_pair(session, vote)
    _take_cluster(session, vote)


def move_vote(session: Session, vote: VoteContribution, moved: VoteContribution) -> None:
    """Move a counted vote to other rows (its battle got a turn after the vote).

    As :func:`remove_vote` then :func:`add_votes`, but the ``pair_counts`` rows first and then
    the ``cluster_pair_counts`` rows, each pair of rows in key order (the order every writer
    takes its locks in). Call it after the change is flushed.

    Args:
        session: the database session of the transaction that makes the change.
        vote: what the vote added (read before the change).
        moved: what it adds now.
    """
    pairs, clusters = _aggregate([moved])
    steps = (
        (vote.pair_key, moved.pair_key, _take_pair, _PAIRS, pairs, False),
        (vote.cluster_key, moved.cluster_key, _take_cluster, _CLUSTERS, clusters, True),
    )
    for old, new, take, table, cells, weighted in steps:
        if old < new:
            take(session, vote)
        _upsert(session, table, cells, weighted=weighted)
        if not old < new:
            take(session, vote)


# -- recounting from the votes ------------------------------------------------------------------


def _cluster_expression() -> Any:
    """SQL for :func:`cluster_of` over ``battles``."""
    participant = type_coerce(func.nullif(Battle.participant_id, ""), String)
    session = type_coerce(func.nullif(Battle.session_id, ""), String)
    return case(
        (participant.is_not(None), literal_column("'p:'", String) + participant),
        (session.is_not(None), literal_column("'s:'", String) + session),
        else_=literal_column("'b:'", String) + Battle.id,
    )


def _grouped_votes(*conditions: Any, n_turns: int | None = None) -> Select[Any]:
    """The counted votes grouped by mode, turns, cluster, ordered pair and winner."""
    later = (
        select(Turn.battle_id, func.count().label("later"))
        .group_by(Turn.battle_id)
        .subquery("later")
    )
    voted = (
        select(
            Battle.mode,
            (1 + func.coalesce(later.c.later, 0)).label("n_turns"),
            _cluster_expression().label("cluster"),
            Battle.model_a,
            Battle.model_b,
            Vote.winner,
            Battle.sampling_probability.label("p"),
        )
        .select_from(Vote)
        .join(Battle, Battle.id == Vote.battle_id)
        .outerjoin(later, later.c.battle_id == Battle.id)
        .where(Battle.counted, *conditions)
        .subquery("voted")
    )
    keys = [voted.c[name] for name in ("mode", "n_turns", "cluster", "model_a", "model_b")]
    grouped = select(
        *keys,
        voted.c.winner,
        func.count().label("votes"),
        func.sum(1.0 / voted.c.p).label("ipw"),
        func.count(voted.c.p).label("known"),
        func.min(voted.c.p).label("low"),
        func.max(voted.c.p).label("high"),
    ).group_by(*keys, voted.c.winner)
    if n_turns is not None:
        grouped = grouped.where(voted.c.n_turns == n_turns)
    return grouped


def _fold(rows: Iterable[Any]) -> tuple[Cells, Cells]:
    """Fold grouped votes (ordered pairs) into the cells of both tables (unordered pairs)."""
    pairs: Cells = {}
    clusters: Cells = {}
    for row in rows:
        swapped = not row.model_a < row.model_b
        first, second = (row.model_b, row.model_a) if swapped else (row.model_a, row.model_b)
        outcome = _outcome(row.winner, swapped)
        votes = int(row.votes)
        pairs.setdefault((row.mode, int(row.n_turns), first, second), _Cell()).add(
            outcome, votes, 0.0, votes, None, None
        )
        key = (row.mode, int(row.n_turns), row.cluster, first, second)
        clusters.setdefault(key, _Cell()).add(
            outcome, votes, float(row.ipw or 0.0), int(row.known), row.low, row.high
        )
    return pairs, clusters


def _in_cluster(cluster: str) -> Any:
    """Battles of a cluster: its key's own column first (indexed for sessions and battles)."""
    kind, ident = cluster[:2], cluster[2:]
    column = {"p:": Battle.participant_id, "s:": Battle.session_id, "b:": Battle.id}[kind]
    return and_(column == ident, _cluster_expression() == cluster)


def _recount_cell(session: Session, vote: VoteContribution) -> _Cell:
    """The ``cluster_pair_counts`` cell of ``vote`` as the stored votes make it now."""
    pair = or_(
        and_(Battle.model_a == vote.model_first, Battle.model_b == vote.model_second),
        and_(Battle.model_a == vote.model_second, Battle.model_b == vote.model_first),
    )
    statement = _grouped_votes(
        Battle.mode == vote.mode, pair, _in_cluster(vote.cluster), n_turns=vote.n_turns
    )
    _, clusters = _fold(session.execute(statement))
    return clusters.get(vote.cluster_key, _Cell())


@dataclass(frozen=True)
class LockedBattle:
    """What the tables need of a battle, read with the battle locked (:func:`lock_battle`).

    Attributes:
        id: the battle id.
        session_id: its session, if any.
        participant_id: its participant, if any.
        mode: ``text`` or ``speech``.
        model_a: its model shown as A.
        model_b: its model shown as B.
        sampling_probability: the chance its pair had when drawn, if recorded.
        counted: whether its vote counts.
        n_turns: its number of turns now.
    """

    id: str
    session_id: str | None
    participant_id: str | None
    mode: str
    model_a: str
    model_b: str
    sampling_probability: float | None
    counted: bool
    n_turns: int

    def vote(self, winner: str) -> VoteContribution:
        """What a vote ``winner`` on this battle adds (when it is counted)."""
        return vote_contribution(
            battle_id=self.id,
            mode=self.mode,
            n_turns=self.n_turns,
            model_a=self.model_a,
            model_b=self.model_b,
            winner=winner,
            session_id=self.session_id,
            participant_id=self.participant_id,
            sampling_probability=self.sampling_probability,
        )


def lock_battle(session: Session, battle_id: str) -> LockedBattle | None:
    """Read a battle for the tables, locking it until the transaction ends (None: no battle).

    ``SELECT ... FOR UPDATE`` on PostgreSQL (SQLite's writer holds the write lock already), so a
    concurrent vote, flag or turn on the same battle waits and then sees this one's change.
    Its turns are counted by a statement of their own once the lock is held: under ``READ
    COMMITTED`` a statement that waited for the lock still reads other tables as they were
    when it began, and would miss a turn added by the transaction it waited for.
    """
    row = session.execute(
        select(
            Battle.id,
            Battle.session_id,
            Battle.participant_id,
            Battle.mode,
            Battle.model_a,
            Battle.model_b,
            Battle.sampling_probability,
            Battle.counted,
        )
        .where(Battle.id == battle_id)
        .with_for_update()
    ).one_or_none()
    if row is None:
        return None
    later = session.scalar(select(func.count()).where(Turn.battle_id == battle_id)) or 0
    return LockedBattle(**row._asdict(), n_turns=1 + int(later))


def counted_vote(session: Session, battle_id: str) -> VoteContribution | None:
    """Lock a battle and say what its vote adds now (None: no battle, no vote, not counted)."""
    battle = lock_battle(session, battle_id)
    if battle is None or not battle.counted:
        return None
    winner = session.scalar(select(Vote.winner).where(Vote.battle_id == battle_id))
    return None if winner is None else battle.vote(winner)
