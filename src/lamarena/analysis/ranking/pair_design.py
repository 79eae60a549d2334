"""Pair designs: each pair's chance of the next battle, and the fit that undoes an unequal design.

A *design* gives every unordered pair of models a probability of being drawn for the next battle.
``uniform`` gives each of the ``P = K (K - 1) / 2`` pairs ``1 / P``; ``balanced`` favours pairs
with few battles (weight ``1 / (1 + n)``); ``active`` (:func:`active_pair_probabilities`) puts the
votes where they shrink the uncertainty that matters, with an exposure floor for every pair:

    p_pair = floor / P + (1 - floor) q_pair,

where ``q`` is proportional to how much one more vote on the pair shrinks the intervals that
matter: the ratings of the models in contention for the top ``focus`` places, and the
differences between pairs of them whose order is still in doubt. From a ridge-penalised
Bradley-Terry fit of the votes so far (the penalty is a normal prior, so the fit exists from the
first vote on), with posterior covariance ``S = (L + I / prior_sd^2)^-1`` (``L`` the Fisher
information, a Laplacian with pair weights ``n p (1 - p)``), one vote on pair ``j`` (direction
``d_j = e_a - e_b``, weight ``w_j = p_j (1 - p_j)``) lowers the variance of a contrast ``c`` by
``w_j (c' S d_j)^2 / (1 + w_j d_j' S d_j)`` (Sherman-Morrison). The contrasts are each model's
centred rating, weighted by its chance of ranking in the top ``focus`` (normal approximation
around the midpoint between the ``focus``-th and the next estimate), and each difference of two
models, weighted by ``2 Phi(-|r_a - r_b| / sd)`` (near 1 when the intervals overlap, near 0 once
the order is settled) times the larger top chance of the two. Thin pairs (few votes, large
variance) gain most, as balanced sampling intends; a pair far from the top or already settled
keeps only its floor. This is an A-optimal criterion on the contrasts of interest (Atkinson,
Donev & Tobias 2007, ch. 10) applied sequentially, in the spirit of the active sampling of
Chiang et al. (2024, section 5).

An adaptive design changes which pairs the votes come from. When the Bradley-Terry model holds,
the maximum-likelihood fit is still consistent (the design is ignorable for the likelihood), but
when it does not (preferences that are not transitive on the logit scale, voters who disagree),
the fit is the best Bradley-Terry approximation *under the design's pair mix*, which then differs
from the uniform design's. Weighting each battle by the inverse of its recorded probability
(Horvitz & Thompson 1952; normalised as Hajek 1971) makes the weighted score equations those of
the uniform design in expectation, at every step of an adaptive design (a martingale argument;
Hadad et al. 2021), so :func:`fit_weighted_bradley_terry` with :func:`ipw_weights` targets the
same ratings as uniform sampling. The floor bounds the weights by ``1 / floor``.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from scipy.special import expit
from scipy.stats import norm

from lamarena.analysis.battles import PairCounts, pair_outcomes, validate_battles
from lamarena.analysis.ranking.bt_solver import (
    ELO_CENTER,
    ELO_SCALE,
    laplacian,
    main_component,
    newton_pairs,
    pseudo_inverse_laplacian,
    tie_only_models,
)
from lamarena.errors import InsufficientData, InvalidInputError

__all__ = [
    "DEFAULT_FLOOR",
    "DEFAULT_FOCUS",
    "DEFAULT_PRIOR_SD",
    "DESIGNS",
    "Design",
    "Pair",
    "PairTally",
    "WeightedFitResult",
    "WeightedPairFit",
    "active_pair_probabilities",
    "all_pairs",
    "balanced_pair_probabilities",
    "battle_cells",
    "fit_weighted_bradley_terry",
    "fit_weighted_pairs",
    "ipw_weights",
    "pair_probabilities",
    "uniform_pair_probabilities",
    "weighted_cells",
]

Pair = tuple[str, str]
"""An unordered pair of models: the two names sorted."""

Design = Literal["uniform", "balanced", "active"]
"""How the pair of the next battle is drawn."""

DESIGNS: tuple[Design, ...] = ("uniform", "balanced", "active")

DEFAULT_FLOOR = 0.2
"""Share of the draws spread uniformly over every pair under ``active`` sampling."""

DEFAULT_FOCUS = 3
"""Top places whose ratings the active design sharpens first."""

DEFAULT_PRIOR_SD = 2.0
"""Prior standard deviation of a strength (natural log-odds; about 350 Elo) of the active fit."""


class PairTally(NamedTuple):
    """Votes of one unordered pair: battles, and the score of its first (sorted) model.

    ``first_score`` counts wins plus half the ties and both-bad votes, as the ratings do.
    """

    battles: float
    first_score: float


def all_pairs(models: Sequence[str]) -> list[Pair]:
    """Every unordered pair of the distinct names, in sorted order.

    Raises:
        InvalidInputError: fewer than two distinct models.
    """
    names = sorted(set(models))
    if len(names) < 2:
        raise InvalidInputError(f"a battle needs at least two models; got {names}")
    return list(itertools.combinations(names, 2))


def uniform_pair_probabilities(models: Sequence[str]) -> dict[Pair, float]:
    """Every pair has the same chance ``1 / P``."""
    pairs = all_pairs(models)
    return dict.fromkeys(pairs, 1.0 / len(pairs))


def balanced_pair_probabilities(
    models: Sequence[str], counts: Mapping[Pair, float]
) -> dict[Pair, float]:
    """Pairs with few battles first: weight ``1 / (1 + n)``, normalised (missing pairs count 0)."""
    pairs = all_pairs(models)
    weights = np.array([1.0 / (1.0 + max(0.0, float(counts.get(pair, 0)))) for pair in pairs])
    return dict(zip(pairs, (weights / weights.sum()).tolist(), strict=True))


def active_pair_probabilities(
    models: Sequence[str],
    tallies: Mapping[Pair, PairTally],
    *,
    floor: float = DEFAULT_FLOOR,
    focus: int = DEFAULT_FOCUS,
    prior_sd: float = DEFAULT_PRIOR_SD,
) -> dict[Pair, float]:
    """The active design: votes where they shrink the doubtful rating differences most.

    See the module docstring for the criterion. Every pair keeps at least ``floor / P``.

    Args:
        models: the models to pair (duplicates count once).
        tallies: votes so far per pair (keys sorted as :data:`Pair`); pairs with a model not in
            ``models`` are ignored, missing pairs have no votes.
        floor: share of the probability spread uniformly over all pairs, in (0, 1].
        focus: how many top places the design works for (at least 1; ``K`` or more: every
            model's rating alike).
        prior_sd: prior standard deviation of a strength (natural units) of the quick fit.

    Returns:
        The probability of each pair, summing to 1.

    Raises:
        InvalidInputError: fewer than two models, a floor outside (0, 1], a focus below 1, a
            prior sd that is not positive, or a tally with negative battles or a score outside
            [0, battles].
    """
    pairs = all_pairs(models)
    if not 0.0 < floor <= 1.0 or not np.isfinite(floor):
        raise InvalidInputError(f"floor must be in (0, 1], got {floor}")
    if focus < 1:
        raise InvalidInputError(f"focus must be at least 1, got {focus}")
    if not prior_sd > 0 or not np.isfinite(prior_sd):
        raise InvalidInputError(f"prior_sd must be a positive number, got {prior_sd}")
    names = sorted({name for pair in pairs for name in pair})
    index = {name: i for i, name in enumerate(names)}
    size = len(names)
    first = np.array([index[a] for a, _ in pairs], dtype=np.intp)
    second = np.array([index[b] for _, b in pairs], dtype=np.intp)
    battles = np.zeros(len(pairs))
    scored = np.zeros(len(pairs))
    for position, pair in enumerate(pairs):
        tally = tallies.get(pair)
        if tally is None:
            continue
        n, s = float(tally.battles), float(tally.first_score)
        if not (np.isfinite(n) and np.isfinite(s) and n >= 0 and 0 <= s <= n):
            raise InvalidInputError(
                f"pair {pair}: {n} battles with score {s}; need battles >= 0 and 0 <= score <= "
                "battles"
            )
        battles[position], scored[position] = n, s
    ridge = 1.0 / prior_sd**2
    theta = newton_pairs(
        np.zeros((1, size)), scored[None, :], battles[None, :], first, second, ridge=ridge
    ).theta[0]
    prob = expit(theta[first] - theta[second])
    vote_weight = prob * (1.0 - prob)
    precision = laplacian(size, first, second, battles * vote_weight) + ridge * np.eye(size)
    covariance = np.linalg.inv(precision)
    directions = np.zeros((len(pairs), size))
    directions[np.arange(len(pairs)), first] = 1.0
    directions[np.arange(len(pairs)), second] = -1.0
    centred = np.eye(size) - 1.0 / size
    spread = np.sqrt(np.clip(np.diag(centred @ covariance @ centred), 1e-12, None))
    contender = np.ones(size)
    if focus < size:
        ranked = np.sort(theta)[::-1]
        threshold = 0.5 * (ranked[focus - 1] + ranked[focus])
        contender = norm.cdf((theta - threshold) / spread)
    difference_sd = np.sqrt(np.einsum("pk,kl,pl->p", directions, covariance, directions))
    doubt = 2.0 * norm.sf(np.abs(theta[first] - theta[second]) / difference_sd)
    contrasts = np.vstack([centred, directions])
    interest = np.concatenate([contender, doubt * np.maximum(contender[first], contender[second])])
    cross = contrasts @ covariance @ directions.T  # (contrasts, candidate pairs)
    gain = vote_weight * (interest @ np.square(cross)) / (1.0 + vote_weight * difference_sd**2)
    total = float(gain.sum())
    share = gain / total if total > 0 and np.isfinite(total) else np.full(len(pairs), 0.0)
    if not share.any():
        share = np.full(len(pairs), 1.0 / len(pairs))
    probabilities = floor / len(pairs) + (1.0 - floor) * share
    probabilities /= probabilities.sum()
    return dict(zip(pairs, probabilities.tolist(), strict=True))


def pair_probabilities(
    design: Design,
    models: Sequence[str],
    tallies: Mapping[Pair, PairTally],
    *,
    floor: float = DEFAULT_FLOOR,
    focus: int = DEFAULT_FOCUS,
) -> dict[Pair, float]:
    """The probability of each pair under ``design``, given the votes so far.

    ``floor`` and ``focus`` apply to ``active`` only (see :func:`active_pair_probabilities`).

    Raises:
        InvalidInputError: an unknown design, or see :func:`active_pair_probabilities`.
    """
    if design == "uniform":
        return uniform_pair_probabilities(models)
    if design == "balanced":
        counts = {pair: tally.battles for pair, tally in tallies.items()}
        return balanced_pair_probabilities(models, counts)
    if design == "active":
        return active_pair_probabilities(models, tallies, floor=floor, focus=focus)
    raise InvalidInputError(f"unknown sampling {design!r}; use {', '.join(DESIGNS)}")


def ipw_weights(probabilities: ArrayLike) -> NDArray[np.float64]:
    """Inverse-probability weights of battles from their recorded pair probabilities.

    ``w = 1 / p``, normalised to average 1 (Hajek 1971); the scale changes neither the weighted
    fit nor its sandwich covariance. The weights target the uniform design over the same models,
    so they assume one set of models for all the battles given (fit each period of a changing
    line-up apart).

    Raises:
        InvalidInputError: a probability missing, not finite, or outside (0, 1].
    """
    values = np.asarray(probabilities, dtype=np.float64).reshape(-1)
    bad = ~np.isfinite(values) | (values <= 0.0) | (values > 1.0)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise InvalidInputError(
            f"{int(bad.sum())} sampling probabilit(ies) missing or outside (0, 1] (first: "
            f"position {first}, value {values[first]}); inverse-probability weights need the "
            "probability recorded with every battle"
        )
    inverse = 1.0 / values
    weights: NDArray[np.float64] = inverse / inverse.mean() if values.size else inverse
    return weights


@dataclass(frozen=True, eq=False)
class WeightedFitResult:
    """A weighted Bradley-Terry fit (Elo, mean 1000) with its sandwich covariance.

    Attributes:
        ratings: Elo ratings, highest first.
        covariance: sandwich covariance of the ratings (Elo^2), which accounts for the weights.
        n_battles: battles fitted.
        effective_battles: ``(sum w)^2 / sum w^2``, the sample size the weights leave.
    """

    ratings: pd.Series
    covariance: pd.DataFrame
    n_battles: int
    effective_battles: float

    def intervals(self, confidence: float = 0.95) -> pd.DataFrame:
        """Wald intervals: ``rating, se, ci_low, ci_high`` indexed like :attr:`ratings`."""
        if not 0.0 < confidence < 1.0:
            raise InvalidInputError(f"confidence must be in (0, 1), got {confidence}")
        se = np.sqrt(
            np.clip(np.diag(self.covariance.loc[self.ratings.index, self.ratings.index]), 0, None)
        )
        half = norm.ppf(0.5 + confidence / 2.0) * se
        return pd.DataFrame(
            {
                "rating": self.ratings,
                "se": se,
                "ci_low": self.ratings - half,
                "ci_high": self.ratings + half,
            },
            index=self.ratings.index,
        )


def fit_weighted_bradley_terry(battles: pd.DataFrame, weights: ArrayLike) -> WeightedFitResult:
    """Bradley-Terry with per-battle weights (ties half a win each way), mean rating 1000.

    Maximises ``sum_t w_t [y_t log p_t + (1 - y_t) log (1 - p_t)]`` on the Elo scale; the
    covariance is the sandwich ``L+ M L+`` with ``L`` the weighted information and ``M`` the sum
    of ``w_t^2 (y_t - p_t)^2 d_t d_t'`` (White 1980), the right one for inverse-probability
    weights (see the module docstring). Every model must have a finite rating.

    Args:
        battles: one row per battle (``model_a, model_b, winner``).
        weights: one positive weight per row (:func:`ipw_weights`, or all ones).

    Returns:
        The fit.

    Raises:
        InvalidInputError: malformed battles, or weights of the wrong length, negative or not
            finite.
        InsufficientData: some model has no finite rating (all wins, all losses, or not
            connected both ways to the rest).
    """
    clean = validate_battles(battles)
    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    if w.size != len(clean):
        raise InvalidInputError(f"{w.size} weights for {len(clean)} battles; give one per battle")
    if (~np.isfinite(w) | (w < 0)).any():
        raise InvalidInputError("weights must be finite and not negative")
    codes, names = pd.factorize(
        pd.concat([clean["model_a"], clean["model_b"]], ignore_index=True), sort=True
    )
    n = len(clean)
    a = codes[:n].astype(np.intp)
    b = codes[n:].astype(np.intp)
    size = len(names)
    first_won, second_won = pair_outcomes(a, b, clean["winner"].to_numpy(dtype=object))
    y = np.where(first_won, 1.0, np.where(second_won, 0.0, 0.5))
    keys, index = np.unique(np.minimum(a, b) * size + np.maximum(a, b), return_inverse=True)
    first = (keys // max(size, 1)).astype(np.intp)
    second = (keys % max(size, 1)).astype(np.intp)
    total = np.bincount(index, weights=w, minlength=keys.size).astype(np.float64)
    scored = np.bincount(index, weights=w * y, minlength=keys.size).astype(np.float64)
    component = main_component(size, first, second, scored, total - scored, total)
    if size < 2 or component.size < size:
        raise InsufficientData(
            "a weighted fit needs every model to have won and lost against the others' group; "
            "record more votes"
        )
    result = newton_pairs(
        np.zeros((1, size)), scored[None, :], total[None, :], first, second, tol=1e-12
    )
    if not result.converged.all():
        raise InsufficientData("the weighted Bradley-Terry fit did not converge; record more votes")
    theta = result.theta[0]
    prob = expit(theta[first] - theta[second])
    bread = pseudo_inverse_laplacian(laplacian(size, first, second, total * prob * (1 - prob)))
    residual = np.bincount(
        index, weights=np.square(w * (y - prob[index])), minlength=keys.size
    ).astype(np.float64)
    meat = laplacian(size, first, second, residual)
    covariance = bread @ meat @ bread * ELO_SCALE**2
    model_names = pd.Index([str(name) for name in names], dtype=object, name="model")
    ratings = pd.Series(ELO_CENTER + ELO_SCALE * (theta - theta.mean()), index=model_names)
    ratings = ratings.sort_values(ascending=False, kind="stable").rename("rating")
    weight_sq = float(np.square(w).sum())
    return WeightedFitResult(
        ratings=ratings,
        covariance=pd.DataFrame(covariance, index=model_names, columns=model_names),
        n_battles=n,
        effective_battles=float(w.sum()) ** 2 / weight_sq if weight_sq > 0 else 0.0,
    )


def battle_cells(battles: pd.DataFrame, rated: PairCounts) -> NDArray[np.intp]:
    """Each battle's cell among the rated pairs', as the bootstrap orders them.

    ``outcome * P + pair`` with ``outcome`` 0 (the pair's first model won), 1 (the second won) or
    2 (a tie or both-bad vote); ``3 P`` for a battle with a model that is not rated.

    Args:
        battles: validated battles.
        rated: the counts of the rated pairs (:func:`lamarena.analysis.battles.rated_pairs`).
    """
    size = len(rated.models)
    pairs = rated.first.size
    position = {name: i for i, name in enumerate(rated.models)}
    a = battles["model_a"].map(position).to_numpy(dtype=np.float64)
    b = battles["model_b"].map(position).to_numpy(dtype=np.float64)
    inside = ~(np.isnan(a) | np.isnan(b))
    a_i, b_i = a[inside].astype(np.intp), b[inside].astype(np.intp)
    lookup = np.full(size * size, 3 * pairs, dtype=np.intp)
    lookup[rated.first * size + rated.second] = np.arange(pairs)
    pair = lookup[np.minimum(a_i, b_i) * size + np.maximum(a_i, b_i)]
    first_won, second_won = pair_outcomes(
        a_i, b_i, battles["winner"].to_numpy(dtype=object)[inside]
    )
    cells = np.full(len(battles), 3 * pairs, dtype=np.intp)
    cells[inside] = np.where(first_won, 0, np.where(second_won, 1, 2)) * pairs + pair
    return cells


def weighted_cells(
    cells: NDArray[np.intp],
    weights: NDArray[np.float64],
    n_pairs: int,
    clusters: tuple[NDArray[np.intp], int] | None = None,
) -> NDArray[np.float64]:
    """``(C, 3P)`` the sum of the battles' weights in each cell (one row without ``clusters``).

    Args:
        cells: each battle's cell (:func:`battle_cells`).
        weights: each battle's weight.
        n_pairs: ``P``, the rated pairs.
        clusters: each battle's cluster and how many clusters: one row per cluster.
    """
    width = 3 * n_pairs + 1
    labels, count = (np.zeros(cells.size, dtype=np.intp), 1) if clusters is None else clusters
    flat = np.bincount(labels * width + cells, weights=weights, minlength=count * width)
    out: NDArray[np.float64] = flat.astype(np.float64).reshape(count, width)[:, : 3 * n_pairs]
    return out


@dataclass(frozen=True, eq=False)
class WeightedPairFit:
    """A weighted Bradley-Terry fit of the rated pairs, in natural units.

    Attributes:
        rated: the rated pairs with their cells replaced by the sums of the battles' weights.
        theta: ``(K,)`` strengths, averaging zero over the anchors.
        bread: ``(K, K)`` inverse weighted information, centred like ``theta``.
        sandwich: ``(K, K)`` sandwich covariance (cluster-robust when fitted with clusters).
        effective_battles: ``(sum w)^2 / sum w^2`` over the rated battles.
    """

    rated: PairCounts
    theta: NDArray[np.float64]
    bread: NDArray[np.float64]
    sandwich: NDArray[np.float64]
    effective_battles: float


def fit_weighted_pairs(
    rated: PairCounts,
    cells: NDArray[np.intp],
    weights: NDArray[np.float64],
    anchors: NDArray[np.bool_],
    *,
    clusters: tuple[NDArray[np.intp], int] | None = None,
) -> WeightedPairFit:
    """Weighted Bradley-Terry on the rated pairs (ties half a win), centred on ``anchors``.

    As :func:`fit_weighted_bradley_terry`, on the pairs of the leaderboard: the sandwich sums
    ``w^2 (y - p)^2`` per battle (a model with no decisive battle gets ``w^2 p (1 - p)``, as
    :func:`~lamarena.analysis.ranking.bt_solver.covariances` does) or, with ``clusters``, the
    outer products of each cluster's weighted score with the CR1 factor ``C / (C - 1)``.

    Args:
        rated: the rated pairs (unweighted counts; the weighted MLE exists on them, weights
            being positive).
        cells: each battle's cell (:func:`battle_cells`).
        weights: each battle's positive weight.
        anchors: ``(K,)`` the models whose strengths average zero.
        clusters: each battle's cluster and how many, for a cluster-robust sandwich.

    Raises:
        InsufficientData: the weighted fit does not converge.
    """
    size = len(rated.models)
    pairs = rated.first.size
    first, second = rated.first, rated.second
    total = weighted_cells(cells, weights, pairs)[0]
    first_wins, second_wins, ties = total[:pairs], total[pairs : 2 * pairs], total[2 * pairs :]
    games = first_wins + second_wins + ties
    result = newton_pairs(
        np.zeros((1, size)),
        (first_wins + 0.5 * ties)[None, :],
        games[None, :],
        first,
        second,
        tol=1e-12,
    )
    if not result.converged.all():
        raise InsufficientData("the weighted Bradley-Terry fit did not converge; record more votes")
    theta = result.theta[0]
    prob = expit(theta[first] - theta[second])
    bread = pseudo_inverse_laplacian(laplacian(size, first, second, games * prob * (1.0 - prob)))
    if clusters is None:
        square = weighted_cells(cells, np.square(weights), pairs)[0]
        meat_weights = (
            square[:pairs] * (1.0 - prob) ** 2
            + square[pairs : 2 * pairs] * prob**2
            + square[2 * pairs :] * (0.5 - prob) ** 2
        )
        only_ties = tie_only_models(size, first, second, first_wins + second_wins)
        unseen = only_ties[first] | only_ties[second]
        binomial = (square[:pairs] + square[pairs : 2 * pairs] + square[2 * pairs :]) * prob
        meat_weights = np.where(unseen, binomial * (1.0 - prob), meat_weights)
        meat = laplacian(size, first, second, meat_weights)
    else:
        by = weighted_cells(cells, weights, pairs, clusters)
        wins, losses, tied = by[:, :pairs], by[:, pairs : 2 * pairs], by[:, 2 * pairs :]
        residual = wins + 0.5 * tied - (wins + losses + tied) * prob
        scores = np.zeros((clusters[1], size))
        np.add.at(scores.T, first, residual.T)
        np.subtract.at(scores.T, second, residual.T)
        meat = clusters[1] / max(clusters[1] - 1, 1) * scores.T @ scores
    projection = np.eye(size) - anchors[None, :] / max(int(anchors.sum()), 1)
    inside = weights[cells < 3 * pairs]
    weight_sq = float(np.square(inside).sum())
    return WeightedPairFit(
        rated=PairCounts(rated.models, first, second, first_wins, second_wins, ties),
        theta=projection @ theta,
        bread=projection @ bread @ projection.T,
        sandwich=projection @ bread @ meat @ bread @ projection.T,
        effective_battles=float(inside.sum()) ** 2 / weight_sq if weight_sq > 0 else 0.0,
    )
