"""A logistic mixed model of paired votes, and permutation inference at the level of models.

The study's regression of votes on benchmark differences is a logistic mixed model: a decisive
vote is Bernoulli with ``logit P(A wins) = b0 + (x_A - x_B)' b + u_A - u_B``, the ``u`` one
random strength per model, N(0, s²) (the random-strength Bradley-Terry model; a signed +1/-1
multi-membership design, so a model is the same model on either side).

Why it is written here: statsmodels has no frequentist logistic mixed model (its
``BinomialBayesMixedGLM`` is variational Bayes, without p-values), and lme4 is R. The model has
one variance and, because every covariate is a function of the pair, the votes aggregate
exactly to binomial counts per ordered pair (at most K(K - 1) rows), so the fit is small:

- For a given s, penalised iteratively reweighted least squares (Newton on the joint mode of the
  fixed effects and the spherical random effects ``v = u / s``) maximises
  ``log p(y | b, s v) - |v|² / 2``.
- s maximises the Laplace approximation of the marginal likelihood at that mode, in deviance
  form ``-2 log p(y | b, s v) + |v|² + log det(I + s² Z'WZ)`` (W the binomial weights). Fitting
  the fixed effects inside the inner Newton step is lme4's ``nAGQ = 0``; at ``s = 0`` the fit is
  exactly the fixed-effects logistic regression, which the tests check against statsmodels'
  ``Logit``.
- Standard errors are the fixed-effect block of the inverse joint Hessian at the mode (the
  Schur complement lme4's ``vcov`` reports); p-values are Wald z.

Wald tests treat the votes as the sample, but a benchmark's effect is a contrast between K
models: with few models they are liberal. :func:`permutation_pvalues` tests at the level of
models instead: under the null that the benchmark scores carry no information about the models'
strengths, every assignment of the K score rows to the K models is equally likely, so the
observed |z| is ranked among the refits over all K! assignments (exact while K! is at most
``permutations``; a seeded random sample of assignments above). The refits share the pair
counts and differ only in the design, so they are solved as one batch.

R² on the latent scale (Nakagawa & Schielzeth 2013, Johnson 2014): fixed variance = variance of
the fixed predictions over the votes; random variance = ``2 s²`` (the mean of ``z'z s²``, two
model effects per vote); residual variance = pi²/3, the logistic distribution's variance. These
are the R² values comparable with the study's.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import minimize_scalar
from scipy.special import expit, log1p
from scipy.stats import norm

from lamarena.errors import InsufficientData, InvalidInputError

__all__ = [
    "LATENT_RESIDUAL_VARIANCE",
    "LogisticMixedFit",
    "PairedVotes",
    "fit_logistic_mixed_model",
    "paired_votes",
    "permutation_pvalues",
]

LATENT_RESIDUAL_VARIANCE = math.pi**2 / 3.0
"""Variance of the standard logistic distribution: the residual of the latent scale."""

_MAX_SD = 10.0
"""Upper bound of the model-effect standard deviation (log-odds)."""
_SD_GRID = np.concatenate([[0.0], np.geomspace(0.02, _MAX_SD, 16)])
_NEWTON_STEPS = 50
_TOLERANCE = 1e-10
_RIDGE = 1e-12
_SEPARATED = 30.0
"""A fixed effect beyond this many log-odds means the covariates separate the votes."""
_SEPARATION = (
    "the benchmark differences separate the votes (every vote is predicted exactly), so the "
    "log-odds effects are infinite; use more models or fewer benchmarks"
)
_BOUNDARY_SD = 1e-3
"""A model-effect SD below this (log-odds) is reported as estimated at zero."""


@dataclass(frozen=True, eq=False)
class PairedVotes:
    """Decisive votes aggregated to binomial counts per ordered pair of models.

    Attributes:
        first: ``(R,)`` index of the model in position A.
        second: ``(R,)`` index of the model in position B.
        wins: ``(R,)`` votes won by A.
        counts: ``(R,)`` votes.
        n_models: K.
    """

    first: NDArray[np.intp]
    second: NDArray[np.intp]
    wins: NDArray[np.float64]
    counts: NDArray[np.float64]
    n_models: int

    @property
    def signed_design(self) -> NDArray[np.float64]:
        """``(R, K)``: +1 for the model in position A, -1 for the one in position B."""
        design = np.zeros((self.first.size, self.n_models))
        rows = np.arange(self.first.size)
        design[rows, self.first] = 1.0
        design[rows, self.second] = -1.0
        return design


def paired_votes(
    first: NDArray[np.intp], second: NDArray[np.intp], a_won: NDArray[np.bool_], n_models: int
) -> PairedVotes:
    """Aggregate per-vote model indices and outcomes to counts per ordered pair.

    Raises:
        InvalidInputError: mismatched lengths, an index outside ``0..n_models - 1`` or a vote of
            a model against itself.
    """
    if not first.shape == second.shape == a_won.shape:
        raise InvalidInputError("model indices and outcomes differ in length")
    if first.size and (
        min(first.min(), second.min()) < 0 or max(first.max(), second.max()) >= n_models
    ):
        raise InvalidInputError(f"model indices must lie in 0..{n_models - 1}")
    if np.any(first == second):
        raise InvalidInputError("a vote compares a model with itself")
    code = first.astype(np.int64) * n_models + second
    keys, inverse = np.unique(code, return_inverse=True)
    return PairedVotes(
        first=(keys // n_models).astype(np.intp),
        second=(keys % n_models).astype(np.intp),
        wins=np.bincount(inverse, weights=a_won.astype(np.float64), minlength=keys.size).astype(
            np.float64
        ),
        counts=np.bincount(inverse, minlength=keys.size).astype(np.float64),
        n_models=n_models,
    )


@dataclass(frozen=True, eq=False)
class LogisticMixedFit:
    """A fitted logistic mixed model of paired votes (log-odds scale).

    Attributes:
        estimate: fixed effects, intercept first.
        std_error: their standard errors.
        p_value: two-sided Wald z p-values.
        model_sd: the model-effect standard deviation s.
        model_effects: each model's predicted effect ``u`` (the conditional mode).
        fixed_variance: variance of the fixed predictions over the votes (intercept excluded).
        random_variance: ``2 s²``.
        r2_marginal: latent-scale marginal R².
        r2_conditional: latent-scale conditional R².
        deviance: the Laplace deviance at the fit.
        identifiable: whether s could be estimated (False when the fixed effects span every
            contrast between the models; s is then fixed at zero).
        converged: the inner Newton iterations and the variance search converged.
    """

    estimate: NDArray[np.float64]
    std_error: NDArray[np.float64]
    p_value: NDArray[np.float64]
    model_sd: float
    model_effects: NDArray[np.float64]
    fixed_variance: float
    random_variance: float
    r2_marginal: float
    r2_conditional: float
    deviance: float
    identifiable: bool
    converged: bool

    @property
    def on_boundary(self) -> bool:
        """The model-effect SD is estimated at (nearly) zero."""
        return self.model_sd < _BOUNDARY_SD


@dataclass(frozen=True, eq=False)
class _Modes:
    """Joint modes of a batch of designs at one s."""

    beta: NDArray[np.float64]  # (B, P)
    v: NDArray[np.float64]  # (B, K)
    deviance: NDArray[np.float64]  # (B,)
    covariance: NDArray[np.float64]  # (B, P, P)
    converged: bool


def _modes(
    designs: NDArray[np.float64], votes: PairedVotes, sd: float, start: _Modes | None = None
) -> _Modes:
    """Penalised IRLS for a batch of fixed-effect designs ``(B, R, P)`` at model SD ``sd``."""
    batch, _, width = designs.shape
    z = sd * votes.signed_design  # (R, K)
    k = z.shape[1]
    full = np.concatenate([designs, np.broadcast_to(z, (batch, *z.shape))], axis=2)
    penalty = np.zeros(width + k)
    penalty[width:] = 1.0
    theta = (
        np.zeros((batch, width + k))
        if start is None
        else np.concatenate([start.beta, start.v], axis=1)
    )
    transposed = full.transpose(0, 2, 1)
    diagonal = np.arange(width, width + k)

    def information(weight: NDArray[np.float64]) -> NDArray[np.float64]:
        hessian = np.asarray(np.matmul(transposed * weight[:, None, :], full), dtype=np.float64)
        hessian[:, diagonal, diagonal] += 1.0
        return hessian

    converged = False
    for _ in range(_NEWTON_STEPS):
        eta = np.matmul(full, theta[..., None])[..., 0]
        mu = expit(eta)
        weight = votes.counts * mu * (1.0 - mu)
        gradient = np.matmul(transposed, (votes.wins - votes.counts * mu)[..., None])[..., 0]
        gradient -= penalty * theta
        system = information(weight)
        # a whisker of ridge keeps a separating design (weights underflowing to zero) solvable:
        # its estimates then grow until the caller sees them diverge
        system[:, np.arange(width), np.arange(width)] += _RIDGE
        step = np.linalg.solve(system, gradient[..., None])[..., 0]
        theta = theta + step
        if float(np.max(np.abs(step))) < _TOLERANCE:
            converged = True
            break
    eta = np.matmul(full, theta[..., None])[..., 0]
    mu = expit(eta)
    weight = votes.counts * mu * (1.0 - mu)
    loglik = np.sum(votes.wins * eta - votes.counts * _log1pexp(eta), axis=1)
    zwz = np.matmul(z.T * weight[:, None, :], z) + np.eye(k)
    _, logdet = np.linalg.slogdet(zwz)
    v = theta[:, width:]
    deviance = np.asarray(-2.0 * loglik + np.sum(v**2, axis=1) + logdet, dtype=np.float64)
    covariance = np.asarray(np.linalg.inv(information(weight))[:, :width, :width], np.float64)
    return _Modes(theta[:, :width], v, deviance, covariance, converged)


def _log1pexp(eta: NDArray[np.float64]) -> NDArray[np.float64]:
    """``log(1 + exp(eta))`` without overflow."""
    return np.asarray(np.maximum(eta, 0.0) + log1p(np.exp(-np.abs(eta))), dtype=np.float64)


def _identifiable(design: NDArray[np.float64], votes: PairedVotes) -> bool:
    """Whether the signed model effects add anything to the fixed effects' column space."""
    rank = np.linalg.matrix_rank(design)
    return bool(np.linalg.matrix_rank(np.hstack([design, votes.signed_design])) > rank)


def fit_logistic_mixed_model(
    fixed: NDArray[np.float64], votes: PairedVotes, *, model_sd: float | None = None
) -> LogisticMixedFit:
    """Fit ``logit P(A wins) = b0 + fixed' b + u_A - u_B`` on aggregated votes (module docstring).

    Args:
        fixed: ``(R, p)`` covariates of each ordered pair of ``votes`` (no constant; one is added).
        votes: the aggregated votes.
        model_sd: fix s at this value instead of estimating it (0 gives the fixed-effects
            logistic regression).

    Returns:
        The fit.

    Raises:
        InvalidInputError: covariates of the wrong shape, or a negative ``model_sd``.
        InsufficientData: collinear covariates, or covariates that separate the outcomes (the
            estimates would be infinite).
    """
    if fixed.ndim != 2 or fixed.shape[0] != votes.first.size:
        raise InvalidInputError("the covariates need one row per ordered pair of the votes")
    if model_sd is not None and not 0.0 <= model_sd <= _MAX_SD:
        raise InvalidInputError(f"model_sd must lie in [0, {_MAX_SD}], got {model_sd}")
    design = np.column_stack([np.ones(votes.first.size), fixed])
    if np.linalg.matrix_rank(design) < design.shape[1]:
        raise InsufficientData(
            "the logistic mixed model could not be fitted: the fixed effects are collinear "
            "(a benchmark difference constant across votes, or a combination of others)"
        )
    identifiable = _identifiable(design, votes)
    batch = design[None]
    try:
        if model_sd is not None:
            sd, search_converged = model_sd, True
        elif not identifiable:
            sd, search_converged = 0.0, True
        else:
            sd, search_converged = _best_sd(batch, votes)
        modes = _modes(batch, votes, sd)
    except np.linalg.LinAlgError as exc:
        raise InsufficientData(_SEPARATION) from exc
    estimate = modes.beta[0]
    if not np.all(np.isfinite(estimate)) or np.max(np.abs(estimate)) > _SEPARATED:
        raise InsufficientData(_SEPARATION)
    std_error = np.sqrt(np.clip(np.diag(modes.covariance[0]), 0.0, None))
    with np.errstate(divide="ignore", invalid="ignore"):
        p_value = 2.0 * norm.sf(np.abs(estimate / std_error))
    predictions = fixed @ estimate[1:] if fixed.shape[1] else np.zeros(votes.first.size)
    mean = np.average(predictions, weights=votes.counts)
    fixed_variance = float(np.average((predictions - mean) ** 2, weights=votes.counts))
    random_variance = 2.0 * sd**2
    total = fixed_variance + random_variance + LATENT_RESIDUAL_VARIANCE
    return LogisticMixedFit(
        estimate=estimate,
        std_error=std_error,
        p_value=np.asarray(p_value, dtype=np.float64),
        model_sd=sd,
        model_effects=sd * modes.v[0],
        fixed_variance=fixed_variance,
        random_variance=random_variance,
        r2_marginal=fixed_variance / total,
        r2_conditional=(fixed_variance + random_variance) / total,
        deviance=float(modes.deviance[0]),
        identifiable=identifiable,
        converged=modes.converged and search_converged,
    )


def _best_sd(batch: NDArray[np.float64], votes: PairedVotes) -> tuple[float, bool]:
    """The s minimising the Laplace deviance: the best grid point, refined by bounded Brent."""
    deviances = np.array([_modes(batch, votes, sd).deviance[0] for sd in _SD_GRID])
    best = int(np.argmin(deviances))
    low = _SD_GRID[max(best - 1, 0)]
    high = _SD_GRID[min(best + 1, _SD_GRID.size - 1)]
    if high <= low:
        return float(_SD_GRID[best]), True
    result = minimize_scalar(
        lambda sd: float(_modes(batch, votes, float(sd)).deviance[0]),
        bounds=(low, high),
        method="bounded",
        options={"xatol": 1e-6},
    )
    if float(result.fun) <= deviances[best]:
        return float(result.x), bool(result.success)
    return float(_SD_GRID[best]), bool(result.success)


def _grid_statistics(designs: NDArray[np.float64], votes: PairedVotes) -> NDArray[np.float64]:
    """|z| of each fixed effect (intercept excluded) for a batch of designs ``(B, R, P)``.

    Each design gets its own s, the best point of the grid (or 0 where s is not identifiable):
    a cheap, fixed rule, so the observed and the permuted fits are computed the same way.
    """
    batch = designs.shape[0]
    grid = _SD_GRID if _identifiable(designs[0], votes) else _SD_GRID[:1]
    best_deviance = np.full(batch, np.inf)
    best_z = np.zeros((batch, designs.shape[2] - 1))
    previous: _Modes | None = None
    for sd in grid:
        modes = _modes(designs, votes, float(sd), start=previous)
        previous = modes
        errors = np.sqrt(np.clip(np.diagonal(modes.covariance, axis1=1, axis2=2), 1e-300, None))
        z = np.abs(modes.beta / errors)[:, 1:]
        better = modes.deviance < best_deviance
        best_deviance = np.where(better, modes.deviance, best_deviance)
        best_z[better] = z[better]
    return best_z


def permutation_pvalues(
    scores: NDArray[np.float64],
    votes: PairedVotes,
    *,
    permutations: int = 1000,
    seed: int | None = 0,
) -> tuple[NDArray[np.float64], int, bool]:
    """Model-level permutation p-values of each benchmark's effect (module docstring).

    The design of an assignment ``pi`` is ``scores[pi][first] - scores[pi][second]``; the
    statistic is each effect's |z| from the logistic mixed model. Exact over all K! assignments
    when K! <= ``permutations`` (the p-value is the share of assignments whose |z| reaches the
    observed one); otherwise ``permutations`` random assignments besides the observed one, with
    p = (1 + reaching) / (1 + permutations).

    Args:
        scores: ``(K, p)`` model-level covariates (rows in the order of ``votes``' model indices).
        votes: the aggregated votes.
        permutations: the most assignments to evaluate.
        seed: seed of the sampled assignments.

    Returns:
        ``(p_values (p,), assignments evaluated, exact)``.

    Raises:
        InvalidInputError: ``permutations`` below 1 or scores of the wrong shape.
    """
    if permutations < 1:
        raise InvalidInputError(f"permutations must be at least 1, got {permutations}")
    k = votes.n_models
    if scores.ndim != 2 or scores.shape[0] != k:
        raise InvalidInputError(f"scores need one row per model ({k})")
    exact = math.factorial(k) <= permutations
    if exact:
        orders = np.array(list(itertools.permutations(range(k))), dtype=np.intp)
    else:
        rng = np.random.default_rng(seed)
        sampled = np.array([rng.permutation(k) for _ in range(permutations)], dtype=np.intp)
        orders = np.vstack([np.arange(k, dtype=np.intp)[None], sampled])
    statistics = np.empty((orders.shape[0], scores.shape[1]))
    for start in range(0, orders.shape[0], 256):
        chunk = scores[orders[start : start + 256]]  # (b, K, p)
        differences = chunk[:, votes.first] - chunk[:, votes.second]
        ones = np.ones((*differences.shape[:2], 1))
        statistics[start : start + 256] = _grid_statistics(
            np.concatenate([ones, differences], axis=2), votes
        )
    identity = int(np.flatnonzero(np.all(orders == np.arange(k), axis=1))[0])
    observed = statistics[identity]
    reaching = np.sum(statistics >= observed * (1.0 - 1e-9), axis=0)
    # exact: the share of all assignments; sampled: (1 + reaching among the sample) / (1 + B),
    # the observed assignment being the first row
    p_values = reaching / orders.shape[0]
    return np.asarray(p_values, dtype=np.float64), int(orders.shape[0]), exact
