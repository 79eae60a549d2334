"""Bradley-Terry-Davidson: ties as an outcome of their own, with a tie parameter.

The study counts a tie (and a both-bad vote) as half a win each way. Davidson (1970) instead
gives a tie its own probability: with strengths ``pi = exp(theta)``,

    P(i beats j) = pi_i / D,   P(j beats i) = pi_j / D,   P(tie) = nu * sqrt(pi_i pi_j) / D,
    D = pi_i + pi_j + nu * sqrt(pi_i pi_j),

so two equal models tie with probability ``nu / (2 + nu)``. Among decisive battles the odds are
Bradley-Terry's, so ratings stay on the same Elo scale. The maximum-likelihood fit works on the
per-pair counts; the model-based covariance is the inverse of the observed information (the
Hessian, by central differences of the analytic gradient). scipy's ``minimize`` does the
fitting; no library fits Davidson's model from pair counts, hence this module.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy.optimize import minimize
from scipy.stats import norm

from lamarena.analysis.battles import PairCounts
from lamarena.errors import InsufficientData

__all__ = ["DavidsonFit", "davidson_ratings", "fit_davidson"]


@dataclass(frozen=True)
class DavidsonFit:
    """The fit, in natural units, with the first model of ``rated`` fixed at 0.

    Attributes:
        theta: ``(K,)`` strengths (``theta[0] == 0``).
        covariance: ``(K, K)`` their model-based covariance (row and column 0 are zero).
        tie_parameter: ``nu``.
        log_tie_se: standard error of ``log(nu)``.
        log_likelihood: at the maximum.
    """

    theta: NDArray[np.float64]
    covariance: NDArray[np.float64]
    tie_parameter: float
    log_tie_se: float
    log_likelihood: float

    def tie_interval(self, confidence: float = 0.95) -> tuple[float, float]:
        """Wald interval of ``nu``, on the log scale and back (so it stays positive)."""
        half = norm.ppf(0.5 + confidence / 2.0) * self.log_tie_se
        log_nu = np.log(self.tie_parameter)
        return float(np.exp(log_nu - half)), float(np.exp(log_nu + half))


def _negative_log_likelihood(
    free: NDArray[np.float64], rated: PairCounts
) -> tuple[float, NDArray[np.float64]]:
    """Minus the log-likelihood and its gradient; ``free`` is ``(theta[1:], log nu)``."""
    size = len(rated.models)
    theta = np.concatenate([[0.0], free[: size - 1]])
    log_nu = free[-1]
    i, j = rated.first, rated.second
    w_i, w_j, ties = rated.first_wins, rated.second_wins, rated.ties
    total = w_i + w_j + ties
    # log D, computed stably from its three terms
    terms = np.stack([theta[i], theta[j], log_nu + 0.5 * (theta[i] + theta[j])])
    top = terms.max(axis=0)
    shares = np.exp(terms - top)
    log_d = top + np.log(shares.sum(axis=0))
    shares /= shares.sum(axis=0)  # each outcome's probability
    value = w_i @ theta[i] + w_j @ theta[j] + ties @ (log_nu + 0.5 * (theta[i] + theta[j]))
    value -= total @ log_d
    # d/dtheta_i: w_i + ties/2 - total * (p_i + p_tie / 2); likewise for j; d/dlog nu
    slope_i = w_i + 0.5 * ties - total * (shares[0] + 0.5 * shares[2])
    slope_j = w_j + 0.5 * ties - total * (shares[1] + 0.5 * shares[2])
    grad_theta = np.bincount(i, slope_i, minlength=size) + np.bincount(j, slope_j, minlength=size)
    grad_nu = float(ties.sum() - total @ shares[2])
    gradient = np.concatenate([grad_theta[1:], [grad_nu]])
    return -float(value), -gradient


def fit_davidson(rated: PairCounts, start: NDArray[np.float64] | None = None) -> DavidsonFit:
    """Maximum-likelihood Bradley-Terry-Davidson fit of the rated pairs' counts.

    Args:
        rated: counts between the rated models (ties and both-bad votes as ties).
        start: ``(K,)`` starting strengths (e.g. the half-win fit); zeros when None.

    Returns:
        The fit.

    Raises:
        InsufficientData: no tie at all (``nu`` would be 0) or the fit did not converge.
    """
    size = len(rated.models)
    if rated.ties.sum() == 0:
        raise InsufficientData(
            "no battle was a tie or both-bad, so the tie parameter has no estimate; use the "
            "half-win ratings (--ties half)"
        )
    theta0 = np.zeros(size) if start is None else np.asarray(start, dtype=np.float64)
    theta0 = theta0 - theta0[0]
    ties_share = rated.ties.sum() / max(float(rated.battles.sum()), 1.0)
    initial = np.concatenate([theta0[1:], [np.log(2.0 * ties_share / (1.0 - ties_share + 1e-9))]])
    result = minimize(
        _negative_log_likelihood,
        initial,
        args=(rated,),
        jac=True,
        method="BFGS",
        options={"gtol": 1e-9, "maxiter": 1000},
    )
    gradient_norm = float(np.abs(result.jac).max())
    if not np.isfinite(result.fun) or gradient_norm > 1e-4:
        raise InsufficientData(
            f"the Davidson fit did not converge (gradient {gradient_norm:.2g}); use --ties half"
        )
    free = result.x
    hessian = _hessian(free, rated)
    inverse = np.linalg.pinv(hessian)
    covariance = np.zeros((size, size))
    covariance[1:, 1:] = inverse[: size - 1, : size - 1]
    return DavidsonFit(
        theta=np.concatenate([[0.0], free[: size - 1]]),
        covariance=covariance,
        tie_parameter=float(np.exp(free[-1])),
        log_tie_se=float(np.sqrt(max(inverse[-1, -1], 0.0))),
        log_likelihood=-float(result.fun),
    )


def _hessian(
    free: NDArray[np.float64], rated: PairCounts, step: float = 1e-5
) -> NDArray[np.float64]:
    """The observed information: central differences of the analytic gradient, symmetrised."""
    size = free.size
    out = np.empty((size, size))
    for k in range(size):
        shift = np.zeros(size)
        shift[k] = step
        out[:, k] = (
            _negative_log_likelihood(free + shift, rated)[1]
            - _negative_log_likelihood(free - shift, rated)[1]
        ) / (2.0 * step)
    return 0.5 * (out + out.T)


def davidson_ratings(
    fit: DavidsonFit, models: tuple[str, ...], anchors: tuple[str, ...], scale: float, centre: float
) -> tuple[pd.Series, pd.DataFrame]:
    """Ratings and covariance on the Elo scale, centred on ``anchors`` (as the half-win fit)."""
    weights = np.isin(np.array(models, dtype=object), np.array(anchors, dtype=object))
    projection = np.eye(len(models)) - weights[None, :] / max(int(weights.sum()), 1)
    theta = projection @ fit.theta
    covariance = projection @ fit.covariance @ projection.T
    names = pd.Index(models, dtype=object, name="model")
    ratings = pd.Series(centre + scale * theta, index=names, name="rating")
    return ratings, pd.DataFrame(scale**2 * covariance, index=names, columns=names)
