"""Pairwise comparisons of rated models: Wald z-tests with Holm's step-down correction."""

from __future__ import annotations

from collections.abc import Collection

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy.stats import norm

from lamarena.errors import InvalidInputError

__all__ = ["holm_adjust", "pairwise_tests"]


def holm_adjust(p_values: NDArray[np.float64]) -> NDArray[np.float64]:
    """Holm (1979) step-down adjusted p-values, in the input order.

    The same numbers as ``statsmodels.stats.multitest.multipletests(p, method="holm")[1]`` (a
    test checks it); computed here because that function runs ``gc.collect()`` on every Holm call,
    which costs tens of milliseconds in a large process such as the arena server.

    Args:
        p_values: unadjusted p-values.

    Returns:
        ``min(1, max_{j <= i} (m - j + 1) p_(j))`` for the i-th smallest, mapped back.
    """
    values = np.asarray(p_values, dtype=np.float64)
    order = np.argsort(values, kind="stable")
    steps = np.arange(values.size, 0, -1)
    adjusted = np.minimum(np.maximum.accumulate(values[order] * steps), 1.0)
    out = np.empty_like(values)
    out[order] = adjusted
    return out


def pairwise_tests(
    ratings: pd.Series,
    covariance: pd.DataFrame,
    *,
    alpha: float = 0.05,
    fallback: pd.DataFrame | None = None,
    fallback_models: Collection[str] = (),
    family: Collection[str] | None = None,
) -> pd.DataFrame:
    """Wald z-test of every rating difference, with Holm's step-down correction.

    For models a and b, ``z = (r_a - r_b) / se`` with ``se^2 = C_aa + C_bb - 2 C_ab`` from the
    covariance of the ratings (analytic or bootstrap); two-sided p-values are adjusted for all
    pairs by Holm (1979) with :func:`holm_adjust`.

    ``fallback`` guards the pairs whose variance ``covariance`` cannot estimate: for a pair with
    a model of ``fallback_models``, ``se^2`` is the larger of the two covariances' values. The
    leaderboard passes the (guarded) sandwich covariance and the models with no decisive battle:
    every bootstrap resample of such a model is all ties again, so the bootstrap variance of its
    differences comes from the other models alone and can be far too small (a model that only
    tied two others would otherwise differ "significantly" from both).

    Args:
        ratings: ratings by model (Elo).
        covariance: their covariance (Elo^2), indexed by model.
        alpha: family-wise error rate for ``significant``.
        fallback: a second covariance (Elo^2) bounding the variance of the pairs below.
        fallback_models: the models whose pairs use the larger variance.
        family: the models whose pairs make up Holm's family (None: every model). A pair with
            a model outside it (the leaderboard's provisional models) is tested but not
            adjusted: its ``p_holm`` is NaN and it is never ``significant``, so a newcomer's
            pairs neither claim a difference nor dilute the established ones' correction.

    Returns:
        One row per pair, higher-rated model first (pairs in rating order): ``model_a, model_b,
        diff, se, z, p_value, p_holm, significant`` (``p_holm < alpha``). A zero standard
        error gives p = 1.
    """
    if not 0.0 < alpha < 1.0:
        raise InvalidInputError(f"alpha must be between 0 and 1, got {alpha}")
    ordered = ratings.sort_values(ascending=False, kind="stable")
    names = list(ordered.index)
    cov = covariance.loc[names, names].to_numpy()
    values = ordered.to_numpy(dtype=np.float64)
    first, second = np.triu_indices(len(names), k=1)
    diff = values[first] - values[second]
    variance = cov[first, first] + cov[second, second] - 2.0 * cov[first, second]
    if fallback is not None:
        other = fallback.loc[names, names].to_numpy()
        bound = other[first, first] + other[second, second] - 2.0 * other[first, second]
        guarded = np.isin(
            np.array(names, dtype=object), np.array(list(fallback_models), dtype=object)
        )
        pick = guarded[first] | guarded[second]
        variance = np.where(pick, np.maximum(variance, bound), variance)
    se = np.sqrt(np.clip(variance, 0.0, None))
    positive = se > 0
    z = np.divide(diff, se, out=np.zeros_like(diff), where=positive)
    p_value = np.where(positive, 2.0 * norm.sf(np.abs(z)), 1.0)
    members = np.ones(len(names), dtype=bool)
    if family is not None:
        members = np.isin(np.array(names, dtype=object), np.array(list(family), dtype=object))
    in_family = members[first] & members[second]
    p_holm = np.full_like(p_value, np.nan)
    if in_family.any():
        p_holm[in_family] = holm_adjust(p_value[in_family])
    reject = in_family & (np.nan_to_num(p_holm, nan=1.0) < alpha)
    return pd.DataFrame(
        {
            "model_a": pd.Series([names[i] for i in first], dtype=object),
            "model_b": pd.Series([names[j] for j in second], dtype=object),
            "diff": diff,
            "se": se,
            "z": z,
            "p_value": p_value,
            "p_holm": p_holm,
            "significant": reject.astype(bool),
        }
    )
