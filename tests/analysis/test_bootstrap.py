"""Batched bootstrap: exactness of the batched solver, reproducibility, degenerate rounds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import minimize

from analysis.builders import frame
from lamarena.analysis.ranking.bootstrap import BOOTSTRAP_RIDGE, percentile_bounds
from lamarena.analysis.ranking.bradley_terry import (
    bootstrap_bradley_terry,
    bootstrap_bradley_terry_result,
    fit_bradley_terry_result,
)
from lamarena.analysis.ranking.bt_solver import newton_pairs
from lamarena.errors import InsufficientData, InvalidInputError
from lamarena.simulation import parse_strengths, simulate_battles


@pytest.fixture(scope="module")
def battles() -> pd.DataFrame:
    return simulate_battles(parse_strengths("6", seed=11), 3000, seed=11, tie_rate=0.15)


def test_batched_newton_matches_scipy_on_each_round() -> None:
    rng = np.random.default_rng(0)
    first, second = np.triu_indices(5, k=1)
    battles_per_pair = rng.integers(0, 30, size=(40, first.size)).astype(float)
    battles_per_pair[:, :4] += 1  # keep the graph connected through model 0
    scored = rng.binomial(battles_per_pair.astype(int), 0.6) + 0.5 * rng.binomial(
        1, 0.2, size=battles_per_pair.shape
    )
    scored = np.minimum(scored, battles_per_pair)
    result = newton_pairs(
        np.zeros((40, 5)), scored, battles_per_pair, first, second, ridge=BOOTSTRAP_RIDGE
    )
    assert result.converged.all()
    for r in range(0, 40, 7):

        def objective(theta: np.ndarray, r: int = r) -> float:
            d = theta[first] - theta[second]
            s, n = scored[r], battles_per_pair[r]
            value = np.sum(s * np.logaddexp(0, -d) + (n - s) * np.logaddexp(0, d))
            return float(value + 0.5 * BOOTSTRAP_RIDGE * np.sum(theta**2))

        reference = minimize(objective, np.zeros(5), method="BFGS", options={"gtol": 1e-9}).x
        np.testing.assert_allclose(result.theta[r], reference, atol=1e-5)
        assert abs(result.theta[r].sum()) < 1e-9


def test_same_seed_same_rounds_whatever_the_row_order(battles: pd.DataFrame) -> None:
    first = bootstrap_bradley_terry(battles, 300, 7)
    shuffled = bootstrap_bradley_terry(battles.sample(frac=1.0, random_state=3), 300, 7)
    pd.testing.assert_frame_equal(first, shuffled)
    other = bootstrap_bradley_terry(battles, 300, 8)
    assert not np.allclose(first.to_numpy(), other.to_numpy())
    assert first.shape == (300, 6)


def test_bootstrap_centres_on_the_mle_with_the_analytic_spread(battles: pd.DataFrame) -> None:
    fit = fit_bradley_terry_result(battles)
    boot = bootstrap_bradley_terry_result(battles, rounds=4000, seed=1, fit=fit)
    assert boot.unconverged == 0
    np.testing.assert_allclose(boot.samples.mean(axis=1), 1000.0, atol=1e-6)
    median = boot.samples.median()[fit.ratings.index]
    se = np.sqrt(np.diag(fit.robust_covariance.loc[fit.ratings.index, fit.ratings.index]))
    assert (np.abs(median - fit.ratings) < 0.1 * se).all()
    np.testing.assert_allclose(boot.samples.std()[fit.ratings.index], se, rtol=0.08)
    intervals = boot.intervals(0.95)
    assert (intervals["ci_low"] < fit.ratings).all()
    assert (intervals["ci_high"] > fit.ratings).all()


def test_multinomial_resampling_matches_resampling_battles(battles: pd.DataFrame) -> None:
    """Same spread as the textbook bootstrap that refits one resample of the rows at a time."""
    rng = np.random.default_rng(5)
    rounds = [
        fit_bradley_terry_result(battles.iloc[rng.integers(0, len(battles), len(battles))]).ratings
        for _ in range(150)
    ]
    textbook = pd.DataFrame(rounds)
    ours = bootstrap_bradley_terry(battles, 4000, 5)
    ratio = ours.std() / textbook.std()[ours.columns]
    assert ((ratio > 0.8) & (ratio < 1.25)).all(), ratio


def test_rarely_beaten_model_gets_an_unbounded_upper_bound_not_a_huge_number() -> None:
    base = simulate_battles(parse_strengths("a,b,c,d", seed=0), 400, seed=0)
    rows = [("star", "a", "model_a")] * 10 + [("b", "star", "model_b")] * 10
    rows += [("star", "c", "model_a")] * 9 + [("star", "d", "model_b")]  # its only loss
    battles = pd.concat([base[["model_a", "model_b", "winner"]], frame(rows)], ignore_index=True)
    boot = bootstrap_bradley_terry_result(battles, rounds=2000, seed=1)
    # the loss is left out of a resample with probability (1 - 1/n)^n ~ e^-1
    assert boot.unbounded_rate["star"] == pytest.approx(np.exp(-1), abs=0.04)
    assert boot.unbounded_rate.drop("star").max() == 0.0
    assert boot.unconverged == 0
    assert np.isfinite(boot.samples.to_numpy()).all()
    assert boot.samples["star"].max() < 2500.0
    intervals = boot.intervals()
    assert intervals.loc["star", "ci_high"] == np.inf
    assert np.isfinite(intervals.loc["star", "ci_low"])
    assert np.isfinite(intervals.drop("star").to_numpy()).all()


def test_percentile_bounds_treat_flagged_rounds_as_infinite() -> None:
    samples = np.tile(np.arange(100.0)[:, None], (1, 2))
    above = np.zeros_like(samples, dtype=bool)
    below = np.zeros_like(samples, dtype=bool)
    above[:2, 0] = True  # 2% unbounded above: the 97.5% bound still exists
    below[:10, 1] = True  # 10% unbounded below: no 2.5% bound
    low, high = percentile_bounds(samples, above, below, 0.95)
    assert np.isfinite(high[0])
    assert high[0] == pytest.approx(np.quantile(np.r_[np.arange(2.0, 100.0), [1e9, 1e9]], 0.975))
    assert low[1] == -np.inf
    assert np.isfinite(high[1])
    unflagged, _ = percentile_bounds(samples, np.zeros_like(above), np.zeros_like(below), 0.9)
    np.testing.assert_allclose(unflagged, np.quantile(samples, 0.05, axis=0))


def test_bootstrap_needs_two_rated_models_and_positive_rounds() -> None:
    with pytest.raises(InsufficientData):
        bootstrap_bradley_terry(frame([("a", "b", "model_a")]), 10, 0)
    with pytest.raises(InvalidInputError, match="rounds"):
        bootstrap_bradley_terry(frame([("a", "b", "tie")]), 0, 0)


def test_bootstrap_ignores_battles_of_unrated_models_but_keeps_their_weight(
    battles: pd.DataFrame,
) -> None:
    extra = frame([("lucky", "model-1", "model_a")] * 3)
    with_extra = pd.concat([battles[["model_a", "model_b", "winner"]], extra], ignore_index=True)
    boot = bootstrap_bradley_terry_result(with_extra, rounds=50, seed=0)
    assert "lucky" not in boot.samples.columns
    assert boot.samples.shape == (50, 6)


def test_zero_width_bootstrap_interval_only_for_models_flagged_only_ties() -> None:
    # review reproduction: every resample of five ties is five ties again
    battles = frame([("a", "b", "tie")] * 5)
    fit = fit_bradley_terry_result(battles)
    intervals = bootstrap_bradley_terry_result(battles, rounds=200, seed=0, fit=fit).intervals()
    exact = intervals.index[intervals["ci_low"] == intervals["ci_high"]]
    assert list(exact) == ["a", "b"]
    for model in exact:
        assert model in fit.provisional
        assert "only_ties" in fit.reasons[model]
