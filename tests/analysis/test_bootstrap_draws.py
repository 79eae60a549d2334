"""The bootstrap's draws at scale: the same distributions as the plain draws, and the same numbers.

Above a million battles a round's multinomial is drawn by way of Poisson counts, beyond 10,000
clusters a round's picks are counted one round at a time, and whole-number cluster cells are
summed in single precision. Each is checked against the distribution it must draw (moments and
a chi-square test against the binomial marginal computed by scipy) or against the plain path.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import sparse, stats

from lamarena.analysis.encoded import encode_frame
from lamarena.analysis.ranking import bootstrap
from lamarena.analysis.ranking.bradley_terry import bootstrap_encoded_result, fit_counts_result
from lamarena.analysis.ranking.clusters import encoded_clusters
from lamarena.simulation import simulate_battles

PROBS = np.array([0.5, 0.3, 0.15, 0.05])


def test_below_the_threshold_the_multinomial_is_numpys_own_draw() -> None:
    drawn = bootstrap._multinomial(np.random.default_rng(3), 1000, PROBS, 7)
    assert np.array_equal(drawn, np.random.default_rng(3).multinomial(1000, PROBS, size=7))


def test_the_poisson_route_draws_the_same_multinomial(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bootstrap, "_POISSON_DRAWS", 0)
    n, rounds = 40, 200_000
    drawn = bootstrap._multinomial(np.random.default_rng(5), n, PROBS, rounds)
    assert drawn.shape == (rounds, PROBS.size)
    assert (drawn.sum(axis=1) == n).all() and drawn.min() >= 0
    # the Poisson totals fell on both sides of n, so both corrections ran
    poisson_totals = np.random.default_rng(5).poisson(n * PROBS, size=(rounds, PROBS.size))
    assert (poisson_totals.sum(axis=1) > n).any() and (poisson_totals.sum(axis=1) < n).any()
    mean_error = np.abs(drawn.mean(axis=0) - n * PROBS)
    assert (mean_error < 4 * np.sqrt(n * PROBS * (1 - PROBS) / rounds)).all()
    covariance = n * (np.diag(PROBS) - np.outer(PROBS, PROBS))
    assert np.allclose(np.cov(drawn.T), covariance, atol=0.1)
    # each cell's marginal is Binomial(n, p): chi-square against scipy's probabilities
    for cell in range(PROBS.size):
        values = np.arange(n + 1)
        expected = stats.binom.pmf(values, n, PROBS[cell]) * rounds
        observed = np.bincount(drawn[:, cell], minlength=n + 1)
        kept = expected > 20  # pool the sparse tails into one bin
        f_obs = np.append(observed[kept], observed[~kept].sum())
        f_exp = np.append(expected[kept], expected[~kept].sum())
        assert stats.chisquare(f_obs, f_exp * f_obs.sum() / f_exp.sum()).pvalue > 1e-3


def test_cluster_picks_beyond_the_threshold_resample_every_cluster_once_on_average() -> None:
    picks = bootstrap._cluster_picks(np.random.default_rng(2), 20_000, 60)
    assert picks.shape == (60, 20_000) and (picks.sum(axis=1) == 20_000).all()
    # Multinomial(C, 1/C): mean 1, variance 1 - 1/C, P(0) about 1/e
    assert abs(picks.mean() - 1.0) < 1e-12
    assert abs(picks.var() - (1 - 1 / 20_000)) < 0.01
    assert abs((picks == 0).mean() - np.exp(-1)) < 0.005


def test_whole_number_cells_are_summed_in_single_precision_only_where_exact() -> None:
    whole = sparse.csr_array(np.array([[2.0, 0.0, 1.0], [0.0, 3.0, 0.0]]))
    assert bootstrap._transposed_cells(whole).dtype == np.float32
    weighted = sparse.csr_array(np.array([[2.5, 0.0, 1.0], [0.0, 3.0, 0.0]]))
    assert bootstrap._transposed_cells(weighted).dtype == np.float64
    # a round can sum C clusters of the largest: beyond 2^24 single precision rounds off
    large = sparse.csr_array(np.full((2, 1), 2.0**23))
    assert bootstrap._transposed_cells(large).dtype == np.float64


def test_single_precision_cells_give_the_double_precision_rounds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    frame = simulate_battles(
        {"a": 1090.0, "b": 1000.0, "c": 910.0, "d": 1040.0, "e": 980.0},
        3000,
        seed=4,
        votes_per_participant=5,
    )
    encoded = encode_frame(frame)
    fit = fit_counts_result(encoded.pair_counts(), n_battles=encoded.n_battles)
    clusters = encoded_clusters(encoded, "auto")
    assert clusters.n_clusters > 100
    single = bootstrap_encoded_result(encoded, fit, clusters, rounds=400, seed=9)
    monkeypatch.setattr(bootstrap, "_transposed_cells", lambda cells: sparse.csc_array(cells.T))
    double = bootstrap_encoded_result(encoded, fit, clusters, rounds=400, seed=9)
    assert np.array_equal(single.samples.to_numpy(), double.samples.to_numpy())
    assert single.samples.to_numpy().std(axis=0).min() > 0
