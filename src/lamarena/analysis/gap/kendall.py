"""Kendall tau between the Bradley-Terry ranking and each benchmark's ranking.

The study's first "static vs interactive" measure (Li et al. 2025, "Mind the Gap", ACL), over the
models that have both an interactive rating and a static score: Kendall's tau-b, the normalised
Kendall tau rank distance the study plots (and the count-based distance, which differs under
ties), a percentile bootstrap interval over battles, and Holm's adjustment across benchmarks.
Scores are :meth:`StaticTable.oriented` (higher is better for every benchmark, WER negated).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy.stats import kendalltau

from lamarena.analysis.gap.static_table import StaticTable, require_static_table
from lamarena.analysis.ranking.bradley_terry import (
    bootstrap_bradley_terry_result,
    fit_bradley_terry_result,
)
from lamarena.analysis.ranking.pairwise import holm_adjust
from lamarena.errors import InvalidInputError

__all__ = ["MIN_SHARED_MODELS", "kendall_tau_rows", "kendall_tau_table"]

MIN_SHARED_MODELS = 3
"""Fewest shared models for which :func:`kendall_tau_table` computes a tau."""


def kendall_tau_rows(
    samples: NDArray[np.float64],
    target: NDArray[np.float64],
    *,
    levels: NDArray[np.int_] | None = None,
) -> NDArray[np.float64]:
    """Kendall's tau-b of each row of ``samples`` against ``target``, all rows at once.

    tau-b = sum_{i<j} s_x s_y / sqrt(sum s_x^2 * sum s_y^2) with ``s = sign(v_i - v_j)``, which is
    scipy's ``kendalltau`` (variant ``b``) written over sign arrays so that thousands of bootstrap
    rounds cost one matrix product instead of thousands of scipy calls (hand-written for speed;
    the tests check it against scipy, ties included).

    Args:
        samples: ``(R, n)`` values to rank, one set per row.
        target: ``(n,)`` the ranking to compare with.
        levels: ``(R, n)`` optional integer ranks that take precedence over ``samples`` (a model
            whose bootstrap rating is unbounded above is level 1, below -1): pairs are ordered by
            level first, by value within a level.

    Returns:
        ``(R,)`` tau-b per row; NaN for a row (or target) with every value tied.
    """
    samples = np.atleast_2d(np.asarray(samples, dtype=np.float64))
    target = np.asarray(target, dtype=np.float64)
    i, j = np.triu_indices(target.shape[0], 1)
    sx = np.sign(samples[:, i] - samples[:, j])
    if levels is not None:
        by_level = np.sign(levels[:, i] - levels[:, j]).astype(np.float64)
        sx = np.where(by_level != 0, by_level, sx)
    sy = np.sign(target[i] - target[j])
    denominator = np.sqrt(np.abs(sx).sum(axis=1) * np.abs(sy).sum())
    numerator = sx @ sy
    out = np.full(samples.shape[0], np.nan)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def _count_distance(ratings: NDArray[np.float64], scores: NDArray[np.float64]) -> float:
    """The normalised Kendall tau distance by counting pairs.

    Discordant pairs, plus half of the pairs tied in one ranking only, over all pairs (Fagin et
    al. 2004's K with penalty 1/2); equal to ``(1 - tau) / 2`` when neither ranking has ties.
    """
    i, j = np.triu_indices(ratings.shape[0], 1)
    by_rating = np.sign(ratings[i] - ratings[j])
    by_score = np.sign(scores[i] - scores[j])
    discordant = np.count_nonzero(by_rating * by_score < 0)
    tied_in_one = np.count_nonzero((by_rating == 0) != (by_score == 0))
    return float((discordant + 0.5 * tied_in_one) / i.size)


def kendall_tau_table(
    battles: pd.DataFrame,
    static: StaticTable,
    *,
    rounds: int = 1000,
    seed: int | None = 0,
    confidence: float = 0.95,
    min_models: int = MIN_SHARED_MODELS,
) -> pd.DataFrame:
    """Kendall tau between the interactive ranking and each benchmark's ranking.

    The interactive ranking is the Bradley-Terry fit of all the battles (``ranking``; battles
    against models without static scores still inform the shared models' ratings). For each
    benchmark, over the rated models with a score: ``tau`` is scipy's Kendall tau-b of ratings
    against oriented scores (so for WER a lower error counts as better) with scipy's p-value
    (exact without ties, else asymptotic), and ``distance = (1 - tau) / 2`` the normalised Kendall
    tau rank distance the study plots: the share of discordant pairs when neither ranking has
    ties. With ties (equal benchmark scores are common in Table 1) tau-b and hence the distance
    adjust for them rather than counting a tied pair as half discordant (the distances the Talk
    Arena site plots have the irrational values tau-b gives with ties). The interval is the
    percentile bootstrap of tau over ``rounds`` resamples of the battles
    (``ranking.bootstrap_bradley_terry_result``), the scores held fixed; a model whose rating is
    unbounded in a round ranks above (below) every bounded one there.

    Args:
        battles: one row per battle (``model_a, model_b, winner``).
        static: the static scores.
        rounds: bootstrap rounds.
        seed: seed of the bootstrap.
        confidence: coverage of the interval.
        min_models: fewest shared models for a tau; below it the row has NaN and a reason.

    Returns:
        One row per benchmark, in table order: ``benchmark, tau, distance, ci_low, ci_high,
        n_models, p_value, distance_count, lower_is_better, reason, p_holm`` (``reason`` is
        None unless tau is NaN). ``distance`` is ``(1 - tau_b) / 2``; ``distance_count`` counts
        pairs (discordant, plus half of those tied in one ranking only): the two differ only
        under ties, and ``attrs["distance"]`` names each. ``p_value`` is unadjusted (as the
        study); ``p_holm`` is Holm-adjusted across the benchmarks with a tau.
        ``attrs`` records ``rounds, seed, confidence, n_battles, models`` and
        ``unrated_models``: models with static scores but no finite rating (never lost, never
        won, or not connected), which are left out of every tau.

    Raises:
        InvalidInputError: malformed battles, ``rounds`` < 1, a bad ``confidence`` or
            ``min_models`` < 2.
        InsufficientData: fewer than two models have a rating.
    """
    static = require_static_table(static)
    if not 0.0 < confidence < 1.0:
        raise InvalidInputError(f"confidence must be between 0 and 1, got {confidence}")
    if min_models < 2:
        raise InvalidInputError(f"min_models must be at least 2, got {min_models}")
    fit = fit_bradley_terry_result(battles)
    boot = bootstrap_bradley_terry_result(battles, rounds=rounds, seed=seed, fit=fit)
    ratings = fit.ratings
    samples = boot.samples[ratings.index]
    levels = boot.unbounded_above[ratings.index].astype(np.int_) - boot.unbounded_below[
        ratings.index
    ].astype(np.int_)
    oriented = static.oriented()
    alpha = 1.0 - confidence
    rows: list[dict[str, Any]] = []
    for bench in static.benchmarks:
        target = oriented[bench].reindex(ratings.index).dropna()
        shared = list(target.index)
        row: dict[str, Any] = {
            "benchmark": bench,
            "tau": math.nan,
            "distance": math.nan,
            "ci_low": math.nan,
            "ci_high": math.nan,
            "n_models": len(shared),
            "p_value": math.nan,
            "distance_count": math.nan,
            "lower_is_better": bench in static.lower_is_better,
            "reason": None,
        }
        if len(shared) < min_models:
            row["reason"] = (
                f"only {len(shared)} model(s) have both a rating and a score; a tau needs "
                f"{min_models}"
            )
        elif target.nunique() < 2:
            row["reason"] = "every shared model has the same score"
        else:
            result = kendalltau(ratings[shared].to_numpy(), target.to_numpy())
            taus = kendall_tau_rows(
                samples[shared].to_numpy(), target.to_numpy(), levels=levels[shared].to_numpy()
            )
            taus = taus[np.isfinite(taus)]
            tau = float(result.statistic)
            row.update(
                tau=tau,
                distance=(1.0 - tau) / 2.0,
                p_value=float(result.pvalue),
                distance_count=_count_distance(
                    ratings[shared].to_numpy(), target.to_numpy(dtype=np.float64)
                ),
            )
            if taus.size:
                low, high = np.quantile(taus, [alpha / 2.0, 1.0 - alpha / 2.0])
                row.update(ci_low=float(low), ci_high=float(high))
        rows.append(row)
    table = pd.DataFrame(rows)
    tested = table["p_value"].notna().to_numpy()
    table["p_holm"] = math.nan
    if tested.any():
        table.loc[tested, "p_holm"] = holm_adjust(table.loc[tested, "p_value"].to_numpy())
    table["n_models"] = table["n_models"].astype(np.int64)
    table["reason"] = pd.Series([row["reason"] for row in rows], dtype=object)
    table.attrs.update(
        rounds=rounds,
        seed=seed,
        confidence=confidence,
        n_battles=fit.n_battles,
        models=list(ratings.index),
        unrated_models=sorted(set(static.scores.index) & set(fit.provisional) - set(ratings.index)),
        method="kendall_tau_b",
        distance={
            "distance": "(1 - tau_b) / 2",
            "distance_count": "(discordant pairs + half the pairs tied in one ranking only) / "
            "all pairs",
        },
    )
    return table
