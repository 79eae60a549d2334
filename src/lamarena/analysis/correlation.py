"""Static benchmarks against the interactive ranking: Kendall tau, vote regression, PCA.

The study's "static vs interactive" analyses (Li et al. 2025, "Mind the Gap", ACL), over the
models that have both an interactive rating and a static score:

- :func:`kendall_tau_table`: Kendall's tau-b between the Bradley-Terry ranking and each
  benchmark's ranking, the normalised Kendall tau rank distance the study plots, and a percentile
  bootstrap interval over battles;
- :func:`regress_votes_on_benchmarks`: a mixed-effects regression of each decisive vote on the
  two models' benchmark differences with random model effects, after VIF screening, with the
  marginal and conditional R² of Nakagawa & Schielzeth (2013) (VIF and REML in ``mixed_model``);
- :func:`static_pca`: principal components of the model x benchmark matrix (scikit-learn; in
  ``static_table``, re-exported here).

Static scores come as a :class:`StaticTable` (``static_table``; :func:`load_static_table` reads
the study's ``paper_table1_static.csv`` layout). Every analysis uses
:meth:`StaticTable.oriented` scores, in which higher is better for every benchmark (WER negated).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy.stats import kendalltau, norm

from lamarena.analysis.battles import validate_battles
from lamarena.analysis.mixed_model import (
    RandomEffects,
    fit_pairwise_mixed_model,
    screen_by_vif,
    variance_inflation_factors,
)
from lamarena.analysis.pairwise import holm_adjust
from lamarena.analysis.ranking import bootstrap_bradley_terry_result, fit_bradley_terry_result
from lamarena.analysis.static_table import (
    PcaResult,
    StaticTable,
    is_lower_better,
    load_static_table,
    require_static_table,
    static_pca,
    static_table_from_frame,
)
from lamarena.errors import InsufficientData, InvalidInputError

__all__ = [
    "MIN_SHARED_MODELS",
    "PcaResult",
    "RegressionResult",
    "StaticTable",
    "is_lower_better",
    "kendall_tau_rows",
    "kendall_tau_table",
    "load_static_table",
    "regress_votes_on_benchmarks",
    "static_pca",
    "static_table_from_frame",
    "variance_inflation_factors",
]

MIN_SHARED_MODELS = 3
"""Fewest shared models for which :func:`kendall_tau_table` computes a tau."""


def _json_float(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


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


@dataclass(frozen=True, eq=False)
class RegressionResult:
    """The vote regression of :func:`regress_votes_on_benchmarks`.

    Attributes:
        coefficients: one row per kept benchmark: ``feature, estimate, std_error, p_value,
            ci_low, ci_high, vif`` (Wald interval at ``confidence``; ``vif`` as finally kept).
            An estimate is the change in the probability that model A wins per unit (one
            standard deviation across models, when standardised) of A's benchmark advantage.
        dropped_by_vif: benchmarks screened out, in the order dropped.
        r2_marginal: variance share of the fixed effects (Nakagawa & Schielzeth 2013).
        r2_conditional: variance share of the fixed and random effects.
        n_votes: decisive votes used.
        n_models: models in those votes.
        intercept: the probability that model A wins at no benchmark difference (position bias
            shows as a departure from 0.5).
        intercept_std_error: its standard error.
        dropped_missing: benchmarks left out because a voted model has no score.
        variance_components: random-effect variances by component.
        residual_variance: the observation-level variance.
        converged: the optimiser converged.
        fit_warnings: notes on the fit (a variance estimated at zero or not identifiable, an
            optimiser that stopped short).
        models: the models in the votes used.
        n_ties: tie and both-bad votes left out.
        n_unscored: decisive votes left out because a model has no static scores.
        standardised: whether scores were standardised across models before differencing.
        vif_threshold: the VIF screening threshold.
        random_effects: ``signed`` or ``sides`` (see :func:`regress_votes_on_benchmarks`).
        confidence: coverage of the coefficient intervals.
        method: what was fitted.
        selection_stability: for each benchmark screened, the share of the leave-one-model-out
            screens (the same votes without one model's battles) that keep it: 1.0 for a
            benchmark whose selection does not hang on one model.
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
    method: str = "linear_probability_mixed_model_reml"
    selection_stability: Mapping[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready document (non-finite numbers become None)."""
        return {
            "r2_marginal": _json_float(self.r2_marginal),
            "r2_conditional": _json_float(self.r2_conditional),
            "coefficients": [
                {
                    "feature": str(row.feature),
                    **{
                        key: _json_float(getattr(row, key))
                        for key in ("estimate", "std_error", "p_value", "ci_low", "ci_high", "vif")
                    },
                }
                for row in self.coefficients.itertuples(index=False)
            ],
            "dropped_by_vif": list(self.dropped_by_vif),
            "dropped_missing": list(self.dropped_missing),
            "n_votes": self.n_votes,
            "n_models": self.n_models,
            "intercept": _json_float(self.intercept),
            "intercept_std_error": _json_float(self.intercept_std_error),
            "variance_components": {k: _json_float(v) for k, v in self.variance_components.items()},
            "residual_variance": _json_float(self.residual_variance),
            "converged": self.converged,
            "fit_warnings": list(self.fit_warnings),
            "models": list(self.models),
            "n_ties": self.n_ties,
            "n_unscored": self.n_unscored,
            "standardised": self.standardised,
            "vif_threshold": self.vif_threshold,
            "random_effects": self.random_effects,
            "confidence": self.confidence,
            "method": self.method,
            "selection_stability": {
                name: _json_float(share) for name, share in self.selection_stability.items()
            },
        }


def regress_votes_on_benchmarks(
    battles: pd.DataFrame,
    static: StaticTable,
    *,
    vif_threshold: float = 10.0,
    standardise: bool = True,
    random_effects: RandomEffects = "signed",
    reml: bool = True,
    confidence: float = 0.95,
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
    exceeds it; among exactly collinear features (infinite VIF) the one listed last goes first,
    so table order decides between them. With K models every difference feature lies in a
    (K - 1)-dimensional space, so at most K - 1 features survive: the study's 6 models left 5 of
    its 20 datasets, as it reports (15 dropped).

    The model is a linear probability mixed model (a linear mixed model of the 0/1 outcome, by
    REML), chosen because statsmodels has no frequentist logistic mixed model (its
    ``BinomialBayesMixedGLM`` is variational Bayes, without p-values) and because Nakagawa &
    Schielzeth's R² has its plain form for a linear mixed model. Its coefficients are
    probabilities, easy to read; its errors are heteroscedastic (variance p(1 - p)), which is
    mild while predicted probabilities stay between about 0.2 and 0.8. The likelihood is written
    out in ``mixed_model`` (statsmodels' ``MixedLM`` fails on this crossed design when a variance
    is near zero; the tests check the two agree where ``MixedLM`` converges). p-values and
    intervals are Wald z, as ``MixedLM`` reports them; the fixed effects are model-level
    contrasts, so with few models they are somewhat liberal (about 91% coverage at a nominal 95%
    with 20 models in simulation). The R² values are on the observed 0/1 scale, so the binary
    outcome's own variance bounds the conditional R² far below the study's 0.99 (whose exact
    model the paper does not give). Random effects (``random_effects``):

    - ``signed`` (default): one random strength per model, added for model A and subtracted for
      model B (a multi-membership design: Bradley-Terry's model strengths beyond what the
      benchmarks explain), so a model is the same model on either side. Once K - 1 features are
      kept, they span every contrast between the models and this variance is not identifiable:
      it is set to zero (the fit is then ordinary least squares) with a note.
    - ``sides``: separate random intercepts for the model in position A and in position B, the
      lme4-style ``(1 | model_a) + (1 | model_b)`` the study's description also fits.

    R² (Nakagawa & Schielzeth 2013, with Johnson's 2014 averaging): marginal = var(fixed
    predictions) / (that + random variance + residual variance); conditional adds the random
    variance to the numerator. A variance estimated at zero or an optimiser problem never
    raises: both are noted in :attr:`RegressionResult.fit_warnings`, beside
    :attr:`RegressionResult.converged`.

    Args:
        battles: one row per battle (``model_a, model_b, winner``).
        static: the static scores.
        vif_threshold: VIF screening threshold (the study's 10).
        standardise: standardise each benchmark across the models before differencing.
        random_effects: ``signed`` or ``sides`` (above).
        reml: REML (default) or maximum likelihood.
        confidence: coverage of the coefficients' Wald intervals.

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
    clean = validate_battles(battles)
    decisive = clean[clean["winner"].isin(["model_a", "model_b"])]
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
    missing = tuple(str(c) for c in scores.columns if scores[c].isna().any())
    scores = scores.drop(columns=list(missing))
    if scores.shape[1] == 0:
        raise InsufficientData("no benchmark has a score for every model in the votes")
    differences, first, second = _differences(votes, scores, models, standardise)
    outcome = np.asarray(votes["winner"] == "model_a", dtype=np.float64)
    if outcome.min() == outcome.max():
        raise InsufficientData(
            "every decisive vote went to the same side; the regression needs both outcomes"
        )
    kept, dropped = screen_by_vif(differences, vif_threshold)
    stability = _selection_stability(votes, scores, models, standardise, vif_threshold)
    fit = fit_pairwise_mixed_model(
        outcome,
        differences[list(kept)],
        first,
        second,
        models,
        random_effects=random_effects,
        reml=reml,
    )
    half = float(norm.ppf(0.5 + confidence / 2.0)) * fit.std_error[1:]
    vifs = (
        variance_inflation_factors(differences[list(kept)]).to_numpy()
        if kept
        else np.array([], dtype=np.float64)
    )
    coefficients = pd.DataFrame(
        {
            "feature": pd.Series(kept, dtype=object),
            "estimate": fit.estimate[1:],
            "std_error": fit.std_error[1:],
            "p_value": fit.p_value[1:],
            "ci_low": fit.estimate[1:] - half,
            "ci_high": fit.estimate[1:] + half,
            "vif": vifs,
        }
    )
    return RegressionResult(
        coefficients=coefficients,
        dropped_by_vif=dropped,
        r2_marginal=fit.r2_marginal,
        r2_conditional=fit.r2_conditional,
        n_votes=len(votes),
        n_models=len(models),
        intercept=float(fit.estimate[0]),
        intercept_std_error=float(fit.std_error[0]),
        dropped_missing=missing,
        variance_components=fit.variance_components,
        residual_variance=fit.residual_variance,
        converged=fit.converged,
        fit_warnings=fit.warnings,
        models=models,
        n_ties=len(clean) - len(decisive),
        n_unscored=len(decisive) - len(votes),
        standardised=standardise,
        vif_threshold=vif_threshold,
        random_effects=random_effects,
        confidence=confidence,
        method=f"linear_probability_mixed_model_{fit.method.lower()}",
        selection_stability=stability,
    )


def _differences(
    votes: pd.DataFrame, scores: pd.DataFrame, models: tuple[str, ...], standardise: bool
) -> tuple[pd.DataFrame, NDArray[np.intp], NDArray[np.intp]]:
    """Each vote's benchmark differences (A minus B) and the indices of its two models."""
    scores = scores.loc[list(models)]
    if standardise:
        spread = scores.std(ddof=0)
        scores = (scores - scores.mean()) / spread.where(spread > 0, 1.0)
    index = {name: i for i, name in enumerate(models)}
    first = np.asarray(votes["model_a"].map(index), dtype=np.intp)
    second = np.asarray(votes["model_b"].map(index), dtype=np.intp)
    values = scores.to_numpy(dtype=np.float64)
    return pd.DataFrame(values[first] - values[second], columns=scores.columns), first, second


def _selection_stability(
    votes: pd.DataFrame,
    scores: pd.DataFrame,
    models: tuple[str, ...],
    standardise: bool,
    vif_threshold: float,
) -> dict[str, float]:
    """Share of leave-one-model-out VIF screens that keep each benchmark (see the result)."""
    kept_counts = dict.fromkeys((str(c) for c in scores.columns), 0)
    screens = 0
    for left_out in models:
        rest = tuple(m for m in models if m != left_out)
        subset = votes[(votes["model_a"] != left_out) & (votes["model_b"] != left_out)]
        if len(rest) < 3 or subset.empty:
            continue
        differences, _, _ = _differences(subset, scores, rest, standardise)
        kept, _ = screen_by_vif(differences, vif_threshold)
        screens += 1
        for name in kept:
            kept_counts[name] += 1
    if screens == 0:
        return {}
    return {name: count / screens for name, count in kept_counts.items()}
