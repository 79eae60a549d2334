"""Numerics of the vote regression: VIF screening and a pairwise linear mixed model.

Used by :func:`lamarena.analysis.gap.regress_votes_on_benchmarks`, which builds the design
from battles and static scores; this module sees only arrays and feature tables.

- :func:`variance_inflation_factors` / :func:`screen_by_vif`: VIFs with a constant (statsmodels'
  values, with row weights so that the votes of one pair count as one weighted row), dropped
  iteratively (the study screened its features at a threshold of 10).
- :func:`fit_pairwise_mixed_model`: a linear mixed model of a 0/1 outcome with crossed random
  model effects, fitted by profile REML, and the marginal and conditional R² of Nakagawa &
  Schielzeth (2013), with the random-effect variance averaged over the observations as Johnson
  (2014) extends it to designs where an observation loads on several random effects.

Why the mixed model is hand-written rather than statsmodels' ``MixedLM``: crossed model effects
need ``MixedLM``'s variance components over one group holding every vote, and there its
optimisers fail in the case that matters most here, a model-effect variance at or near zero
(the benchmarks explain the models' strengths, or few models): BFGS stops short, and L-BFGS,
Powell and Nelder-Mead step to a zero variance and raise on a singular matrix (statsmodels 0.15,
checked on simulated votes). The model has only one or two variance ratios, so its profile
restricted likelihood (Harville 1977; the quantity lme4 and ``MixedLM`` maximise) is written
here with the Woodbury identity over ``Z'Z``-sized matrices and maximised with the ratios
bounded at zero; the tests check estimates against ``MixedLM`` where ``MixedLM`` converges.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy.linalg import cho_factor, cho_solve
from scipy.optimize import minimize
from scipy.stats import norm

from lamarena.errors import InsufficientData, InvalidInputError

__all__ = [
    "COLLINEAR_VIF",
    "RANDOM_EFFECTS",
    "MixedFit",
    "RandomEffects",
    "fit_pairwise_mixed_model",
    "screen_by_vif",
    "variance_inflation_factors",
]

COLLINEAR_VIF = 1e9
"""VIFs at or above this (R² within 1e-9 of 1) are exact collinearity up to rounding: reported as
infinite, so that rounding noise cannot decide which of two collinear features is dropped."""

RandomEffects = Literal["signed", "sides"]
RANDOM_EFFECTS: tuple[str, ...] = ("signed", "sides")
"""Random-effect designs of :func:`fit_pairwise_mixed_model`."""

_BOUNDARY_SHARE = 1e-4
"""A variance component below this share of the residual variance is reported as estimated at
zero (on the boundary of the parameter space)."""
_MAX_RATIO_SD = 1e3
"""Upper bound of a random-effect standard deviation relative to the residual one."""
_START_GRID = (0.0, 0.03, 0.1, 0.3, 1.0, 3.0)


def variance_inflation_factors(
    features: pd.DataFrame, weights: NDArray[np.float64] | None = None
) -> pd.Series:
    """Variance inflation factor of each feature, regressed on the others and a constant.

    VIF_j = 1 / (1 - R²_j), R²_j from the least-squares regression of feature j on a constant
    and the other features, each row weighted by ``weights`` (default 1): the value statsmodels'
    ``variance_inflation_factor`` gives on the design ``[1, features]`` with each row repeated
    ``weights`` times, which the tests check. Weights let the votes of one ordered pair of
    models, whose benchmark differences are identical, count as one row (K(K - 1) rows instead
    of thousands of votes: the same VIFs, computed in microseconds). A feature with no variance
    is collinear with the constant and gets ``inf``; so does a VIF of :data:`COLLINEAR_VIF` or
    more (R² within 1e-9 of 1: exact collinearity up to rounding).

    Written with numpy rather than calling statsmodels because statsmodels takes no weights
    and refits a full OLS per feature.

    Args:
        features: one column per feature, one row per observation, finite numbers.
        weights: ``(n,)`` non-negative row weights (repeat counts), or None.

    Returns:
        VIF by feature name, in column order.

    Raises:
        InvalidInputError: no column, fewer than two rows, a non-numeric or non-finite value,
            or weights of the wrong length or sign.
    """
    values = _feature_matrix(features)
    root = np.sqrt(_row_weights(weights, values.shape[0]))
    out = np.empty(values.shape[1])
    for j in range(values.shape[1]):
        target = values[:, j]
        mean = float(np.sum(root**2 * target) / np.sum(root**2))
        total = float(np.sum((root * (target - mean)) ** 2))
        if total <= 1e-300 or np.ptp(target[root > 0]) == 0.0:
            out[j] = np.inf
            continue
        others = np.column_stack([np.ones(values.shape[0]), np.delete(values, j, axis=1)])
        solution, *_ = np.linalg.lstsq(root[:, None] * others, root * target, rcond=None)
        residual = float(np.sum((root * (target - others @ solution)) ** 2))
        r2 = 1.0 - residual / total
        vif = 1.0 / (1.0 - r2) if r2 < 1.0 else np.inf
        out[j] = np.inf if not vif >= 0.0 or vif >= COLLINEAR_VIF else vif
    return pd.Series(out, index=pd.Index(features.columns, dtype=object), name="vif")


def _row_weights(weights: NDArray[np.float64] | None, rows: int) -> NDArray[np.float64]:
    """Row weights, ones by default.

    Raises:
        InvalidInputError: the wrong length, a negative or non-finite weight, or none positive.
    """
    if weights is None:
        return np.ones(rows)
    values = np.asarray(weights, dtype=np.float64)
    if values.shape != (rows,):
        raise InvalidInputError(f"weights need one value per row ({rows}), got {values.shape}")
    if not np.isfinite(values).all() or (values < 0).any() or not (values > 0).any():
        raise InvalidInputError("weights must be finite, non-negative and not all zero")
    return values


def _feature_matrix(features: pd.DataFrame) -> NDArray[np.float64]:
    if not isinstance(features, pd.DataFrame):
        raise InvalidInputError(f"features must be a DataFrame, got {type(features).__name__}")
    if features.shape[1] == 0:
        raise InvalidInputError("features have no column; a VIF needs at least one feature")
    if features.shape[0] < 2:
        raise InvalidInputError("features need at least two rows for a VIF")
    try:
        values = features.to_numpy(dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"features must be numeric: {exc}") from exc
    if not np.isfinite(values).all():
        bad = [str(c) for c in features.columns[~np.isfinite(values).all(axis=0)]]
        raise InvalidInputError(f"features have missing or infinite values in {', '.join(bad)}")
    return values


def screen_by_vif(
    features: pd.DataFrame, threshold: float = 10.0, weights: NDArray[np.float64] | None = None
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Drop the feature with the highest VIF while it exceeds ``threshold``, then recompute.

    The result does not depend on the order of the columns. Ties are common: with K models
    every difference feature lies in a (K - 1)-dimensional space, so VIFs stay infinite until at
    most K - 1 features remain. Among the features whose VIF equals the highest (both infinite,
    or within a relative 1e-6, which absorbs rounding), the one most redundant with the others
    goes: the highest mean absolute correlation with the remaining features; a tie there
    (exact copies) drops the name that sorts last. Taking the first or last column instead made
    the selection an accident of the table's layout.

    Args:
        features: one column per feature (see :func:`variance_inflation_factors`).
        threshold: the largest VIF kept (the study used 10).
        weights: row weights (repeat counts), as :func:`variance_inflation_factors` takes them.

    Returns:
        ``(kept, dropped)``: kept features in column order, dropped ones in the order dropped.

    Raises:
        InvalidInputError: a threshold below 1 (every VIF is at least 1) or bad features.
    """
    if not threshold >= 1.0:
        raise InvalidInputError(f"vif_threshold must be at least 1, got {threshold}")
    kept = [str(c) for c in features.columns]
    dropped: list[str] = []
    while kept:
        vifs = variance_inflation_factors(features[kept], weights)
        worst = float(vifs.max())
        if worst <= threshold:
            break
        values = vifs.to_numpy()
        if np.isinf(worst):
            tied = [str(n) for n in vifs.index[np.isinf(values)]]
        else:
            tied = [str(n) for n in vifs.index[values >= worst * (1.0 - 1e-6)]]
        name = tied[0] if len(tied) == 1 else _most_redundant(features[kept], tied, weights)
        kept.remove(name)
        dropped.append(name)
    return tuple(kept), tuple(dropped)


def _most_redundant(
    features: pd.DataFrame, candidates: list[str], weights: NDArray[np.float64] | None
) -> str:
    """Of ``candidates``, the one most correlated (weighted, absolute, mean) with the others."""
    names = [str(c) for c in features.columns]
    values = features.to_numpy(dtype=np.float64)
    covariance = np.atleast_2d(np.cov(values.T, aweights=_row_weights(weights, values.shape[0])))
    spread = np.sqrt(np.diag(covariance))
    with np.errstate(divide="ignore", invalid="ignore"):
        correlation = covariance / np.outer(spread, spread)
    # a constant column has no correlation: count it as fully redundant
    correlation = np.nan_to_num(np.abs(correlation), nan=1.0)

    def redundancy(name: str) -> tuple[float, str]:
        row = names.index(name)
        others = [col for col in range(len(names)) if col != row]
        mean = float(correlation[row, others].mean()) if others else 0.0
        return round(mean, 9), name

    return max(candidates, key=redundancy)


@dataclass(frozen=True, eq=False)
class MixedFit:
    """A fitted pairwise linear mixed model.

    Attributes:
        names: fixed effects, ``intercept`` first.
        estimate: fixed-effect estimates.
        std_error: their standard errors (``sigma² (X'V⁻¹X)⁻¹`` at the estimated variances, as
            lme4 and statsmodels report).
        p_value: two-sided Wald z-test p-values (as statsmodels' ``MixedLM``).
        variance_components: variance of each random-effect component.
        residual_variance: variance of the observation-level errors.
        fixed_variance: variance of the fixed-effect predictions (intercept excluded).
        random_variance: mean random-effect variance per observation (Johnson 2014).
        r2_marginal: fixed / (fixed + random + residual) variance.
        r2_conditional: (fixed + random) / (fixed + random + residual) variance.
        converged: the optimiser reported convergence.
        warnings: notes on the fit (a variance estimated at zero, optimiser trouble).
        method: ``REML`` or ``ML``.
    """

    names: tuple[str, ...]
    estimate: NDArray[np.float64]
    std_error: NDArray[np.float64]
    p_value: NDArray[np.float64]
    variance_components: dict[str, float]
    residual_variance: float
    fixed_variance: float
    random_variance: float
    r2_marginal: float
    r2_conditional: float
    converged: bool
    warnings: tuple[str, ...]
    method: str


@dataclass(frozen=True, eq=False)
class _Products:
    """Cross-products of the design, computed once: every likelihood evaluation uses only these."""

    zz: NDArray[np.float64]
    zx: NDArray[np.float64]
    zy: NDArray[np.float64]
    xx: NDArray[np.float64]
    xy: NDArray[np.float64]
    yy: float
    n: int


@dataclass(frozen=True, eq=False)
class _Profile:
    """The profiled fit at given standard-deviation ratios."""

    objective: float
    beta: NDArray[np.float64]
    sigma2: float
    xvx: NDArray[np.float64]


def _profile(
    ratios: NDArray[np.float64], columns: NDArray[np.intp], data: _Products, reml: bool
) -> _Profile:
    """Minus twice the profile (restricted) log-likelihood, up to a constant, and its solution.

    With ``L = diag(ratio of each random column)``, ``V = I + Z L² Z'`` is the covariance of the
    outcome over the residual variance. Woodbury: ``a'V⁻¹b = a'b - a'Z L M⁻¹ L Z'b`` with
    ``M = I + L Z'Z L`` (positive definite even when a ratio is zero) and ``log|V| = log|M|``.
    Then ``beta = (X'V⁻¹X)⁻¹ X'V⁻¹y``, ``sigma² = r'V⁻¹r / (n - p)`` (REML; ``/ n`` for ML) and
    the objective is ``log|V| + (n - p) log sigma² + log|X'V⁻¹X|`` (the last term REML only).
    """
    scale = ratios[columns]
    m = np.eye(scale.size) + scale[:, None] * data.zz * scale[None, :]
    factor = cho_factor(m, lower=True)
    logdet_v = 2.0 * float(np.sum(np.log(np.diag(factor[0]))))
    lzx = scale[:, None] * data.zx
    lzy = scale * data.zy
    solved_x = cho_solve(factor, lzx)
    solved_y = cho_solve(factor, lzy)
    xvx = data.xx - lzx.T @ solved_x
    xvy = data.xy - lzx.T @ solved_y
    yvy = data.yy - float(lzy @ solved_y)
    xfactor = cho_factor(xvx, lower=True)
    beta = cho_solve(xfactor, xvy)
    dof = data.n - xvx.shape[0] if reml else data.n
    sigma2 = max(yvy - float(xvy @ beta), 0.0) / dof
    objective = logdet_v + dof * math.log(max(sigma2, 1e-300))
    if reml:
        objective += 2.0 * float(np.sum(np.log(np.diag(xfactor[0]))))
    return _Profile(objective=objective, beta=beta, sigma2=sigma2, xvx=xvx)


def fit_pairwise_mixed_model(
    outcome: NDArray[np.float64],
    fixed: pd.DataFrame,
    first: NDArray[np.intp],
    second: NDArray[np.intp],
    models: Sequence[str],
    *,
    random_effects: RandomEffects = "signed",
    reml: bool = True,
) -> MixedFit:
    """Fit ``outcome ~ 1 + fixed + model effects`` as a linear mixed model.

    Observation i compares ``models[first[i]]`` with ``models[second[i]]``. The random model
    effects are crossed (every model meets every other):

    - ``signed``: one effect u_m ~ N(0, s²) per model, entering as ``u_first - u_second`` (a
      multi-membership design; the random-strength version of Bradley-Terry): one variance.
    - ``sides``: independent intercepts for the model in each position (lme4's
      ``(1 | model_a) + (1 | model_b)``): two variances.

    The variances are estimated by profile REML (default) or ML (see the module docstring for
    why this is not statsmodels' ``MixedLM``): the ratios of the random-effect standard
    deviations to the residual one are maximised over ``[0, 1000]`` by L-BFGS-B from the best
    point of a small grid, so a variance of zero is a valid estimate (then noted in
    :attr:`MixedFit.warnings`), never a failure.

    R² (Nakagawa & Schielzeth 2013): the fixed variance is the variance of the fixed predictions
    over the observations, the random variance the mean of ``z_i' G z_i`` over observations
    (Johnson 2014; ``2 s²`` for ``signed``, ``s_a² + s_b²`` for ``sides``), and the residual
    variance the estimated error variance.

    Args:
        outcome: ``(n,)`` responses.
        fixed: ``(n, p)`` fixed-effect covariates (no constant; one is added).
        first: ``(n,)`` index into ``models`` of the first model of each observation.
        second: ``(n,)`` index of the second model.
        models: model names.
        random_effects: ``signed`` or ``sides`` (see above).
        reml: restricted maximum likelihood (default) rather than maximum likelihood.

    Returns:
        The fit.

    Raises:
        InvalidInputError: an unknown ``random_effects`` or mismatched lengths.
        InsufficientData: fewer observations than fixed effects plus one, or fixed effects that
            are collinear (with the intercept or each other).
    """
    if random_effects not in RANDOM_EFFECTS:
        raise InvalidInputError(
            f"random_effects must be one of {', '.join(RANDOM_EFFECTS)}, got {random_effects!r}"
        )
    n = outcome.shape[0]
    if fixed.shape[0] != n or first.shape[0] != n or second.shape[0] != n:
        raise InvalidInputError("outcome, fixed effects and model indices differ in length")
    names = ("intercept", *(str(c) for c in fixed.columns))
    if n <= len(names):
        raise InsufficientData(
            f"{n} observation(s) cannot estimate {len(names)} fixed effects and a variance"
        )
    x = np.column_stack([np.ones(n), fixed.to_numpy(dtype=np.float64)])
    y = np.asarray(outcome, dtype=np.float64)
    components = _random_design(first, second, len(models), random_effects)
    z = np.hstack(list(components.values()))
    columns = np.repeat(np.arange(len(components)), [m.shape[1] for m in components.values()])
    data = _Products(
        zz=z.T @ z, zx=z.T @ x, zy=z.T @ y, xx=x.T @ x, xy=x.T @ y, yy=float(y @ y), n=n
    )
    # A component whose design adds nothing to the fixed effects' column space is not
    # identifiable: the restricted likelihood is flat in its variance (and the ML estimate is
    # zero). With K models this happens to the signed effects once K - 1 benchmark differences
    # are kept, the study's own situation (6 models, 5 features).
    rank = np.linalg.matrix_rank(x)
    free = np.array([np.linalg.matrix_rank(np.hstack([x, m])) > rank for m in components.values()])
    try:
        ratios, converged, message = _maximise(columns, data, reml, free)
        best = _profile(ratios, columns, data, reml)
        covariance = best.sigma2 * cho_solve(cho_factor(best.xvx, lower=True), np.eye(len(names)))
    except np.linalg.LinAlgError as exc:
        raise InsufficientData(
            "the mixed model could not be fitted: the fixed effects are collinear (a benchmark "
            "difference constant across votes, or a combination of others); lower vif_threshold"
        ) from exc
    residual = best.sigma2
    variances = {name: float(ratios[k] ** 2 * residual) for k, name in enumerate(components)}
    notes = [] if converged else [f"optimiser: {message}"]
    for k, (name, v) in enumerate(variances.items()):
        if not free[k]:
            notes.append(
                f"the {name} variance is not identifiable and is set to zero: the benchmark "
                "differences already span every contrast between the models (K - 1 features "
                "for K models), so they absorb all model effects"
            )
        elif v <= _BOUNDARY_SHARE * residual:
            notes.append(
                f"the {name} variance is estimated at (nearly) zero: the benchmark differences "
                "leave little model effect to estimate, or there are too few models"
            )
    estimate = np.asarray(best.beta, dtype=np.float64)
    std_error = np.sqrt(np.clip(np.diag(covariance), 0.0, None))
    with np.errstate(divide="ignore", invalid="ignore"):
        p_value = 2.0 * norm.sf(np.abs(estimate / std_error))
    fixed_variance = float(np.var(x[:, 1:] @ estimate[1:])) if len(names) > 1 else 0.0
    random_variance = sum(
        variances[name] * float(np.mean(np.sum(matrix**2, axis=1)))
        for name, matrix in components.items()
    )
    total = fixed_variance + random_variance + residual
    return MixedFit(
        names=names,
        estimate=estimate,
        std_error=std_error,
        p_value=np.asarray(p_value, dtype=np.float64),
        variance_components=variances,
        residual_variance=residual,
        fixed_variance=fixed_variance,
        random_variance=random_variance,
        r2_marginal=fixed_variance / total if total > 0 else math.nan,
        r2_conditional=(fixed_variance + random_variance) / total if total > 0 else math.nan,
        converged=converged,
        warnings=tuple(notes),
        method="REML" if reml else "ML",
    )


def _maximise(
    columns: NDArray[np.intp], data: _Products, reml: bool, free: NDArray[np.bool_]
) -> tuple[NDArray[np.float64], bool, str]:
    """Standard-deviation ratios maximising the profile likelihood, bounded at zero.

    Components not ``free`` stay at zero; the others start from the best point of a small grid
    and are refined by L-BFGS-B.
    """
    ratios = np.zeros(free.size)
    count = int(free.sum())
    if count == 0:
        return ratios, True, "no identifiable variance"

    def objective(point: NDArray[np.float64]) -> float:
        ratios[free] = point
        return _profile(ratios, columns, data, reml).objective

    grid = np.array(np.meshgrid(*[_START_GRID] * count)).reshape(count, -1).T
    start = grid[int(np.argmin([objective(point) for point in grid]))]
    result = minimize(
        lambda point: objective(np.asarray(point, dtype=np.float64)),
        start,
        method="L-BFGS-B",
        bounds=[(0.0, _MAX_RATIO_SD)] * count,
    )
    ratios[free] = np.asarray(result.x, dtype=np.float64)
    return ratios, bool(result.success), str(result.message)


def _random_design(
    first: NDArray[np.intp], second: NDArray[np.intp], size: int, kind: RandomEffects
) -> dict[str, NDArray[np.float64]]:
    """Random-effect design matrices (observations x models) by component name."""
    rows = np.arange(first.shape[0])
    a = np.zeros((first.shape[0], size))
    b = np.zeros((first.shape[0], size))
    a[rows, first] = 1.0
    b[rows, second] = 1.0
    if kind == "signed":
        return {"model": a - b}
    return {"model_a": a, "model_b": b}
