"""Batched bootstrap of Bradley-Terry ratings: all rounds resampled at once, solved at once.

Resampling battles with replacement (as FastChat and Talk Arena do, one optimiser call per round)
is equivalent to drawing the aggregated (pair, outcome) cell counts from a multinomial with the
observed cell frequencies, which is what :func:`resample_pairs` does for all rounds in one call;
the rounds are then solved together by the batched Newton method of ``bt_solver``, warm-started
from the full-data estimate. Style-controlled fits cannot be aggregated (the style features are
continuous), so :func:`resample_battles` draws per-battle multiplicities instead.

A resample can lose every loss of a model that lost rarely; its MLE then does not exist in that
round. Each round is therefore fitted with a weak Gaussian penalty ``ridge / 2 * |theta|^2``
(``BOOTSTRAP_RIDGE`` = 0.01, a N(0, 10^2) prior on natural-unit strengths, about 1,700 Elo points
of prior standard deviation), which moves a model with n battles by a relative amount of about
``ridge / (n p (1 - p))``: under 0.5% for 10 battles, a hundredth of an Elo point for a few
thousand. The rounds where a model's MLE would not exist are flagged exactly (graph reachability,
see :func:`lamarena.analysis.ranking.bt_solver.unbounded_flags`), and
:meth:`BootstrapResult.intervals`
reports an unbounded side as an infinite bound rather than the penalised number.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy import sparse
from threadpoolctl import threadpool_limits

from lamarena.analysis.battles import PairCounts
from lamarena.analysis.ranking.bt_solver import newton_pairs, unbounded_flags
from lamarena.analysis.ranking.style_control import BattleDesign, newton_battles, resampled_flags
from lamarena.errors import InvalidInputError
from lamarena.threads import CPU_THREADS

__all__ = [
    "BOOTSTRAP_RIDGE",
    "BootstrapResult",
    "Resampled",
    "percentile_bounds",
    "resample_battles",
    "resample_pairs",
]

BOOTSTRAP_RIDGE = 0.01
"""Penalty weight of the bootstrap refits (natural units); see the module docstring."""

_TOL = 1e-5
"""Newton stops a round after a step below this (natural units, 2e-5 Elo); with quadratic
convergence the remaining error is then far smaller."""
_CELL_BUDGET = 4_000_000
_DRAW_BUDGET = 2_000_000
_UNIFORM_PICKS = 10_000
"""Clusters beyond which a round's picks are drawn as uniform indices (see ``_cluster_picks``)."""
_POISSON_DRAWS = 200_000
"""Battles from which a round's multinomial is drawn by way of Poisson counts (see
``_multinomial``); below it the draws are those of every earlier version, seed for seed."""
_FIX_ROUNDS = 16
"""Rounds whose Poisson counts ``_multinomial`` corrects at once (a small, cache-sized array)."""


@dataclass(frozen=True, eq=False)
class Resampled:
    """Raw bootstrap output in natural units.

    Attributes:
        theta: ``(R, K)`` strengths (or ``(R, K + F)`` with style coefficients after them).
        above: ``(R, K)`` model's MLE unbounded above in the round.
        below: ``(R, K)`` model's MLE unbounded below in the round.
        unconverged: rounds where Newton did not meet its tolerance.
    """

    theta: NDArray[np.float64]
    above: NDArray[np.bool_]
    below: NDArray[np.bool_]
    unconverged: int


def resample_pairs(
    rated: PairCounts,
    theta: NDArray[np.float64],
    anchors: NDArray[np.bool_],
    n_battles: int,
    rounds: int,
    rng: np.random.Generator,
    *,
    ridge: float = BOOTSTRAP_RIDGE,
    cells_by_cluster: NDArray[np.float64] | sparse.csr_array | None = None,
    weighted_battles: tuple[NDArray[np.intp], NDArray[np.float64]] | None = None,
) -> Resampled:
    """Multinomial bootstrap of aggregated counts, solved in batches.

    The cells are (pair, first wins / second wins / tie) of the rated pairs plus one cell for all
    battles involving unrated models, so each round holds ``n_battles`` draws as a resample of the
    battles with replacement would. With ``cells_by_cluster`` (``(C, 3P)``, each cluster's
    cells, :func:`lamarena.analysis.ranking.clusters.cluster_cells`) a round resamples the C
    clusters
    with replacement instead, and its cells are the sum of the drawn clusters' (the cluster
    bootstrap: votes of one participant stay together). Cells may hold sums of battle weights
    (an inverse-probability-weighted fit): with ``cells_by_cluster`` the clusters' weighted
    cells, and without clusters ``weighted_battles``, each battle's cell (``3P`` for a battle
    with an unrated model) and weight, of which a round draws ``n_battles`` with replacement.

    Args:
        rated: counts between rated models.
        theta: ``(K,)`` full-data MLE, centred on the anchors.
        anchors: ``(K,)`` models each round is centred on (see ``_recentre``).
        n_battles: every battle, rated or not.
        rounds: bootstrap rounds.
        rng: random generator.
        ridge: penalty weight (see the module docstring).
        cells_by_cluster: resample these clusters instead of single battles.
        weighted_battles: resample these weighted battles (``n_battles`` of them).

    Returns:
        The rounds' strengths and flags.
    """
    size = len(rated.models)
    pairs = rated.first.size
    cells = np.concatenate([rated.first_wins, rated.second_wins, rated.ties])
    probs = np.append(cells, max(n_battles - cells.sum(), 0.0)) / n_battles
    nonzero = np.flatnonzero(probs > 0)
    probs_nz = probs[nonzero] / probs[nonzero].sum()
    games = np.zeros(size)
    np.add.at(games, rated.first, rated.battles)
    np.add.at(games, rated.second, rated.battles)
    reference = int(np.argmax(games))
    out = np.empty((rounds, size))
    above = np.empty((rounds, size), dtype=bool)
    below = np.empty((rounds, size), dtype=bool)
    width = probs.size if cells_by_cluster is None else max(probs.size, cells_by_cluster.shape[0])
    chunk = max(1, _CELL_BUDGET // max(size * size, width))
    if weighted_battles is not None:
        chunk = min(chunk, max(1, _DRAW_BUDGET // max(n_battles, 1)))

    cells_per_cluster = (
        _transposed_cells(cells_by_cluster)
        if cells_by_cluster is not None and sparse.issparse(cells_by_cluster)
        else None
    )

    def block(start: int, stop: int, generator: np.random.Generator) -> int:
        """Draw and solve rounds ``start:stop``; return how many did not converge."""
        count = stop - start
        if weighted_battles is not None:
            battle_cell, weight = weighted_battles
            drawn = generator.integers(0, battle_cell.size, size=(count, battle_cell.size))
            flat = np.arange(count)[:, None] * probs.size + battle_cell[drawn]
            draws: NDArray[np.float64] = (
                np.bincount(
                    flat.ravel(), weights=weight[drawn].ravel(), minlength=count * probs.size
                )
                .astype(np.float64)
                .reshape(count, probs.size)
            )
        elif cells_by_cluster is None:
            draws = np.zeros((count, probs.size))
            draws[:, nonzero] = _multinomial(generator, n_battles, probs_nz, count)
        else:
            picks = _cluster_picks(generator, cells_by_cluster.shape[0], count)
            if cells_per_cluster is not None:
                # (3P, C) @ (C, rounds): the clusters' rows must be contiguous for scipy
                per_round = cells_per_cluster @ np.ascontiguousarray(
                    picks.T, dtype=cells_per_cluster.dtype
                )
                draws = np.ascontiguousarray(per_round.T, dtype=np.float64)
            else:
                draws = picks.astype(np.float64) @ cells_by_cluster
        first_wins = draws[:, :pairs]
        second_wins = draws[:, pairs : 2 * pairs]
        ties = draws[:, 2 * pairs : 3 * pairs]
        result = newton_pairs(
            np.broadcast_to(theta, (count, size)),
            first_wins + 0.5 * ties,
            first_wins + second_wins + ties,
            rated.first,
            rated.second,
            ridge=ridge,
            tol=_TOL,
        )
        above[start:stop], below[start:stop] = unbounded_flags(
            first_wins + ties, second_wins + ties, rated.first, rated.second, size, reference
        )
        flagged = above[start:stop] | below[start:stop]
        out[start:stop] = _recentre(result.theta, flagged, theta, anchors)
        return int((~result.converged).sum())

    unconverged = _in_blocks(block, rounds, chunk, rng)
    return Resampled(theta=out, above=above, below=below, unconverged=unconverged)


def resample_battles(
    design: BattleDesign,
    phi: NDArray[np.float64],
    anchors: NDArray[np.bool_],
    n_battles: int,
    rounds: int,
    rng: np.random.Generator,
    *,
    ridge: float = BOOTSTRAP_RIDGE,
    clusters: tuple[NDArray[np.intp], int] | None = None,
) -> Resampled:
    """Bootstrap of the style-controlled fit by per-battle multiplicities, solved in batches.

    Each round draws ``n_battles`` indices with replacement over all battles; those that fall on
    battles involving unrated models are discarded, as in :func:`resample_pairs`. With
    ``clusters`` (the cluster of each battle of ``design``, and how many clusters there are) a
    round resamples the clusters with replacement, and each battle's multiplicity is its
    cluster's.

    Args:
        design: the battles between rated models.
        phi: ``(K + F,)`` full-data estimate, strengths centred on the anchors.
        anchors: ``(K,)`` models each round is centred on.
        n_battles: every battle, rated or not.
        rounds: bootstrap rounds.
        rng: random generator.
        ridge: penalty weight.
        clusters: resample these clusters instead of single battles.

    Returns:
        The rounds' strengths and style coefficients, and flags.
    """
    used = design.a.size
    size = design.n_models
    games = np.bincount(design.a, minlength=size) + np.bincount(design.b, minlength=size)
    reference = int(np.argmax(games))
    out = np.empty((rounds, phi.size))
    above = np.empty((rounds, size), dtype=bool)
    below = np.empty((rounds, size), dtype=bool)
    unconverged = 0
    chunk = max(1, _DRAW_BUDGET // max(n_battles, 1))
    for start in range(0, rounds, chunk):
        stop = min(start + chunk, rounds)
        count = stop - start
        if clusters is None:
            draws = rng.integers(0, n_battles, size=(count, n_battles))
            row = np.broadcast_to(np.arange(count)[:, None], draws.shape)
            keep = draws < used
            flat = row[keep] * used + draws[keep]
            weights = (
                np.bincount(flat, minlength=count * used).reshape(count, used).astype(np.float64)
            )
        else:
            labels, n_clusters = clusters
            picks = rng.multinomial(n_clusters, np.full(n_clusters, 1.0 / n_clusters), count)
            weights = picks[:, labels].astype(np.float64)
        result = newton_battles(
            design, np.broadcast_to(phi, (count, phi.size)), weights, ridge=ridge, tol=_TOL
        )
        unconverged += int((~result.converged).sum())
        above[start:stop], below[start:stop] = resampled_flags(design, weights, reference)
        flagged = above[start:stop] | below[start:stop]
        out[start:stop, size:] = result.theta[:, size:]
        out[start:stop, :size] = _recentre(result.theta[:, :size], flagged, phi[:size], anchors)
    return Resampled(theta=out, above=above, below=below, unconverged=unconverged)


def _in_blocks(
    block: Callable[[int, int, np.random.Generator], int],
    rounds: int,
    chunk: int,
    rng: np.random.Generator,
) -> int:
    """Run ``block`` over the rounds in blocks of ``chunk``, on every core; sum what it returns.

    The first block draws from ``rng`` itself and each later one from its own child of ``rng``
    (``Generator.spawn``: independent streams, fixed by the seed), so the rounds do not depend
    on how many threads ran them, and a bootstrap of one block draws exactly what it always
    did. BLAS runs single-threaded meanwhile: its threads only slow down the many small
    ``K x K`` solves (eight times at 100 models), and the blocks use the cores instead.
    """
    starts = list(range(0, rounds, chunk))
    generators = [rng, *rng.spawn(len(starts) - 1)] if len(starts) > 1 else [rng]
    jobs = [
        (start, min(start + chunk, rounds), generator)
        for start, generator in zip(starts, generators, strict=True)
    ]
    workers = min(len(jobs), CPU_THREADS)
    with threadpool_limits(limits=1, user_api="blas"):
        if workers <= 1:
            return sum(block(*job) for job in jobs)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return sum(pool.map(lambda job: block(*job), jobs))


def _multinomial(
    generator: np.random.Generator, n: int, probs: NDArray[np.float64], count: int
) -> NDArray[np.int64]:
    """``(count, K)`` draws from the multinomial of ``n`` trials over the cells ``probs``.

    Below :data:`_POISSON_DRAWS` trials this is ``Generator.multinomial``, which draws one
    binomial per cell. From there on (a million battles over 15,000 cells: 1.5 x 10^8 binomials
    per 10,000 rounds) each cell is drawn as an independent Poisson of mean ``n p_k`` and the
    round is then brought to exactly ``n`` trials, which is the same distribution at about half
    the cost. Given their total ``M``, independent Poisson counts are multinomial with ``M`` trials
    and probabilities ``p``. If ``M > n``, removing ``M - n`` of the ``M`` trials chosen uniformly
    without replacement leaves ``n`` of them, a multinomial with ``n`` trials. If ``M < n``,
    adding ``n - M`` independent categorical draws gives the same. NumPy draws neither way
    faster, so this is written here.
    """
    if n < _POISSON_DRAWS:
        drawn: NDArray[np.int64] = generator.multinomial(n, probs, size=count)
        return drawn
    counts: NDArray[np.int64] = generator.poisson(n * probs, size=(count, probs.size))
    cdf = np.cumsum(probs)
    cdf /= cdf[-1]
    for start in range(0, count, _FIX_ROUNDS):
        _to_total(generator, n, counts[start : start + _FIX_ROUNDS], cdf)
    return counts


def _to_total(
    generator: np.random.Generator, n: int, counts: NDArray[np.int64], cdf: NDArray[np.float64]
) -> None:
    """Bring every row of ``counts`` to ``n`` trials in place (see :func:`_multinomial`)."""
    size = cdf.size
    excess = counts.sum(axis=1) - n
    flat = counts.reshape(-1)  # a view: the rows are contiguous
    over = np.flatnonzero(excess > 0)
    if over.size:
        # number every trial of every row; remove uniformly chosen ones from their cells
        ends = np.cumsum(flat)
        firsts = np.where(over > 0, ends[over * size - 1], 0)
        removed = [
            first + generator.choice(n + extra, extra, replace=False)
            for first, extra in zip(firsts.tolist(), excess[over].tolist(), strict=True)
        ]
        np.subtract.at(flat, np.searchsorted(ends, np.concatenate(removed), side="right"), 1)
    under = np.flatnonzero(excess < 0)
    if under.size:
        rows = np.repeat(under, -excess[under])
        cells = np.searchsorted(cdf, generator.random(rows.size), side="right")
        np.add.at(flat, rows * size + np.minimum(cells, size - 1), 1)


def _cluster_picks(
    generator: np.random.Generator, n_clusters: int, count: int
) -> NDArray[np.int64]:
    """``(count, C)`` how often each round draws each cluster (C draws with replacement).

    A multinomial with equal probabilities; beyond :data:`_UNIFORM_PICKS` clusters it is drawn
    as ``C`` uniform indices and counted, the same distribution at a fiftieth of the cost
    (``Generator.multinomial`` draws one binomial per cluster).
    """
    if n_clusters <= _UNIFORM_PICKS:
        picks: NDArray[np.int64] = generator.multinomial(
            n_clusters, np.full(n_clusters, 1.0 / n_clusters), count
        )
        return picks
    counted: NDArray[np.int64] = np.empty((count, n_clusters), dtype=np.int64)
    for row in counted:  # one round at a time: its counts stay in the cache
        drawn = generator.integers(0, n_clusters, size=n_clusters, dtype=np.int32)
        row[:] = np.bincount(drawn, minlength=n_clusters)
    return counted


def _transposed_cells(cells: sparse.csr_array) -> sparse.csc_array:
    """``(3P, C)`` cells of each cluster, in single precision where that is exact.

    Counts of battles are whole numbers, and a round's cell sums at most ``C`` times the largest
    cluster's battles; below 2^24 every partial sum is exact in ``float32``, so the product gives
    the same numbers as in ``float64`` while reading half the memory. Weighted cells stay double.
    """
    transposed = sparse.csc_array(cells.T)
    data = transposed.data
    largest = float(np.max(np.asarray(cells.sum(axis=1)), initial=0.0))
    whole = bool(np.all(data >= 0) and np.array_equal(data, np.rint(data)))
    if whole and largest * cells.shape[0] < 2**24:
        return transposed.astype(np.float32)
    return transposed


def _recentre(
    theta: NDArray[np.float64],
    flagged: NDArray[np.bool_],
    estimate: NDArray[np.float64],
    anchors: NDArray[np.bool_],
) -> NDArray[np.float64]:
    """Centre each round like the full-data estimate: on the anchor models bounded in it.

    The full-data estimate averages zero over the anchors (the non-provisional models), so each
    round is shifted to average zero over them too. When some model's MLE is unbounded in a
    round, its penalised value there is arbitrary and must not move the others: the round is
    shifted so that its bounded anchors have the same mean as in the full-data estimate. The
    reference model of :func:`~lamarena.analysis.ranking.bt_solver.unbounded_flags` has the most
    battles,
    so it is an anchor and never flagged, and every round has one such model.
    """
    usable = anchors[None, :] & ~flagged
    count = usable.sum(axis=1)
    shift = np.where(usable, theta - estimate, 0.0).sum(axis=1) / np.maximum(count, 1)
    centred: NDArray[np.float64] = theta - shift[:, None]
    return centred


def percentile_bounds(
    samples: NDArray[np.float64],
    above: NDArray[np.bool_],
    below: NDArray[np.bool_],
    confidence: float,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Percentile interval per column, with unbounded rounds counted as infinite.

    A round flagged ``below`` counts as minus infinity, one flagged ``above`` as plus infinity
    (both: minus for the lower bound, plus for the upper). A bound whose quantile touches such a
    round is infinite: the data cannot bound the rating on that side at this confidence.

    Args:
        samples: ``(R, K)`` bootstrap values.
        above: ``(R, K)`` unbounded-above flags.
        below: ``(R, K)`` unbounded-below flags.
        confidence: two-sided coverage.

    Returns:
        ``(low, high)``, each ``(K,)``, possibly infinite.
    """
    if not 0.0 < confidence < 1.0:
        raise InvalidInputError(f"confidence must be between 0 and 1, got {confidence}")
    alpha = 1.0 - confidence
    low_values = np.where(below, -np.inf, np.where(above, np.inf, samples))
    high_values = np.where(above, np.inf, np.where(below, -np.inf, samples))
    return _quantile(low_values, alpha / 2.0), _quantile(high_values, 1.0 - alpha / 2.0)


def _quantile(values: NDArray[np.float64], q: float) -> NDArray[np.float64]:
    """Linear-interpolation quantile per column (as ``np.quantile``), exact with infinities."""
    ordered = np.sort(values, axis=0)
    position = (ordered.shape[0] - 1) * q
    lower = int(np.floor(position))
    upper = min(lower + 1, ordered.shape[0] - 1)
    fraction = position - lower
    low = ordered[lower]
    high = ordered[upper]
    finite = np.isfinite(low) & np.isfinite(high)
    mixed = np.where(np.isinf(low), low, high) if fraction > 0 else low
    with np.errstate(invalid="ignore"):
        blended = low + fraction * (high - low)
    result: NDArray[np.float64] = np.where(finite, blended, mixed)
    return result


@dataclass(frozen=True, eq=False)
class BootstrapResult:
    """Bootstrap distribution of Bradley-Terry ratings (Elo scale, centred as the fit).

    Attributes:
        samples: one row per round, one column per rated model (Elo). A model flagged in a round
            holds its penalised (finite) estimate there, and such a round is centred on the
            models bounded in it (see ``_recentre``).
        unbounded_above: rounds (rows) where a model's MLE would be plus infinity.
        unbounded_below: rounds where it would be minus infinity (both flags: detached).
        style_samples: one row per round, one column per style control (Elo points per unit).
        rounds: number of rounds.
        seed: the seed used.
        ridge: penalty weight of the refits (natural units).
        control: style controls.
        unconverged: rounds whose Newton iterations did not meet the tolerance (expected 0).
        cluster_by: what a round resampled: ``none`` (battles), ``participant`` or ``session``.
        n_clusters: how many units a round resampled (battles, participants or sessions).
    """

    samples: pd.DataFrame
    unbounded_above: pd.DataFrame
    unbounded_below: pd.DataFrame
    style_samples: pd.DataFrame
    rounds: int
    seed: int | None
    ridge: float
    control: tuple[str, ...]
    unconverged: int
    cluster_by: str = "none"
    n_clusters: int | None = None

    def intervals(self, confidence: float = 0.95) -> pd.DataFrame:
        """Percentile intervals of the ratings (Efron & Tibshirani 1993, ch. 13).

        Args:
            confidence: two-sided coverage.

        Returns:
            Indexed by model: ``ci_low, ci_high``; -inf / +inf where the resamples cannot bound
            the rating on that side (see :func:`percentile_bounds`).
        """
        low, high = percentile_bounds(
            self.samples.to_numpy(),
            self.unbounded_above.to_numpy(),
            self.unbounded_below.to_numpy(),
            confidence,
        )
        return pd.DataFrame({"ci_low": low, "ci_high": high}, index=self.samples.columns)

    def style_intervals(self, confidence: float = 0.95) -> pd.DataFrame:
        """Percentile intervals of the style coefficients (Elo points per unit)."""
        values = self.style_samples.to_numpy()
        flags = np.zeros_like(values, dtype=bool)
        low, high = percentile_bounds(values, flags, flags, confidence)
        return pd.DataFrame({"ci_low": low, "ci_high": high}, index=self.style_samples.columns)

    def covariance(self) -> pd.DataFrame:
        """Sample covariance of the ratings over rounds (Elo^2), for :func:`pairwise_tests`."""
        return self.samples.cov()

    @property
    def unbounded_rate(self) -> pd.Series:
        """Fraction of rounds in which each model's MLE would not exist."""
        either = self.unbounded_above.to_numpy() | self.unbounded_below.to_numpy()
        return pd.Series(either.mean(axis=0), index=self.samples.columns, name="unbounded_rate")
