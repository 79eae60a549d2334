"""The study's regression of votes on benchmark differences, with model-level inference.

:func:`regress_votes_on_benchmarks` screens the benchmark differences by VIF (order-invariant,
``linear_mixed``), then fits

- the primary model, a **logistic mixed model** with one random strength per model entering as
  ``u_A - u_B`` (``logistic_mixed``), whose R² is on the latent scale of Nakagawa & Schielzeth
  (2013), the scale of the study's 0.30 / 0.99; its fixed effects get Wald p-values and,
  beside them, **model-level permutation p-values** (the score rows permuted across the models);
- the **linear probability mixed model** by REML (``linear_mixed``) as a sensitivity check, whose
  R² is on the observed 0/1 scale and so not comparable with the study's.

``regress_votes_on_benchmarks(..., model="linear")`` makes the linear model the primary fit (the
earlier default; no permutation p-values then).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy.stats import norm

from lamarena.analysis.battles import validate_battles
from lamarena.analysis.gap.linear_mixed import (
    MixedFit,
    RandomEffects,
    fit_pairwise_mixed_model,
    screen_by_vif,
    variance_inflation_factors,
)
from lamarena.analysis.gap.logistic_mixed import (
    LATENT_RESIDUAL_VARIANCE,
    PairedVotes,
    fit_logistic_mixed_model,
    paired_votes,
    permutation_pvalues,
)
from lamarena.analysis.gap.static_table import StaticTable, require_static_table
from lamarena.analysis.jsonable import json_float
from lamarena.errors import InsufficientData, InvalidInputError

__all__ = [
    "REGRESSION_MODELS",
    "RegressionModel",
    "RegressionResult",
    "regress_votes_on_benchmarks",
]

RegressionModel = Literal["logistic", "linear"]
REGRESSION_MODELS: tuple[str, ...] = ("logistic", "linear")


_COEFFICIENT_KEYS = (
    "estimate",
    "std_error",
    "p_value",
    "p_permutation",
    "ci_low",
    "ci_high",
    "vif",
)


@dataclass(frozen=True, eq=False)
class RegressionResult:
    """The vote regression of :func:`regress_votes_on_benchmarks`.

    Attributes:
        coefficients: one row per kept benchmark: ``feature, estimate, std_error, p_value,
            p_permutation, ci_low, ci_high, vif`` (Wald interval at ``confidence``;
            ``p_permutation`` the model-level permutation p-value, NaN for the linear model;
            ``vif`` as finally kept). For the logistic model an estimate is the change in the
            log-odds that model A wins per unit (one standard deviation across models, when
            standardised) of A's benchmark advantage; for the linear model, the change in the
            probability.
        dropped_by_vif: benchmarks screened out, in the order dropped.
        r2_marginal: variance share of the fixed effects (Nakagawa & Schielzeth 2013), on
            ``scale``.
        r2_conditional: variance share of the fixed and random effects.
        n_votes: decisive votes used.
        n_models: models in those votes.
        intercept: the log-odds (logistic) or probability (linear) that model A wins at no
            benchmark difference: position bias.
        intercept_std_error: its standard error.
        dropped_missing: benchmarks left out because a voted model has no score.
        variance_components: random-effect variances by component.
        residual_variance: the observation-level variance (pi²/3 on the latent scale).
        converged: the optimiser converged.
        fit_warnings: notes on the fit (a variance estimated at zero or not identifiable, an
            optimiser that stopped short).
        models: the models in the votes used.
        n_ties: tie and both-bad votes left out.
        n_unscored: decisive votes left out because a model has no static scores.
        standardised: whether scores were standardised across models before differencing.
        vif_threshold: the VIF screening threshold.
        random_effects: the random-effect design (``signed`` for the logistic model).
        confidence: coverage of the coefficient intervals.
        method: what was fitted (``logistic_mixed_model_laplace`` or
            ``linear_probability_mixed_model_reml``/``_ml``).
        scale: ``latent`` (logistic) or ``observed`` (linear): the scale of the R² values.
        selection_stability: for each benchmark screened, the share of the leave-one-model-out
            screens (the same votes without one model's battles) that keep it.
        permutations: score assignments evaluated for ``p_permutation`` (0 when none).
        permutation_exact: whether they were all K! assignments.
        sensitivity: the other model's fit (``method, scale, r2_marginal, r2_conditional,
            coefficients``), for the logistic primary the linear probability model.
    """

    coefficients: pd.DataFrame
    dropped_by_vif: tuple[str, ...]
    r2_marginal: float
    r2_conditional: float
    n_votes: int
    n_models: int
    intercept: float = math.nan
    intercept_std_error: float = math.nan
    dropped_missing: tuple[str, ...] = ()
    variance_components: Mapping[str, float] = field(default_factory=dict)
    residual_variance: float = math.nan
    converged: bool = True
    fit_warnings: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    n_ties: int = 0
    n_unscored: int = 0
    standardised: bool = True
    vif_threshold: float = 10.0
    random_effects: str = "signed"
    confidence: float = 0.95
    method: str = "logistic_mixed_model_laplace"
    scale: str = "latent"
    selection_stability: Mapping[str, float] = field(default_factory=dict)
    permutations: int = 0
    permutation_exact: bool = False
    sensitivity: Mapping[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready document (non-finite numbers become None)."""
        return {
            "method": self.method,
            "scale": self.scale,
            "r2_marginal": json_float(self.r2_marginal),
            "r2_conditional": json_float(self.r2_conditional),
            "coefficients": _coefficient_rows(self.coefficients),
            "dropped_by_vif": list(self.dropped_by_vif),
            "dropped_missing": list(self.dropped_missing),
            "n_votes": self.n_votes,
            "n_models": self.n_models,
            "intercept": json_float(self.intercept),
            "intercept_std_error": json_float(self.intercept_std_error),
            "variance_components": {k: json_float(v) for k, v in self.variance_components.items()},
            "residual_variance": json_float(self.residual_variance),
            "converged": self.converged,
            "fit_warnings": list(self.fit_warnings),
            "models": list(self.models),
            "n_ties": self.n_ties,
            "n_unscored": self.n_unscored,
            "standardised": self.standardised,
            "vif_threshold": self.vif_threshold,
            "random_effects": self.random_effects,
            "confidence": self.confidence,
            "selection_stability": {
                name: json_float(share) for name, share in self.selection_stability.items()
            },
            "permutations": self.permutations,
            "permutation_exact": self.permutation_exact,
            "sensitivity": None if self.sensitivity is None else dict(self.sensitivity),
        }


def _coefficient_rows(table: pd.DataFrame) -> list[dict[str, Any]]:
    """Coefficient rows as JSON-ready dicts."""
    return [
        {
            "feature": str(row["feature"]),
            **{key: json_float(float(row[key])) for key in _COEFFICIENT_KEYS if key in row},
        }
        for row in table.to_dict("records")
    ]


@dataclass(frozen=True, eq=False)
class _Design:
    """The votes and benchmark differences the regression fits."""

    votes: pd.DataFrame
    models: tuple[str, ...]
    scores: pd.DataFrame  # models x benchmarks, standardised if asked
    differences: pd.DataFrame  # votes x benchmarks
    first: NDArray[np.intp]
    second: NDArray[np.intp]
    outcome: NDArray[np.float64]
    pairs: PairedVotes  # the votes counted per ordered pair
    pair_differences: pd.DataFrame  # ordered pairs x benchmarks

    def screen(self, threshold: float) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The VIF screen of the vote-level differences, computed per pair with vote counts."""
        return screen_by_vif(self.pair_differences, threshold, self.pairs.counts)


def regress_votes_on_benchmarks(
    battles: pd.DataFrame,
    static: StaticTable,
    *,
    vif_threshold: float = 10.0,
    standardise: bool = True,
    model: RegressionModel = "logistic",
    random_effects: RandomEffects = "signed",
    reml: bool = True,
    confidence: float = 0.95,
    permutations: int = 1000,
    seed: int | None = 0,
) -> RegressionResult:
    """Regress decisive votes on the two models' benchmark differences, with model effects.

    The study's analysis: for each non-tied vote (``winner`` ``model_a`` or ``model_b``; ties and
    both-bad votes are left out), ``y = 1`` if model A won; fixed effects are
    ``score(A) - score(B)`` for each benchmark on oriented scores (higher better; by default each
    benchmark is first standardised to mean 0 and population SD 1 across the regression's
    models, so estimates compare across benchmarks); the model identities are random effects.
    Only votes between models with static scores count, and only benchmarks scored for all of
    those models (the others are listed in ``dropped_missing``).

    VIF screening (statsmodels, with a constant, on the vote-level differences): the feature with
    the highest VIF above ``vif_threshold`` is dropped and the VIFs recomputed, until none
    exceeds it; ties (every feature exactly collinear, infinite VIF) are broken by a stated rule
    that does not depend on the column order (``linear_mixed.screen_by_vif``). With K models every
    difference feature lies in a (K - 1)-dimensional space, so at most K - 1 features survive.
    ``selection_stability`` says how often each benchmark survives when one model is left out.

    ``model="logistic"`` (default): the logistic mixed model with signed model effects
    (``logistic_mixed``: Laplace approximation on the votes aggregated per ordered pair), R² on
    the latent scale (residual variance pi²/3), Wald p-values and model-level permutation
    p-values (``permutations``: all K! score assignments when that many or fewer, otherwise that
    many sampled with ``seed``). The permutation p-values are the ones to trust with few models:
    a benchmark's effect is a contrast between K models, not between thousands of votes. The
    linear probability mixed model is fitted too and reported in ``sensitivity``.

    ``model="linear"``: the linear probability mixed model by REML (``linear_mixed``) is the
    primary fit, with R² on the observed 0/1 scale (bounded far below the study's 0.99 by the
    binary outcome's own variance) and ``random_effects``: ``signed`` (as above) or ``sides``
    (lme4's ``(1 | model_a) + (1 | model_b)``). No permutation p-values.

    Once K - 1 features are kept they span every contrast between the models and the signed
    model variance is not identifiable: it is set to zero with a note (the fit is then the
    fixed-effects regression). A variance estimated at zero or an optimiser problem never
    raises; both are noted in :attr:`RegressionResult.fit_warnings`.

    Args:
        battles: one row per battle (``model_a, model_b, winner``).
        static: the static scores.
        vif_threshold: VIF screening threshold (the study's 10).
        standardise: standardise each benchmark across the models before differencing.
        model: ``logistic`` (primary, default) or ``linear``.
        random_effects: the linear model's random effects, ``signed`` or ``sides``.
        reml: REML (default) or maximum likelihood for the linear model.
        confidence: coverage of the coefficients' Wald intervals.
        permutations: the most score assignments for the permutation p-values (0: none).
        seed: seed of sampled assignments.

    Returns:
        Coefficients of the kept benchmarks with p-values, the dropped ones, and R².

    Raises:
        InvalidInputError: malformed battles or options.
        InsufficientData: fewer than 3 decisive votes or 3 models with scores, no benchmark
            scored for every voted model, every vote won by the same side, or collinear fixed
            effects (a ``vif_threshold`` too high to screen them).
    """
    static = require_static_table(static)
    if not 0.0 < confidence < 1.0:
        raise InvalidInputError(f"confidence must be between 0 and 1, got {confidence}")
    if model not in REGRESSION_MODELS:
        raise InvalidInputError(
            f"model must be one of {', '.join(REGRESSION_MODELS)}, got {model!r}"
        )
    if model == "logistic" and random_effects != "signed":
        raise InvalidInputError(
            "random_effects='sides' is a design of the linear model; use model='linear' with it"
        )
    if permutations < 0:
        raise InvalidInputError(f"permutations must be 0 or more, got {permutations}")
    clean = validate_battles(battles)
    decisive = clean[clean["winner"].isin(["model_a", "model_b"])]
    design = _design(decisive, static, standardise)
    kept, dropped = design.screen(vif_threshold)
    stability = _selection_stability(design, standardise, vif_threshold)
    linear = fit_pairwise_mixed_model(
        design.outcome,
        design.differences[list(kept)],
        design.first,
        design.second,
        design.models,
        random_effects=random_effects,
        reml=reml,
    )
    vifs = (
        variance_inflation_factors(
            design.pair_differences[list(kept)], design.pairs.counts
        ).to_numpy()
        if kept
        else np.array([], dtype=np.float64)
    )
    common: dict[str, Any] = {
        "dropped_by_vif": dropped,
        "n_votes": len(design.votes),
        "n_models": len(design.models),
        "dropped_missing": tuple(str(c) for c in static.scores.columns if c not in design.scores),
        "models": design.models,
        "n_ties": len(clean) - len(decisive),
        "n_unscored": len(decisive) - len(design.votes),
        "standardised": standardise,
        "vif_threshold": vif_threshold,
        "confidence": confidence,
        "selection_stability": stability,
    }
    linear_table = _table(kept, linear.estimate, linear.std_error, linear.p_value, confidence, vifs)
    if model == "linear":
        return RegressionResult(
            coefficients=linear_table,
            **_linear_fields(linear),
            random_effects=random_effects,
            **common,
        )
    return _logistic_result(design, kept, vifs, linear, linear_table, permutations, seed, common)


def _table(
    kept: tuple[str, ...],
    estimate: NDArray[np.float64],
    std_error: NDArray[np.float64],
    p_value: NDArray[np.float64],
    confidence: float,
    vifs: NDArray[np.float64],
    p_permutation: NDArray[np.float64] | None = None,
) -> pd.DataFrame:
    """The coefficient table of the kept benchmarks (the intercept, first, left out)."""
    half = float(norm.ppf(0.5 + confidence / 2.0)) * std_error[1:]
    return pd.DataFrame(
        {
            "feature": pd.Series(kept, dtype=object),
            "estimate": estimate[1:],
            "std_error": std_error[1:],
            "p_value": p_value[1:],
            "p_permutation": (
                np.full(len(kept), math.nan) if p_permutation is None else p_permutation
            ),
            "ci_low": estimate[1:] - half,
            "ci_high": estimate[1:] + half,
            "vif": vifs,
        }
    )


def _linear_fields(fit: MixedFit) -> dict[str, Any]:
    """The linear fit's result fields."""
    return {
        "r2_marginal": fit.r2_marginal,
        "r2_conditional": fit.r2_conditional,
        "intercept": float(fit.estimate[0]),
        "intercept_std_error": float(fit.std_error[0]),
        "variance_components": fit.variance_components,
        "residual_variance": fit.residual_variance,
        "converged": fit.converged,
        "fit_warnings": fit.warnings,
        "method": f"linear_probability_mixed_model_{fit.method.lower()}",
        "scale": "observed",
    }


def _logistic_result(
    design: _Design,
    kept: tuple[str, ...],
    vifs: NDArray[np.float64],
    linear: MixedFit,
    linear_table: pd.DataFrame,
    permutations: int,
    seed: int | None,
    common: dict[str, Any],
) -> RegressionResult:
    """Fit the logistic mixed model on the screened benchmarks and assemble the result."""
    votes = design.pairs
    scores = design.scores[list(kept)].to_numpy(dtype=np.float64)
    fixed = scores[votes.first] - scores[votes.second]
    fit = fit_logistic_mixed_model(fixed, votes)
    p_permutation: NDArray[np.float64] | None = None
    evaluated, exact = 0, False
    if permutations and kept:
        p_permutation, evaluated, exact = permutation_pvalues(
            scores, votes, permutations=permutations, seed=seed
        )
    notes: list[str] = [] if fit.converged else ["the logistic mixed model did not converge"]
    if not fit.identifiable:
        notes.append(
            "the model variance is not identifiable and is set to zero: the benchmark "
            "differences already span every contrast between the models (K - 1 features for "
            "K models), so they absorb all model effects"
        )
    elif fit.on_boundary:
        notes.append(
            "the model variance is estimated at (nearly) zero: the benchmark differences leave "
            "little model effect to estimate, or there are too few models"
        )
    linear_fields = _linear_fields(linear)
    sensitivity = {
        "method": linear_fields["method"],
        "scale": "observed",
        "r2_marginal": json_float(linear.r2_marginal),
        "r2_conditional": json_float(linear.r2_conditional),
        "variance_components": {k: json_float(v) for k, v in linear.variance_components.items()},
        "coefficients": _coefficient_rows(linear_table.drop(columns=["p_permutation"])),
    }
    return RegressionResult(
        coefficients=_table(
            kept,
            fit.estimate,
            fit.std_error,
            fit.p_value,
            common["confidence"],
            vifs,
            p_permutation,
        ),
        r2_marginal=fit.r2_marginal,
        r2_conditional=fit.r2_conditional,
        intercept=float(fit.estimate[0]),
        intercept_std_error=float(fit.std_error[0]),
        variance_components={"model": fit.model_sd**2},
        residual_variance=LATENT_RESIDUAL_VARIANCE,
        converged=fit.converged,
        fit_warnings=tuple(notes),
        random_effects="signed",
        method="logistic_mixed_model_laplace",
        scale="latent",
        permutations=evaluated,
        permutation_exact=exact,
        sensitivity=sensitivity,
        **common,
    )


def _design(decisive: pd.DataFrame, static: StaticTable, standardise: bool) -> _Design:
    """The scored decisive votes, their models and their benchmark differences."""
    oriented = static.oriented()
    scored = decisive["model_a"].isin(oriented.index) & decisive["model_b"].isin(oriented.index)
    votes = decisive[scored]
    models = tuple(sorted(set(votes["model_a"]) | set(votes["model_b"])))
    if len(votes) < 3 or len(models) < 3:
        raise InsufficientData(
            f"the vote regression needs at least 3 decisive votes among 3 models with static "
            f"scores; got {len(votes)} vote(s) among {len(models)} model(s)"
        )
    scores = oriented.loc[list(models)]
    missing = [c for c in scores.columns if scores[c].isna().any()]
    scores = scores.drop(columns=missing)
    if scores.shape[1] == 0:
        raise InsufficientData("no benchmark has a score for every model in the votes")
    outcome = np.asarray(votes["winner"] == "model_a", dtype=np.float64)
    if outcome.min() == outcome.max():
        raise InsufficientData(
            "every decisive vote went to the same side; the regression needs both outcomes"
        )
    scaled = _scaled(scores, standardise)
    differences, first, second = _differences(votes, scaled, models)
    pairs = paired_votes(first, second, outcome.astype(bool), len(models))
    values = scaled.to_numpy(dtype=np.float64)
    pair_differences = pd.DataFrame(
        values[pairs.first] - values[pairs.second], columns=scaled.columns
    )
    return _Design(
        votes, models, scaled, differences, first, second, outcome, pairs, pair_differences
    )


def _scaled(scores: pd.DataFrame, standardise: bool) -> pd.DataFrame:
    """Scores standardised across the models (population SD), or as they are."""
    if not standardise:
        return scores
    spread = scores.std(ddof=0)
    return (scores - scores.mean()) / spread.where(spread > 0, 1.0)


def _differences(
    votes: pd.DataFrame, scores: pd.DataFrame, models: tuple[str, ...]
) -> tuple[pd.DataFrame, NDArray[np.intp], NDArray[np.intp]]:
    """Each vote's benchmark differences (A minus B) and the indices of its two models."""
    index = {name: i for i, name in enumerate(models)}
    first = np.asarray(votes["model_a"].map(index), dtype=np.intp)
    second = np.asarray(votes["model_b"].map(index), dtype=np.intp)
    values = scores.loc[list(models)].to_numpy(dtype=np.float64)
    return pd.DataFrame(values[first] - values[second], columns=scores.columns), first, second


def _selection_stability(
    design: _Design, standardise: bool, vif_threshold: float
) -> dict[str, float]:
    """Share of leave-one-model-out VIF screens that keep each benchmark (see the result)."""
    kept_counts = dict.fromkeys((str(c) for c in design.scores.columns), 0)
    screens = 0
    pairs = design.pairs
    for left in range(len(design.models)):
        rest = [m for m in range(len(design.models)) if m != left]
        inside = (pairs.first != left) & (pairs.second != left)
        if len(rest) < 3 or not inside.any():
            continue
        scores = _scaled(design.scores.iloc[rest], standardise)
        position = np.full(len(design.models), -1)
        position[rest] = np.arange(len(rest))
        values = scores.to_numpy(dtype=np.float64)
        differences = pd.DataFrame(
            values[position[pairs.first[inside]]] - values[position[pairs.second[inside]]],
            columns=scores.columns,
        )
        kept, _ = screen_by_vif(differences, vif_threshold, pairs.counts[inside])
        screens += 1
        for name in kept:
            kept_counts[name] += 1
    if screens == 0:
        return {}
    return {name: count / screens for name, count in kept_counts.items()}
