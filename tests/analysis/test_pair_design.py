"""Pair designs (uniform, balanced, active) and the inverse-probability-weighted fit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

from lamarena.analysis.ranking.bradley_terry import fit_bradley_terry
from lamarena.analysis.ranking.bt_solver import ELO_SCALE
from lamarena.analysis.ranking.pair_design import (
    PairTally,
    active_pair_probabilities,
    all_pairs,
    fit_weighted_bradley_terry,
    ipw_weights,
    pair_probabilities,
)
from lamarena.errors import InvalidInputError
from lamarena.simulation import parse_strengths, simulate_battles
from lamarena.simulation.adaptive import simulate_pair_design, uniform_design_ratings

MODELS = ["a", "b", "c", "d", "e"]


def _tallies(strengths: dict[str, float], votes_per_pair: int) -> dict[tuple[str, str], PairTally]:
    """Expected tallies: every pair with ``votes_per_pair`` votes won as Bradley-Terry says."""
    tallies = {}
    for first, second in all_pairs(list(strengths)):
        p = float(expit((strengths[first] - strengths[second]) / ELO_SCALE))
        tallies[(first, second)] = PairTally(votes_per_pair, votes_per_pair * p)
    return tallies


@pytest.mark.parametrize("design", ["uniform", "balanced", "active"])
def test_every_design_is_a_distribution_over_all_pairs(design: str) -> None:
    strengths = dict(zip(MODELS, [1200.0, 1180.0, 1000.0, 900.0, 700.0], strict=True))
    chances = pair_probabilities(design, MODELS, _tallies(strengths, 40))  # type: ignore[arg-type]
    assert set(chances) == set(all_pairs(MODELS))
    assert sum(chances.values()) == pytest.approx(1.0)
    assert min(chances.values()) > 0


def test_active_without_votes_is_uniform() -> None:
    chances = active_pair_probabilities(MODELS, {})
    assert np.allclose(list(chances.values()), 1.0 / 10)


@pytest.mark.parametrize("floor", [0.05, 0.2, 0.5])
def test_active_keeps_the_exposure_floor_for_every_pair(floor: float) -> None:
    strengths = dict(zip(MODELS, [1300.0, 1290.0, 1000.0, 800.0, 600.0], strict=True))
    chances = active_pair_probabilities(MODELS, _tallies(strengths, 200), floor=floor)
    assert min(chances.values()) >= floor / 10 - 1e-12
    # a settled pair far from the top gets less than its uniform share, never below the floor
    assert chances[("d", "e")] < 0.6 / 10


def test_active_favours_overlapping_neighbours_at_the_top() -> None:
    # a and b are 10 Elo apart at the top (their order is in doubt); the rest are far apart.
    strengths = dict(zip(MODELS, [1300.0, 1290.0, 1000.0, 800.0, 600.0], strict=True))
    chances = active_pair_probabilities(MODELS, _tallies(strengths, 200), focus=2)
    assert max(chances, key=chances.__getitem__) == ("a", "b")
    assert chances[("a", "b")] > 0.3
    assert chances[("a", "b")] > 5 * chances[("c", "e")]


def test_active_favours_thin_pairs() -> None:
    strengths = dict.fromkeys(MODELS[:3], 1000.0)
    tallies = _tallies(strengths, 100)
    tallies[("a", "b")] = PairTally(2, 1)
    chances = active_pair_probabilities(MODELS[:3], tallies)
    assert chances[("a", "b")] > max(chances[("a", "c")], chances[("b", "c")])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"floor": 0.0}, "floor"), ({"focus": 0}, "focus"), ({"prior_sd": -1.0}, "prior_sd")],
)
def test_active_rejects_bad_settings(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        active_pair_probabilities(MODELS, {}, **kwargs)  # type: ignore[arg-type]


def test_ipw_weights_average_one_and_reject_missing_probabilities() -> None:
    weights = ipw_weights([0.5, 0.25, 0.25])
    assert weights.mean() == pytest.approx(1.0)
    assert weights[1] == pytest.approx(2 * weights[0])
    with pytest.raises(InvalidInputError, match="sampling probabilit"):
        ipw_weights([0.5, float("nan")])
    with pytest.raises(InvalidInputError, match="sampling probabilit"):
        ipw_weights([0.0])


def test_unit_weights_give_the_maximum_likelihood_ratings() -> None:
    battles = simulate_battles(parse_strengths("4"), 3000, seed=3)
    weighted = fit_weighted_bradley_terry(battles, np.ones(len(battles)))
    plain = fit_bradley_terry(battles)
    assert np.allclose(weighted.ratings[plain.index], plain, atol=1e-6)
    assert (weighted.intervals()["se"] > 0).all()


def _intransitive_table() -> pd.DataFrame:
    """Win probabilities that are not Bradley-Terry.

    The top model is strong against the weak models, and weaker against its peers than its
    rating says.
    """
    names = [f"m{i}" for i in range(6)]
    elo = np.array([1150.0, 1100.0, 1050.0, 1000.0, 950.0, 900.0])
    bump = np.zeros((6, 6))
    bump[0, [1, 2]] = -0.6
    bump[0, [4, 5]] = 0.8
    logit = (elo[:, None] - elo[None, :]) / ELO_SCALE + bump - bump.T
    return pd.DataFrame(expit(logit), index=names, columns=names)


def test_inverse_probability_weights_undo_the_bias_of_active_sampling() -> None:
    """The acceptance test of active sampling: unbiased in simulation with the truth set here.

    Under a misspecified truth the unweighted fit of actively sampled votes drifts from what a
    uniform design estimates (active sampling favours the top model's close pairs, where it is
    weaker); the weighted fit stays on target. Biases are judged against the standard error of
    the mean over the replicates, measured from the replicates themselves.
    """
    table = _intransitive_table()
    target = uniform_design_ratings(table)
    unweighted, weighted = [], []
    for seed in range(8):
        battles = simulate_pair_design(
            table, 15_000, sampling="active", seed=seed, refresh_every=100
        )
        assert battles["sampling_probability"].min() >= 0.2 / 15 - 1e-12
        plain = fit_weighted_bradley_terry(battles, np.ones(len(battles))).ratings
        ipw = fit_weighted_bradley_terry(battles, ipw_weights(battles["sampling_probability"]))
        unweighted.append(plain[target.index] - target)
        weighted.append(ipw.ratings[target.index] - target)
    for errors, biased in ((unweighted, True), (weighted, False)):
        frame = pd.DataFrame(errors)
        bias = frame.mean()
        se = frame.std(ddof=1) / np.sqrt(len(frame))
        z = (bias / se).abs()
        if biased:
            assert z["m0"] > 6, (bias, se)  # the top model, by over 10 Elo
            assert abs(bias["m0"]) > 10
        else:
            assert (z < 4).all(), (bias, se)
            assert (bias.abs() < 6).all()


def test_uniform_design_ratings_of_a_bradley_terry_table_are_its_ratings() -> None:
    elo = pd.Series([1100.0, 1000.0, 900.0], index=["x", "y", "z"])
    table = pd.DataFrame(
        expit((elo.to_numpy()[:, None] - elo.to_numpy()[None, :]) / ELO_SCALE),
        index=elo.index,
        columns=elo.index,
    )
    assert np.allclose(uniform_design_ratings(table), elo, atol=1e-6)
