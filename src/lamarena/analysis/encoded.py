"""Battles as integer columns: what the ratings need, without one Python object per vote.

A leaderboard of a million votes needs, per battle, only its two models, its outcome, its
cluster (participant or session), its sampling probability, its reply mode and its depth.
:class:`EncodedBattles` holds exactly these as NumPy arrays (about 30 bytes a battle), built once
from a validated DataFrame (:func:`encode_frame`), from Arrow columns (:func:`encode_columns`,
what the columnar loader gives), or from counts already aggregated per (cluster, pair, outcome)
(:func:`encode_counts`, what the store keeps as votes arrive). A row may stand for several
identical battles (``count``); every statistic sums with those weights, so a million votes kept
as a few thousand rows give the same numbers.

Outcomes are coded ``0`` (model_a won), ``1`` (model_b won), ``2`` (tie), ``3`` (both bad).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from lamarena.analysis.battles import WINNERS, PairCounts, validate_battles
from lamarena.codes import first_appearance

__all__ = [
    "MODE_CODES",
    "OUTCOME_CODES",
    "EncodedBattles",
    "VoteCodes",
    "encode_columns",
    "encode_counts",
    "encode_frame",
]

OUTCOME_CODES: dict[str, int] = {winner: code for code, winner in enumerate(WINNERS)}
"""``winner`` wire string to outcome code (in the order of ``battles.WINNERS``)."""
MODE_CODES: dict[str, int] = {"text": 0, "speech": 1}
"""Reply mode to its code."""


@dataclass(frozen=True, eq=False)
class EncodedBattles:
    """Battles (or groups of identical battles) as integer columns.

    Attributes:
        models: every model name, sorted; ``a`` and ``b`` index it.
        a: ``(R,)`` index of each row's ``model_a``.
        b: ``(R,)`` index of each row's ``model_b``.
        outcome: ``(R,)`` outcome code (see the module docstring).
        count: ``(R,)`` battles each row stands for (1 for a row per battle).
        participant: ``(R,)`` participant code of each battle, in order of first appearance
            (-1: none); None for aggregated rows.
        session: ``(R,)`` session code of each battle, likewise; None for aggregated rows.
        cluster: ``(R,)`` for aggregated rows, the cluster of each row (numbered in the order
            the clusters first voted); None for rows of one battle each.
        cluster_by: what ``cluster`` holds: ``participant``, ``session`` or ``none`` (the
            ``auto`` clusters the counts were kept by); ``auto`` for rows of one battle each.
        probability: ``(R,)`` sampling probability (NaN where unknown); None for aggregated rows.
        mode: ``(R,)`` reply mode code (:data:`MODE_CODES`).
        n_turns: ``(R,)`` turns before the vote.
        frame: the validated per-battle DataFrame, when the battles came as one (style control
            needs its columns).
        missing_probability: for aggregated rows, how many battles have no sampling
            probability (the others' are all equal: counts cannot weight); None: all of them.
    """

    models: tuple[str, ...]
    a: NDArray[np.intp]
    b: NDArray[np.intp]
    outcome: NDArray[np.int8]
    count: NDArray[np.int64]
    participant: NDArray[np.intp] | None
    session: NDArray[np.intp] | None
    cluster: NDArray[np.intp] | None
    cluster_by: str
    probability: NDArray[np.float64] | None
    mode: NDArray[np.int8]
    n_turns: NDArray[np.int64]
    frame: pd.DataFrame | None = None
    missing_probability: int | None = None
    missing_rows: NDArray[np.int64] | None = None
    """For aggregated rows, each row's battles without a probability (None: unknown)."""
    cluster_kind: NDArray[np.int8] | None = None
    """For aggregated rows, what each row's cluster is: 0 participant, 1 session, 2 battle."""

    @property
    def n_battles(self) -> int:
        """Battles the rows stand for."""
        return int(self.count.sum())

    def take(self, mask: NDArray[np.bool_]) -> EncodedBattles:
        """The rows where ``mask`` holds (clusters renumbered in order of first appearance)."""
        frame = None if self.frame is None else self.frame[mask].reset_index(drop=True)
        return replace(
            self,
            a=self.a[mask],
            b=self.b[mask],
            outcome=self.outcome[mask],
            count=self.count[mask],
            participant=_renumber(self.participant, mask),
            session=_renumber(self.session, mask),
            cluster=_ranked(self.cluster, mask),
            cluster_by=(
                self.cluster_by if self.cluster_kind is None else _kept_by(self.cluster_kind[mask])
            ),
            probability=None if self.probability is None else self.probability[mask],
            mode=self.mode[mask],
            n_turns=self.n_turns[mask],
            frame=frame,
            missing_probability=self._missing_in(mask),
            missing_rows=None if self.missing_rows is None else self.missing_rows[mask],
            cluster_kind=None if self.cluster_kind is None else self.cluster_kind[mask],
        )

    def _missing_in(self, mask: NDArray[np.bool_]) -> int | None:
        """``missing_probability`` of the rows ``mask`` keeps (counts know it per row)."""
        if self.missing_rows is None:
            return self.missing_probability
        return int(self.missing_rows[mask].sum())

    def pair_counts(self) -> PairCounts:
        """The battles aggregated per unordered pair (as ``battles.count_pairs``)."""
        present = np.zeros(len(self.models), dtype=bool)
        present[self.a] = True
        present[self.b] = True
        local = np.cumsum(present) - 1
        n_models = int(present.sum())
        a = local[self.a]
        b = local[self.b]
        first_won, second_won = self.first_second()
        tied = ~(first_won | second_won)
        keys, index = np.unique(np.minimum(a, b) * n_models + np.maximum(a, b), return_inverse=True)
        size = keys.size
        weights = self.count.astype(np.float64)
        return PairCounts(
            models=tuple(name for name, kept in zip(self.models, present, strict=True) if kept),
            first=(keys // max(n_models, 1)).astype(np.intp),
            second=(keys % max(n_models, 1)).astype(np.intp),
            first_wins=_sums(index, weights * first_won, size),
            second_wins=_sums(index, weights * second_won, size),
            ties=_sums(index, weights * tied, size),
        )

    def first_second(self) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
        """Whether the pair's first (lower-index) model won each row, and whether the second."""
        a_won = self.outcome == 0
        b_won = self.outcome == 1
        a_first = self.a < self.b
        return np.where(a_first, a_won, b_won), np.where(a_first, b_won, a_won)

    def win_rates(self) -> pd.DataFrame:
        """Battles and win rate of every model, as :func:`~lamarena.analysis.battles.win_rates`."""
        size = len(self.models)
        count = self.count.astype(np.float64)
        columns: dict[str, NDArray[np.int64]] = {}
        for name, side_code, other_code in (("wins", 0, 1), ("losses", 1, 0)):
            won = count * (self.outcome == side_code)
            lost = count * (self.outcome == other_code)
            column = np.bincount(self.a, weights=won, minlength=size)
            column += np.bincount(self.b, weights=lost, minlength=size)
            columns[name] = column.astype(np.int64)
        for name, code in (("ties", 2), ("both_bad", 3)):
            weights = count * (self.outcome == code)
            column = np.bincount(self.a, weights=weights, minlength=size)
            column += np.bincount(self.b, weights=weights, minlength=size)
            columns[name] = column.astype(np.int64)
        table = pd.DataFrame(columns, index=pd.Index(self.models, name="model", dtype=object))
        battles = table.sum(axis=1)
        table.insert(0, "battles", battles)
        table = table[battles > 0]
        table["win_rate"] = (table["wins"] + 0.5 * (table["ties"] + table["both_bad"])) / table[
            "battles"
        ]
        return table

    def mode_counts(self) -> dict[str, int]:
        """Battles of each reply mode (every mode listed)."""
        return {mode: int(self.count[self.mode == code].sum()) for mode, code in MODE_CODES.items()}


def _sums(index: NDArray[np.intp], weights: NDArray[np.float64], size: int) -> NDArray[np.float64]:
    out: NDArray[np.float64] = np.bincount(index, weights=weights, minlength=size).astype(
        np.float64
    )
    return out


def _ranked(labels: NDArray[np.intp] | None, mask: NDArray[np.bool_]) -> NDArray[np.intp] | None:
    """The labels of the rows ``mask`` keeps, renumbered 0.. in their own order (key order)."""
    if labels is None:
        return None
    _, ranks = np.unique(labels[mask], return_inverse=True)
    out: NDArray[np.intp] = ranks.astype(np.intp).reshape(-1)
    return out


def _renumber(labels: NDArray[np.intp] | None, mask: NDArray[np.bool_]) -> NDArray[np.intp] | None:
    """The labels of the rows ``mask`` keeps, renumbered 0.. in order of first appearance.

    -1 (no label) stays -1.
    """
    if labels is None:
        return None
    return first_appearance(labels[mask])[0]


def _first_seen_codes(values: Any) -> NDArray[np.intp]:
    """Codes in order of first appearance; -1 for missing or empty values."""
    series = pd.Series(values, dtype=object) if not isinstance(values, pd.Series) else values
    present = series.notna().to_numpy() & (series.astype(str).str.len() > 0).to_numpy()
    codes = np.full(len(series), -1, dtype=np.intp)
    if present.any():
        found, _ = pd.factorize(series[present].astype(str), sort=False)
        codes[present] = found
    return codes


def encode_frame(battles: pd.DataFrame) -> EncodedBattles:
    """Encode a per-battle DataFrame (validated here, once).

    Args:
        battles: one row per battle (see :func:`~lamarena.analysis.battles.validate_battles`);
            ``participant_id``, ``session_id``, ``sampling_probability``, ``mode`` and
            ``n_turns`` are used when present.

    Raises:
        InvalidInputError: malformed battles or an unknown mode.
    """
    from lamarena.analysis.ranking.modes import mode_of

    clean = validate_battles(battles)
    n = len(clean)
    if "sampling_probability" in clean.columns:
        column = pd.to_numeric(clean["sampling_probability"], errors="coerce")
        probability = column.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        probability = np.full(n, np.nan)
    modes = np.asarray(mode_of(clean).map(MODE_CODES), dtype=np.int8)
    turns = np.ones(n, dtype=np.int64)
    if "n_turns" in clean.columns:
        turns = pd.to_numeric(clean["n_turns"], errors="coerce").fillna(1).to_numpy(dtype=np.int64)
    codes, names = pd.factorize(
        pd.concat([clean["model_a"], clean["model_b"]], ignore_index=True), sort=True
    )
    return EncodedBattles(
        models=tuple(str(name) for name in names),
        a=codes[:n].astype(np.intp),
        b=codes[n:].astype(np.intp),
        outcome=np.asarray(clean["winner"].map(OUTCOME_CODES), dtype=np.int8),
        count=np.ones(n, dtype=np.int64),
        participant=_first_seen_codes(_column(clean, "participant_id")),
        session=_first_seen_codes(_column(clean, "session_id")),
        cluster=None,
        cluster_by="auto",
        probability=probability,
        mode=modes,
        n_turns=turns,
        frame=clean,
    )


def _column(frame: pd.DataFrame, name: str) -> pd.Series:
    if name not in frame.columns:
        return pd.Series([None] * len(frame), index=frame.index, dtype=object)
    return frame[name].astype(object)


class VoteCodes(Protocol):
    """What :func:`encode_columns` reads: the columnar loader's ``VoteColumns`` has it all."""

    @property
    def models(self) -> Sequence[str]:
        """The model names the indices refer to (any order)."""

    @property
    def model_a(self) -> NDArray[np.intp]:
        """Index into ``models`` of each battle's model_a."""

    @property
    def model_b(self) -> NDArray[np.intp]:
        """The same for model_b."""

    @property
    def outcome(self) -> NDArray[np.int8]:
        """Outcome codes."""

    @property
    def participant(self) -> NDArray[np.intp]:
        """Participant codes in order of first appearance (-1: none)."""

    @property
    def session(self) -> NDArray[np.intp]:
        """Session codes in order of first appearance (-1: none)."""

    @property
    def probability(self) -> NDArray[np.float64]:
        """Sampling probabilities (NaN: unknown)."""

    @property
    def mode(self) -> NDArray[np.int8]:
        """Reply mode codes."""

    @property
    def n_turns(self) -> NDArray[np.int64]:
        """Turns before each vote."""


def encode_columns(columns: VoteCodes) -> EncodedBattles:
    """Encode battles whose columns are already codes (the columnar loader's output).

    Args:
        columns: one code per battle in each column (see :class:`VoteCodes`); the models are
            re-sorted here.
    """
    models = columns.models
    order = sorted(range(len(models)), key=lambda i: models[i])
    rank = np.empty(len(models), dtype=np.intp)
    rank[order] = np.arange(len(models))
    n = columns.model_a.size
    return EncodedBattles(
        models=tuple(models[i] for i in order),
        a=rank[columns.model_a],
        b=rank[columns.model_b],
        outcome=columns.outcome.astype(np.int8),
        count=np.ones(n, dtype=np.int64),
        participant=columns.participant.astype(np.intp),
        session=columns.session.astype(np.intp),
        cluster=None,
        cluster_by="auto",
        probability=columns.probability.astype(np.float64),
        mode=columns.mode.astype(np.int8),
        n_turns=columns.n_turns.astype(np.int64),
    )


def encode_counts(
    *,
    model_a: Sequence[str] | NDArray[np.object_],
    model_b: Sequence[str] | NDArray[np.object_],
    outcome: NDArray[np.int8],
    count: NDArray[np.int64],
    cluster_key: Sequence[str] | NDArray[np.object_],
    mode: NDArray[np.int8],
    n_turns: NDArray[np.int64],
    missing_probability: NDArray[np.int64] | None = None,
) -> EncodedBattles:
    """Encode counts aggregated per (cluster, pair, outcome): rows of identical battles.

    The clusters are those of ``cluster="auto"``: ``cluster_key`` is ``p:<participant>``,
    ``s:<session>`` or ``b:<battle>`` (a battle of its own). They are numbered in the sorted
    order of their keys (counts do not know which cluster voted first): a seeded bootstrap
    equals that of the battles they count when those battles' clusters first appear in key
    order, and is otherwise a different, equally valid draw.

    Args:
        model_a: first model of each row.
        model_b: second model of each row.
        outcome: outcome code of each row (relative to ``model_a`` and ``model_b``).
        count: battles each row stands for (rows with 0 are dropped).
        cluster_key: each row's cluster (see above).
        mode: reply mode code of each row.
        n_turns: turns before the vote of each row's battles.
        missing_probability: each row's battles without a sampling probability (the known
            ones must all be equal: counts cannot weight); None when no battle has one.
    """
    keep = np.asarray(count) > 0
    keys = pd.Series(np.asarray(cluster_key, dtype=object)[keep], dtype=object)
    prefix = keys.str.slice(0, 2).to_numpy(object)
    kind = np.where(prefix == "p:", 0, np.where(prefix == "s:", 1, 2)).astype(np.int8)
    by = _kept_by(kind)
    labels, _ = pd.factorize(keys, sort=True)
    codes, names = pd.factorize(
        pd.concat(
            [
                pd.Series(np.asarray(model_a, dtype=object)[keep], dtype=object),
                pd.Series(np.asarray(model_b, dtype=object)[keep], dtype=object),
            ],
            ignore_index=True,
        ),
        sort=True,
    )
    n = int(keep.sum())
    counts = np.asarray(count, dtype=np.int64)[keep]
    missing_rows = (
        counts if missing_probability is None else np.asarray(missing_probability, np.int64)[keep]
    )
    return EncodedBattles(
        models=tuple(str(name) for name in names),
        a=codes[:n].astype(np.intp),
        b=codes[n:].astype(np.intp),
        outcome=np.asarray(np.asarray(outcome)[keep], dtype=np.int8),
        count=counts,
        participant=None,
        session=None,
        cluster=labels.astype(np.intp),
        cluster_by=by,
        probability=None,
        mode=np.asarray(np.asarray(mode)[keep], dtype=np.int8),
        n_turns=np.asarray(n_turns, dtype=np.int64)[keep],
        missing_probability=int(missing_rows.sum()),
        missing_rows=missing_rows,
        cluster_kind=kind,
    )


def _kept_by(kind: NDArray[np.int8]) -> str:
    """What ``cluster="auto"`` clusters by, given each row's cluster kind."""
    if (kind == 0).any():
        return "participant"
    return "session" if (kind == 1).any() else "none"
