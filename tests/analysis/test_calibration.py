"""Calibration on simulated data: interval coverage and false-positive rate of the pairwise tests.

Each study draws 200 data sets of 8 models from known strengths (ties at 10% between evenly
matched models) with fixed seeds, so the measured rates are deterministic; the bounds leave room
for Monte Carlo error (with 1,600 pooled intervals the standard error of a 95% coverage is about
0.55 points).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import pytest

from lamarena.analysis.ranking.bradley_terry import (
    bootstrap_bradley_terry_result,
    fit_bradley_terry_result,
    pairwise_tests,
)
from lamarena.simulation import parse_strengths, simulate_battles

N_DATASETS = 200
N_BATTLES = 1000
N_ROUNDS = 1000
N_MODELS = 8


@dataclass(frozen=True)
class Coverage:
    bootstrap: float
    analytic: float
    intervals: int


@dataclass(frozen=True)
class FalsePositives:
    per_pair_bootstrap: float
    per_pair_analytic: float
    family_bootstrap: float
    family_analytic: float
    tests: int


@pytest.fixture(
    scope="module",
    params=[(N_BATTLES, 400.0), (400, 800.0)],
    ids=["1000-battles-400-elo-spread", "400-battles-800-elo-spread"],
)
def coverage(request: pytest.FixtureRequest) -> Coverage:
    n_battles, spread_elo = request.param
    hits_boot = hits_analytic = total = 0
    for dataset in range(N_DATASETS):
        strengths = pd.Series(parse_strengths(str(N_MODELS), seed=dataset, spread_elo=spread_elo))
        truth = strengths - strengths.mean() + 1000.0
        battles = simulate_battles(strengths.to_dict(), n_battles, seed=1000 + dataset)
        fit = fit_bradley_terry_result(battles)
        assert len(fit.ratings) == N_MODELS
        boot = bootstrap_bradley_terry_result(battles, rounds=N_ROUNDS, seed=dataset, fit=fit)
        true = truth[fit.ratings.index]
        ci = boot.intervals(0.95).loc[fit.ratings.index]
        hits_boot += int(((ci["ci_low"] <= true) & (true <= ci["ci_high"])).sum())
        wald = fit.intervals(0.95)
        hits_analytic += int(((wald["ci_low"] <= true) & (true <= wald["ci_high"])).sum())
        total += len(true)
    return Coverage(hits_boot / total, hits_analytic / total, total)


@pytest.fixture(scope="module")
def false_positives() -> FalsePositives:
    equal = {f"m{i}": 1000.0 for i in range(N_MODELS)}
    raw_boot = raw_analytic = family_boot = family_analytic = tests = 0
    for dataset in range(N_DATASETS):
        battles = simulate_battles(equal, N_BATTLES, seed=5000 + dataset)
        fit = fit_bradley_terry_result(battles)
        boot = bootstrap_bradley_terry_result(battles, rounds=N_ROUNDS, seed=dataset, fit=fit)
        by_boot = pairwise_tests(fit.ratings, boot.covariance())
        by_sandwich = pairwise_tests(fit.ratings, fit.robust_covariance)
        raw_boot += int((by_boot["p_value"] < 0.05).sum())
        raw_analytic += int((by_sandwich["p_value"] < 0.05).sum())
        family_boot += int(by_boot["significant"].any())
        family_analytic += int(by_sandwich["significant"].any())
        tests += len(by_boot)
    return FalsePositives(
        raw_boot / tests,
        raw_analytic / tests,
        family_boot / N_DATASETS,
        family_analytic / N_DATASETS,
        tests,
    )


@pytest.mark.slow
def test_bootstrap_percentile_intervals_cover_true_ratings_95_percent(coverage: Coverage) -> None:
    print(f"bootstrap 95% coverage {coverage.bootstrap:.4f} over {coverage.intervals} intervals")
    assert coverage.intervals == N_DATASETS * N_MODELS
    assert 0.93 <= coverage.bootstrap <= 0.97


@pytest.mark.slow
def test_analytic_sandwich_intervals_cover_true_ratings_95_percent(coverage: Coverage) -> None:
    print(f"analytic 95% coverage {coverage.analytic:.4f} over {coverage.intervals} intervals")
    assert 0.93 <= coverage.analytic <= 0.97


@pytest.mark.slow
def test_pairwise_tests_keep_false_positives_at_most_5_percent(
    false_positives: FalsePositives,
) -> None:
    print(false_positives)
    assert false_positives.tests == N_DATASETS * N_MODELS * (N_MODELS - 1) // 2
    # Holm controls the family-wise error: any false "significant" among the 28 pairs
    assert false_positives.family_bootstrap <= 0.05
    assert false_positives.family_analytic <= 0.05
    # each unadjusted test at level 0.05 (Monte Carlo slack of about two standard errors)
    assert false_positives.per_pair_bootstrap <= 0.06
    assert false_positives.per_pair_analytic <= 0.06
