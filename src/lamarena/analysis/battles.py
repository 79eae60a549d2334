"""Battle tables: validation, aggregation into pair counts, and empirical win rates.

A battles DataFrame has one row per vote with columns ``model_a``, ``model_b`` (model names) and
``winner`` (``model_a``, ``model_b``, ``tie`` or ``both_bad``; DESIGN.md "Battle records"),
optionally ``chars_a, chars_b, ttft_a_s, ttft_b_s`` for style control. Ties and both-bad votes
count as half a win for each side everywhere in lamarena (as in the study, and Chiang et al. 2024).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from lamarena.analysis.ranking.bt_solver import main_component
from lamarena.errors import InvalidInputError

__all__ = [
    "REQUIRED_COLUMNS",
    "WINNERS",
    "PairCounts",
    "count_pairs",
    "pair_outcomes",
    "rated_pairs",
    "validate_battles",
    "win_rate_matrix",
    "win_rates",
]

WINNERS: tuple[str, ...] = ("model_a", "model_b", "tie", "both_bad")
"""The values of the ``winner`` column (DESIGN.md wire strings)."""

REQUIRED_COLUMNS: tuple[str, ...] = ("model_a", "model_b", "winner")
"""Columns every battles DataFrame must have."""


def validate_battles(battles: pd.DataFrame) -> pd.DataFrame:
    """Check a battles DataFrame and return it with string-typed model and winner columns.

    Args:
        battles: one row per battle, with at least :data:`REQUIRED_COLUMNS`.

    Returns:
        A copy whose ``model_a``, ``model_b`` and ``winner`` columns hold Python strings; other
        columns are kept as they are.

    Raises:
        InvalidInputError: not a DataFrame, a missing column, a missing or non-string model name,
            an unknown ``winner``, or a model paired with itself. The message names the column,
            the first offending row label and value, and how many rows are affected.
    """
    if not isinstance(battles, pd.DataFrame):
        raise InvalidInputError(
            f"battles must be a pandas DataFrame with columns {', '.join(REQUIRED_COLUMNS)}; "
            f"got {type(battles).__name__}"
        )
    missing = [column for column in REQUIRED_COLUMNS if column not in battles.columns]
    if missing:
        raise InvalidInputError(
            f"battles lack column(s) {', '.join(missing)}; expected {', '.join(REQUIRED_COLUMNS)}"
        )
    clean = battles.copy()
    for column in ("model_a", "model_b"):
        values = battles[column].to_numpy(dtype=object)
        bad = np.array([not isinstance(v, str) or not v.strip() for v in values], dtype=bool)
        _reject(battles, column, bad, "a model name (a non-empty string)")
        clean[column] = pd.Series(values, index=battles.index, dtype=object)
    winner = battles["winner"].to_numpy(dtype=object)
    bad = np.array([not isinstance(v, str) or v not in WINNERS for v in winner], dtype=bool)
    _reject(battles, "winner", bad, f"one of {', '.join(WINNERS)}")
    clean["winner"] = pd.Series([str(v) for v in winner], index=battles.index, dtype=object)
    same = clean["model_a"].to_numpy() == clean["model_b"].to_numpy()
    if same.any():
        row = int(np.flatnonzero(same)[0])
        raise InvalidInputError(
            f"battles pair a model with itself in {int(same.sum())} row(s) (first: row "
            f"{battles.index[row]!r}, model {clean['model_a'].iloc[row]!r}); a battle needs two "
            "different models"
        )
    return clean


def _reject(battles: pd.DataFrame, column: str, bad: NDArray[np.bool_], expected: str) -> None:
    """Raise naming the first bad row of ``column`` when any is bad."""
    if not bad.any():
        return
    row = int(np.flatnonzero(bad)[0])
    value = battles[column].iloc[row]
    raise InvalidInputError(
        f"column '{column}' has {int(bad.sum())} invalid value(s) (first: row "
        f"{battles.index[row]!r}, value {value!r}); expected {expected}"
    )


@dataclass(frozen=True, eq=False)
class PairCounts:
    """Battles aggregated per unordered pair of models (``first < second`` by sorted name).

    Attributes:
        models: every model name, sorted; indices below refer to this tuple.
        first: ``(P,)`` index of the first model of each pair that met at least once.
        second: ``(P,)`` index of the second model.
        first_wins: ``(P,)`` battles ``first`` won.
        second_wins: ``(P,)`` battles ``second`` won.
        ties: ``(P,)`` ties plus both-bad votes.
    """

    models: tuple[str, ...]
    first: NDArray[np.intp]
    second: NDArray[np.intp]
    first_wins: NDArray[np.float64]
    second_wins: NDArray[np.float64]
    ties: NDArray[np.float64]

    @property
    def battles(self) -> NDArray[np.float64]:
        """``(P,)`` battles per pair."""
        return self.first_wins + self.second_wins + self.ties

    @property
    def first_score(self) -> NDArray[np.float64]:
        """``(P,)`` wins of ``first`` plus half the ties: its Bradley-Terry score."""
        return self.first_wins + 0.5 * self.ties


def pair_outcomes(
    a: NDArray[np.intp], b: NDArray[np.intp], winner: NDArray[np.object_]
) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    """Whether the first (lower-index) model of each battle's pair won, and whether the second.

    Neither: a tie or a both-bad vote. ``a`` and ``b`` index the ``model_a`` and ``model_b``
    of each battle in one ordering of the models.
    """
    a_won = winner == "model_a"
    b_won = winner == "model_b"
    a_first = a < b
    return np.where(a_first, a_won, b_won), np.where(a_first, b_won, a_won)


def count_pairs(battles: pd.DataFrame) -> PairCounts:
    """Aggregate validated battles into per-pair win and tie counts.

    The counts depend only on the multiset of battles, not on their order or on which side a
    model was shown, so everything computed from them is invariant to both.

    Args:
        battles: output of :func:`validate_battles`.

    Returns:
        The counts of every pair that met at least once.
    """
    codes, names = pd.factorize(
        pd.concat([battles["model_a"], battles["model_b"]], ignore_index=True), sort=True
    )
    n = len(battles)
    a = codes[:n].astype(np.intp)
    b = codes[n:].astype(np.intp)
    n_models = len(names)
    first_won, second_won = pair_outcomes(a, b, battles["winner"].to_numpy(dtype=object))
    tied = ~(first_won | second_won)
    keys, index = np.unique(np.minimum(a, b) * n_models + np.maximum(a, b), return_inverse=True)
    size = keys.size
    return PairCounts(
        models=tuple(str(name) for name in names),
        first=(keys // max(n_models, 1)).astype(np.intp),
        second=(keys % max(n_models, 1)).astype(np.intp),
        first_wins=np.bincount(index, weights=first_won, minlength=size).astype(np.float64),
        second_wins=np.bincount(index, weights=second_won, minlength=size).astype(np.float64),
        ties=np.bincount(index, weights=tied, minlength=size).astype(np.float64),
    )


def rated_pairs(counts: PairCounts) -> PairCounts:
    """Restrict pair counts to the models whose Bradley-Terry MLE exists.

    Args:
        counts: output of :func:`count_pairs`.

    Returns:
        Counts over the main strongly connected component only (see
        :func:`lamarena.analysis.ranking.bt_solver.main_component`), re-indexed in name order; no
        models
        at all when no component has two or more.
    """
    n_models = len(counts.models)
    component = np.zeros(0, dtype=np.intp)
    if n_models:
        component = main_component(
            n_models,
            counts.first,
            counts.second,
            counts.first_wins + counts.ties,
            counts.second_wins + counts.ties,
            counts.battles,
        )
    if component.size < 2:
        component = np.zeros(0, dtype=np.intp)
    local = np.full(n_models, -1, dtype=np.intp)
    local[component] = np.arange(component.size)
    keep = (local[counts.first] >= 0) & (local[counts.second] >= 0)
    return PairCounts(
        models=tuple(counts.models[i] for i in component),
        first=local[counts.first[keep]],
        second=local[counts.second[keep]],
        first_wins=counts.first_wins[keep],
        second_wins=counts.second_wins[keep],
        ties=counts.ties[keep],
    )


def win_rates(battles: pd.DataFrame) -> pd.DataFrame:
    """Battles and empirical win rate of every model (ties and both-bad count half).

    Args:
        battles: one row per battle (validated here).

    Returns:
        Indexed by model (sorted), columns ``battles, wins, losses, ties, both_bad`` (int) and
        ``win_rate`` = (wins + (ties + both_bad) / 2) / battles.

    Raises:
        InvalidInputError: see :func:`validate_battles`.
    """
    clean = validate_battles(battles)
    sides = []
    for side, other in (("model_a", "model_b"), ("model_b", "model_a")):
        winner = clean["winner"]
        sides.append(
            pd.DataFrame(
                {
                    "model": clean[side].to_numpy(dtype=object),
                    "wins": (winner == side).to_numpy(dtype=np.int64),
                    "losses": (winner == other).to_numpy(dtype=np.int64),
                    "ties": (winner == "tie").to_numpy(dtype=np.int64),
                    "both_bad": (winner == "both_bad").to_numpy(dtype=np.int64),
                }
            )
        )
    table = pd.concat(sides, ignore_index=True).groupby("model", sort=True).sum()
    table.insert(0, "battles", table.sum(axis=1))
    table["win_rate"] = (table["wins"] + 0.5 * (table["ties"] + table["both_bad"])) / table[
        "battles"
    ]
    table.index = pd.Index([str(name) for name in table.index], name="model", dtype=object)
    return table


def win_rate_matrix(battles: pd.DataFrame) -> pd.DataFrame:
    """P(row model beats column model) from the votes between them (ties count half).

    Args:
        battles: one row per battle (validated here).

    Returns:
        A square DataFrame over the sorted models; NaN where two models never met (and on the
        diagonal). ``matrix + matrix.T == 1`` wherever they met.

    Raises:
        InvalidInputError: see :func:`validate_battles`.
    """
    counts = count_pairs(validate_battles(battles))
    size = len(counts.models)
    matrix = np.full((size, size), np.nan)
    rate = counts.first_score / counts.battles
    matrix[counts.first, counts.second] = rate
    matrix[counts.second, counts.first] = 1.0 - rate
    index = pd.Index(counts.models, dtype=object)
    return pd.DataFrame(matrix, index=index, columns=index)
