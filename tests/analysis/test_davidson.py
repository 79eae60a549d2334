"""Bradley-Terry-Davidson ties (issue 12): checked against the likelihood written out by hand.

The hand-derived likelihood sums, battle by battle, the log of Davidson's (1970) probability of
what happened; an optimiser that uses no gradient maximises it. The fit must land on the same
strengths and tie parameter, its gradient must match finite differences, and a simulation whose
truth is set must be recovered within its intervals.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import minimize

from analysis.builders import frame
from lamarena.analysis.battles import count_pairs, rated_pairs, validate_battles
from lamarena.analysis.ranking.davidson import _negative_log_likelihood, fit_davidson
from lamarena.analysis.ranking.leaderboard import build_leaderboard
from lamarena.errors import InsufficientData, InvalidInputError

ELO = 400.0 / np.log(10.0)


def _draw(theta: dict[str, float], nu: float, n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    names = list(theta)
    rows = []
    for _ in range(n):
        i, j = rng.choice(len(names), size=2, replace=False)
        pi, pj = np.exp(theta[names[i]]), np.exp(theta[names[j]])
        tie = nu * np.sqrt(pi * pj)
        u = rng.random() * (pi + pj + tie)
        winner = "model_a" if u < pi else ("model_b" if u < pi + pj else "tie")
        rows.append((names[i], names[j], winner))
    return frame(rows)


def _by_hand(battles: pd.DataFrame, names: list[str], params: np.ndarray) -> float:
    """Minus the log-likelihood, one battle at a time (theta of names[0] fixed at 0)."""
    theta = dict(zip(names, np.concatenate([[0.0], params[:-1]]), strict=True))
    nu = np.exp(params[-1])
    total = 0.0
    for a, b, winner in battles[["model_a", "model_b", "winner"]].itertuples(index=False):
        pa, pb = np.exp(theta[a]), np.exp(theta[b])
        tie = nu * np.sqrt(pa * pb)
        chance = {"model_a": pa, "model_b": pb}.get(winner, tie) / (pa + pb + tie)
        total -= np.log(chance)
    return total


def test_the_fit_maximises_the_likelihood_written_out_by_hand() -> None:
    battles = _draw({"a": 0.0, "b": -0.4, "c": 0.5}, nu=0.7, n=400, seed=1)
    rated = rated_pairs(count_pairs(validate_battles(battles)))
    names = list(rated.models)

    fit = fit_davidson(rated)
    independent = minimize(
        lambda p: _by_hand(battles, names, p),
        np.zeros(len(names)),
        method="Nelder-Mead",
        options={"xatol": 1e-7, "fatol": 1e-9, "maxiter": 20_000},
    )

    np.testing.assert_allclose(fit.theta[1:], independent.x[:-1], atol=2e-3)
    assert np.log(fit.tie_parameter) == pytest.approx(independent.x[-1], abs=2e-3)
    assert fit.log_likelihood == pytest.approx(-independent.fun, abs=1e-6)


def test_the_analytic_gradient_matches_finite_differences() -> None:
    battles = _draw({"a": 0.0, "b": 0.3, "c": -0.2, "d": 0.8}, nu=1.2, n=300, seed=2)
    rated = rated_pairs(count_pairs(validate_battles(battles)))
    point = np.array([0.1, -0.3, 0.6, np.log(0.9)])
    _, gradient = _negative_log_likelihood(point, rated)
    step = 1e-6
    for k in range(point.size):
        shift = np.zeros_like(point)
        shift[k] = step
        numeric = (
            _negative_log_likelihood(point + shift, rated)[0]
            - _negative_log_likelihood(point - shift, rated)[0]
        ) / (2 * step)
        assert gradient[k] == pytest.approx(numeric, rel=1e-5, abs=1e-6)


def test_a_simulated_truth_is_recovered_within_its_intervals() -> None:
    truth = {"a": 0.0, "b": 0.35, "c": -0.25, "d": 0.7}
    battles = _draw(truth, nu=0.6, n=12_000, seed=3)

    document = build_leaderboard(battles, ties="davidson", cluster="none").to_dict()

    tie = document["tie_parameter"]
    assert document["ties"] == "davidson" and document["method"] == "bradley_terry_davidson"
    assert tie["ci_low"] < 0.6 < tie["ci_high"]
    assert tie["p_tie_if_equal"] == pytest.approx(tie["nu"] / (2 + tie["nu"]))
    rating = {row["model"]: row for row in document["models"]}
    for name, value in truth.items():
        expected = ELO * (value - truth["a"])
        got = rating[name]["rating"] - rating["a"]["rating"]
        se = rating[name]["ci_high"] - rating[name]["rating"]  # 1.96 se of the rating
        assert abs(got - expected) <= 1.5 * se, (name, got, expected)


def test_davidson_needs_ties_and_no_style_control() -> None:
    decisive = frame([("a", "b", "model_a"), ("b", "a", "model_a")] * 5)
    with pytest.raises(InsufficientData, match="tie parameter has no estimate"):
        build_leaderboard(decisive, ties="davidson")
    with pytest.raises(InvalidInputError, match="ties must be"):
        build_leaderboard(decisive, ties="thirds")
