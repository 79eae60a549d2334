"""The logistic mixed model of paired votes and its model-level permutation test."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from lamarena.analysis.gap import StaticTable, regress_votes_on_benchmarks
from lamarena.analysis.gap.logistic_mixed import (
    LATENT_RESIDUAL_VARIANCE,
    PairedVotes,
    fit_logistic_mixed_model,
    paired_votes,
    permutation_pvalues,
)
from lamarena.errors import InsufficientData, InvalidInputError


def logistic_study(
    seed: int,
    *,
    models: int = 12,
    votes: int = 4000,
    beta: tuple[float, ...] = (0.6, -0.3),
    model_sd: float = 0.5,
    intercept: float = 0.1,
    scores: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Votes from ``logit P(A wins) = intercept + (x_A - x_B)' beta + u_A - u_B``.

    Returns ``(scores (K, p), first, second, a_won)``; the scores are standard normal, the model
    effects ``u`` normal with SD ``model_sd``: the signed logistic mixed model exactly.
    """
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(models, len(beta))) if scores is None else scores
    u = rng.normal(scale=model_sd, size=models)
    first = rng.integers(0, models, votes)
    second = (first + rng.integers(1, models, votes)) % models
    eta = intercept + (x[first] - x[second]) @ np.array(beta) + u[first] - u[second]
    a_won = rng.random(votes) < 1.0 / (1.0 + np.exp(-eta))
    return x, first, second, a_won


def fit_study(
    x: np.ndarray, first: np.ndarray, second: np.ndarray, a_won: np.ndarray, **kwargs: float
) -> tuple[PairedVotes, object]:
    votes = paired_votes(first, second, a_won, x.shape[0])
    fit = fit_logistic_mixed_model(x[votes.first] - x[votes.second], votes, **kwargs)
    return votes, fit


def test_at_zero_model_variance_the_fit_is_statsmodels_logit_on_the_votes() -> None:
    x, first, second, a_won = logistic_study(1, model_sd=0.0)
    _, fit = fit_study(x, first, second, a_won, model_sd=0.0)
    reference = sm.Logit(a_won.astype(float), sm.add_constant(x[first] - x[second])).fit(disp=0)
    np.testing.assert_allclose(fit.estimate, reference.params, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(fit.std_error, reference.bse, rtol=1e-6)
    np.testing.assert_allclose(fit.p_value, reference.pvalues, rtol=1e-5)
    assert fit.deviance == pytest.approx(-2.0 * reference.llf, rel=1e-10)
    assert fit.random_variance == 0.0 and fit.r2_conditional == fit.r2_marginal


def test_with_no_model_variance_the_estimated_fit_agrees_with_logit() -> None:
    x, first, second, a_won = logistic_study(2, models=15, votes=6000, model_sd=0.0)
    _, fit = fit_study(x, first, second, a_won)
    reference = sm.Logit(a_won.astype(float), sm.add_constant(x[first] - x[second])).fit(disp=0)
    assert fit.model_sd < 0.12
    np.testing.assert_allclose(fit.estimate, reference.params, atol=0.5 * reference.bse.min())
    assert fit.converged


def test_aggregating_votes_per_pair_changes_nothing() -> None:
    x, first, second, a_won = logistic_study(3, models=8, votes=800)
    votes, fit = fit_study(x, first, second, a_won)
    assert votes.counts.sum() == 800 and votes.first.size <= 8 * 7
    one_row_per_vote = PairedVotes(
        first=first.astype(np.intp),
        second=second.astype(np.intp),
        wins=a_won.astype(float),
        counts=np.ones(first.size),
        n_models=8,
    )
    again = fit_logistic_mixed_model(x[first] - x[second], one_row_per_vote)
    np.testing.assert_allclose(again.estimate, fit.estimate, rtol=1e-6)
    np.testing.assert_allclose(again.std_error, fit.std_error, rtol=1e-6)
    assert again.model_sd == pytest.approx(fit.model_sd, rel=1e-4)


def test_latent_r2_follows_nakagawa_with_pi_squared_over_three() -> None:
    x, first, second, a_won = logistic_study(4)
    _, fit = fit_study(x, first, second, a_won)
    predictions = (x[first] - x[second]) @ fit.estimate[1:]  # per vote, independently
    fixed = predictions.var()
    random = 2.0 * fit.model_sd**2
    total = fixed + random + math.pi**2 / 3.0
    assert math.isclose(LATENT_RESIDUAL_VARIANCE, 3.28986813, rel_tol=1e-8)
    assert fit.r2_marginal == pytest.approx(fixed / total, rel=1e-9)
    assert fit.r2_conditional == pytest.approx((fixed + random) / total, rel=1e-9)


@pytest.mark.slow
def test_estimates_and_model_variance_are_recovered_in_simulation() -> None:
    beta = np.array([0.6, -0.3])
    scores = np.random.default_rng(50).normal(size=(30, 2))
    estimates, errors, sds = [], [], []
    for seed in range(40):
        x, first, second, a_won = logistic_study(
            seed, models=30, votes=6000, scores=scores, model_sd=0.5
        )
        _, fit = fit_study(x, first, second, a_won)
        estimates.append(fit.estimate[1:])
        errors.append(fit.std_error[1:])
        sds.append(fit.model_sd)
    estimate, error = np.array(estimates), np.array(errors)
    spread = estimate.std(axis=0)
    assert np.all(np.abs(estimate.mean(axis=0) - beta) < 3 * spread / np.sqrt(40) + 0.02)
    # the standard errors carry the model variance: they match the spread over studies
    assert np.all((error.mean(axis=0) > 0.75 * spread) & (error.mean(axis=0) < 1.35 * spread))
    # ML shrinks a variance from 30 draws by about (K - 1) / K; the mean SD lands near 0.5
    assert 0.4 < float(np.mean(sds)) < 0.55


@pytest.mark.slow
def test_permutation_p_values_are_calibrated_with_six_models_where_wald_is_not() -> None:
    studies, permutation_rejections, wald_rejections = 200, 0, 0
    for seed in range(studies):
        rng = np.random.default_rng(1000 + seed)
        null_scores = rng.normal(size=(6, 1))  # unrelated to the models' strengths
        _, first, second, a_won = logistic_study(
            seed, models=6, votes=1500, beta=(0.0,), scores=null_scores, intercept=0.0
        )
        votes, fit = fit_study(null_scores, first, second, a_won)
        p_values, evaluated, exact = permutation_pvalues(null_scores, votes)
        assert evaluated == 720 and exact
        permutation_rejections += int(p_values[0] <= 0.05)
        wald_rejections += int(fit.p_value[1] <= 0.05)
    # 200 studies: a binomial SD of 1.5 points around 5%
    assert 0.015 <= permutation_rejections / studies <= 0.085
    assert wald_rejections / studies >= 0.09  # the votes-as-sample test over-rejects


def test_exact_p_values_rank_the_observed_statistic_among_all_assignments() -> None:
    x, first, second, a_won = logistic_study(5, models=5, votes=2000, beta=(1.0,), model_sd=0.1)
    votes, _ = fit_study(x, first, second, a_won)
    p_values, evaluated, exact = permutation_pvalues(x, votes)
    assert exact and evaluated == 120
    assert p_values[0] * 120 == pytest.approx(round(p_values[0] * 120))
    assert p_values[0] <= 2 / 120  # a strong effect: at most its mirror image reaches it
    sampled, evaluated, exact = permutation_pvalues(x, votes, permutations=50, seed=1)
    assert not exact and evaluated == 51
    assert sampled[0] == pytest.approx(1 / 51, abs=1 / 51)


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="itself"):
        paired_votes(np.array([0, 1]), np.array([0, 2]), np.array([True, False]), 3)
    with pytest.raises(InvalidInputError, match=r"0\.\.2"):
        paired_votes(np.array([0, 3]), np.array([1, 2]), np.array([True, False]), 3)
    x, first, second, a_won = logistic_study(6, models=4, votes=300)
    votes = paired_votes(first, second, a_won, 4)
    with pytest.raises(InvalidInputError, match="one row per ordered pair"):
        fit_logistic_mixed_model(x[:2], votes)
    with pytest.raises(InvalidInputError, match="permutations"):
        permutation_pvalues(x, votes, permutations=0)


def test_separated_votes_are_insufficient_data_not_infinite_estimates() -> None:
    first = np.array([0, 1, 0, 2, 1, 2] * 20)
    second = np.array([1, 0, 2, 0, 2, 1] * 20)
    x = np.array([[3.0], [2.0], [1.0]])
    a_won = x[first, 0] > x[second, 0]  # the better-scored model always wins
    votes = paired_votes(first, second, a_won, 3)
    with pytest.raises(InsufficientData, match="separate"):
        fit_logistic_mixed_model(x[votes.first] - x[votes.second], votes, model_sd=0.0)


def test_the_regression_reports_the_logistic_fit_with_the_linear_one_as_sensitivity() -> None:
    x, first, second, a_won = logistic_study(7, models=6, votes=3000, beta=(0.8,), model_sd=0.3)
    names = np.array([f"m{i}" for i in range(6)], dtype=object)
    battles = pd.DataFrame(
        {
            "model_a": names[first],
            "model_b": names[second],
            "winner": np.where(a_won, "model_a", "model_b"),
        }
    )
    static = StaticTable(pd.DataFrame(x, index=names, columns=["f1"]))
    result = regress_votes_on_benchmarks(battles, static, standardise=False)
    document = result.to_dict()
    assert document["method"] == "logistic_mixed_model_laplace"
    assert document["scale"] == "latent"
    assert document["residual_variance"] == pytest.approx(math.pi**2 / 3.0)
    assert document["permutations"] == 720 and document["permutation_exact"]
    row = document["coefficients"][0]
    assert row["estimate"] == pytest.approx(0.8, abs=4 * row["std_error"])
    assert 1 / 720 <= row["p_permutation"] <= 1.0
    sensitivity = document["sensitivity"]
    assert sensitivity["scale"] == "observed"
    assert sensitivity["method"] == "linear_probability_mixed_model_reml"
    # the same votes on the probability scale: a smaller slope with the same sign
    linear = sensitivity["coefficients"][0]
    assert 0 < linear["estimate"] < row["estimate"]
    assert "p_permutation" not in linear
    alone = regress_votes_on_benchmarks(battles, static, standardise=False, model="linear")
    assert alone.coefficients["estimate"].iloc[0] == pytest.approx(linear["estimate"])
    assert alone.to_dict()["sensitivity"] is None and alone.scale == "observed"
