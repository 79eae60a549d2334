"""Votes drawn under an adaptive pair design, and the ratings a uniform design targets.

:func:`draw_adaptively` is the loop a server runs: fit the design (see
:mod:`lamarena.analysis.ranking.pair_design`) to the votes so far, draw the next block of pairs,
collect
their votes, refresh. :func:`simulate_battles <lamarena.simulation.simulate_battles>` uses
it for ``--sampling balanced|active``; :func:`simulate_pair_design` draws the votes from any table
of win probabilities, Bradley-Terry or not, to check what inverse-probability weighting promises:
when the model is misspecified the unweighted fit of adaptively sampled votes targets a
different quantity than uniform sampling would (:func:`uniform_design_ratings`), and the
weighted fit does not.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from lamarena.analysis.ranking.bt_solver import ELO_CENTER, ELO_SCALE, newton_pairs
from lamarena.analysis.ranking.pair_design import (
    DEFAULT_FLOOR,
    DEFAULT_FOCUS,
    DESIGNS,
    Design,
    Pair,
    PairTally,
    all_pairs,
    pair_probabilities,
)
from lamarena.errors import InvalidInputError

__all__ = ["draw_adaptively", "simulate_pair_design", "uniform_design_ratings"]

Play = Callable[[int, Sequence[Pair]], NDArray[np.float64]]
"""``play(start, pairs)``: vote units ``start, start + 1, ...`` on ``pairs``; return each unit's
score of its pair's first model (wins plus half the ties, summed over the unit's battles)."""


def draw_adaptively(
    rng: np.random.Generator,
    models: Sequence[str],
    n_units: int,
    play: Play,
    *,
    sampling: Design,
    refresh_every: int,
    unit_battles: NDArray[np.float64] | None = None,
    floor: float = DEFAULT_FLOOR,
    focus: int = DEFAULT_FOCUS,
) -> tuple[list[Pair], NDArray[np.float64]]:
    """Draw one pair per unit (a battle, or a participant's battles), refreshing the design.

    Args:
        rng: the generator of the pair draws (``play`` may use it too).
        models: the models to pair.
        n_units: how many units.
        play: votes the units of a block (see :data:`Play`).
        sampling: the design.
        refresh_every: units per block, between two refreshes of the design (at least 1).
        unit_battles: battles per unit (default one each).
        floor: exposure floor of ``active``.
        focus: top places of ``active``.

    Returns:
        Each unit's pair, and its probability when it was drawn.

    Raises:
        InvalidInputError: ``refresh_every`` below 1, or see
            :func:`~lamarena.analysis.ranking.pair_design.pair_probabilities`.
    """
    if refresh_every < 1:
        raise InvalidInputError(f"refresh_every must be at least 1, got {refresh_every}")
    pairs = all_pairs(models)
    sizes = np.ones(n_units) if unit_battles is None else np.asarray(unit_battles, dtype=float)
    battles = np.zeros(len(pairs))
    scored = np.zeros(len(pairs))
    chosen: list[Pair] = []
    chance = np.zeros(n_units)
    for start in range(0, n_units, refresh_every):
        tallies = {pairs[j]: PairTally(battles[j], scored[j]) for j in np.flatnonzero(battles)}
        design = pair_probabilities(sampling, models, tallies, floor=floor, focus=focus)
        p = np.array([design[pair] for pair in pairs])
        stop = min(start + refresh_every, n_units)
        pick = rng.choice(len(pairs), size=stop - start, p=p / p.sum())
        block = [pairs[j] for j in pick]
        first_score = play(start, block)
        np.add.at(battles, pick, sizes[start:stop])
        np.add.at(scored, pick, first_score)
        chosen.extend(block)
        chance[start:stop] = p[pick]
    return chosen, chance


def _check_win_probability(win_probability: pd.DataFrame) -> NDArray[np.float64]:
    """The matrix as an array, after checking it is a complementary win-probability table."""
    if not isinstance(win_probability, pd.DataFrame) or list(win_probability.index) != list(
        win_probability.columns
    ):
        raise InvalidInputError(
            "win_probability must be a square DataFrame with the same models as rows and columns"
        )
    matrix = win_probability.to_numpy(dtype=np.float64)
    off = ~np.eye(len(matrix), dtype=bool)
    if len(matrix) < 2 or not np.isfinite(matrix[off]).all():
        raise InvalidInputError("win_probability needs two models or more and finite values")
    if (matrix[off] < 0).any() or (matrix[off] > 1).any():
        raise InvalidInputError("win_probability values must lie in [0, 1]")
    if not np.allclose((matrix + matrix.T)[off], 1.0):
        raise InvalidInputError("win_probability must satisfy P(a beats b) + P(b beats a) = 1")
    return matrix


def simulate_pair_design(
    win_probability: pd.DataFrame,
    n_battles: int,
    *,
    sampling: Design = "uniform",
    seed: int | None = None,
    refresh_every: int = 50,
    floor: float = DEFAULT_FLOOR,
    focus: int = DEFAULT_FOCUS,
) -> pd.DataFrame:
    """Battles drawn under a design from a table of true win probabilities (no ties).

    Args:
        win_probability: ``P(row beats column)``, square over the models (the diagonal is
            ignored); need not follow Bradley-Terry.
        n_battles: how many battles.
        sampling: ``uniform``, ``balanced`` or ``active``.
        seed: seed of the ``numpy.random.Generator``.
        refresh_every: battles between two refreshes of the design.
        floor: exposure floor of ``active``.
        focus: top places of ``active``.

    Returns:
        One row per battle: ``model_a, model_b, winner, sampling_probability``.

    Raises:
        InvalidInputError: a malformed table, a negative count, an unknown sampling or a bad
            ``refresh_every``.
    """
    matrix = _check_win_probability(win_probability)
    if n_battles < 0:
        raise InvalidInputError(f"n_battles must be 0 or more, got {n_battles}")
    if sampling not in DESIGNS:
        raise InvalidInputError(f"unknown sampling {sampling!r}; use {', '.join(DESIGNS)}")
    names = [str(name) for name in win_probability.index]
    position = {name: i for i, name in enumerate(names)}
    rng = np.random.default_rng(seed)
    rows: list[tuple[str, str, str]] = []

    def play(_start: int, pairs: Sequence[Pair]) -> NDArray[np.float64]:
        scores = np.zeros(len(pairs))
        swaps = rng.random(len(pairs)) < 0.5
        draws = rng.random(len(pairs))
        for k, ((first, second), swap, u) in enumerate(zip(pairs, swaps, draws, strict=True)):
            first_wins = bool(u < matrix[position[first], position[second]])
            scores[k] = float(first_wins)
            a, b = (second, first) if swap else (first, second)
            rows.append((a, b, "model_a" if first_wins != swap else "model_b"))
        return scores

    _, chance = draw_adaptively(
        rng,
        names,
        n_battles,
        play,
        sampling=sampling,
        refresh_every=refresh_every,
        floor=floor,
        focus=focus,
    )
    frame = pd.DataFrame(rows, columns=["model_a", "model_b", "winner"], dtype=object)
    frame["sampling_probability"] = chance
    return frame


def uniform_design_ratings(win_probability: pd.DataFrame) -> pd.Series:
    """The Bradley-Terry ratings a uniform design converges to (Elo, mean 1000).

    The limit of the maximum-likelihood fit when every pair gets the same share of votes: the
    best Bradley-Terry approximation of the table with equal weight on every pair (for a
    Bradley-Terry table, its own ratings).

    Raises:
        InvalidInputError: a malformed table.
    """
    matrix = _check_win_probability(win_probability)
    size = len(matrix)
    first, second = np.triu_indices(size, 1)
    scored = matrix[first, second][None, :]
    result = newton_pairs(
        np.zeros((1, size)),
        scored,
        np.ones_like(scored),
        first.astype(np.intp),
        second.astype(np.intp),
        tol=1e-12,
    )
    theta = result.theta[0]
    names = pd.Index([str(name) for name in win_probability.index], dtype=object, name="model")
    return pd.Series(ELO_CENTER + ELO_SCALE * (theta - theta.mean()), index=names, name="rating")
