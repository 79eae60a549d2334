"""Bradley-Terry fits: agreement with independent solvers, provisional models, invariants."""

from __future__ import annotations

from typing import Any

import choix
import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from statsmodels.stats.multitest import multipletests

from analysis.builders import ELO_PER_LOGIT, frame, outcome, scipy_ratings
from lamarena.analysis.ranking.bradley_terry import (
    fit_bradley_terry,
    fit_bradley_terry_result,
    holm_adjust,
    pairwise_tests,
)
from lamarena.errors import InsufficientData, InvalidInputError
from lamarena.simulation import parse_strengths, simulate_battles

RATING_ATOL = 1e-6
"""Elo points: agreement required between our solver and independent ones."""


def _differences(ratings: pd.Series) -> np.ndarray:
    values = ratings.sort_index().to_numpy()
    return values[:, None] - values[None, :]


def test_ratings_match_golden_reference(
    small_battles: pd.DataFrame, golden: dict[str, Any]
) -> None:
    result = fit_bradley_terry_result(small_battles)
    expected = pd.Series(golden["ratings"])
    assert set(result.ratings.index) == set(expected.index)
    np.testing.assert_allclose(
        _differences(result.ratings), _differences(expected), atol=RATING_ATOL
    )
    assert set(result.centred_on) == set(expected.index) - {"rare"}
    assert result.ratings[list(result.centred_on)].mean() == pytest.approx(1000.0, abs=1e-9)


def test_golden_provisional_models_and_reasons(
    small_battles: pd.DataFrame, golden: dict[str, Any]
) -> None:
    result = fit_bradley_terry_result(small_battles)
    for model, reason in golden["unrated"].items():
        assert model in result.provisional
        assert model not in result.ratings.index
        assert result.reasons[model][0] == reason
    for model in golden["provisional_rated"]:
        assert model in result.provisional
        assert result.reasons[model] == ("few_battles",)
        assert model in result.ratings.index
    assert "diva" not in result.provisional


def test_ratings_match_scipy_on_simulated_data_with_ties() -> None:
    battles = simulate_battles(
        parse_strengths("6", seed=4), 3000, seed=4, tie_rate=0.2, both_bad_rate=0.05
    )
    ours = fit_bradley_terry(battles)
    reference = scipy_ratings(battles, sorted(ours.index))
    np.testing.assert_allclose(_differences(ours), _differences(reference), atol=RATING_ATOL)


def test_ratings_match_choix_ilsr_converted_to_elo() -> None:
    battles = simulate_battles(parse_strengths("7", seed=5), 2500, seed=5, tie_rate=0.1)
    models = sorted(set(battles["model_a"]) | set(battles["model_b"]))
    index = {name: i for i, name in enumerate(models)}
    # choix has no ties: count every decisive battle twice and a tie once each way, which
    # doubles the half-win likelihood and leaves its maximiser unchanged.
    data: list[tuple[int, int]] = []
    for a, b, winner in battles[["model_a", "model_b", "winner"]].itertuples(index=False):
        i, j = index[a], index[b]
        if winner == "model_a":
            data += [(i, j), (i, j)]
        elif winner == "model_b":
            data += [(j, i), (j, i)]
        else:
            data += [(i, j), (j, i)]
    params = choix.ilsr_pairwise(len(models), data, tol=1e-12, max_iter=10_000)
    reference = pd.Series(1000.0 + ELO_PER_LOGIT * (params - params.mean()), index=models)
    ours = fit_bradley_terry(battles)
    np.testing.assert_allclose(_differences(ours), _differences(reference), atol=RATING_ATOL)


def test_covariances_match_statsmodels_glm_model_based_and_sandwich() -> None:
    battles = simulate_battles(parse_strengths("5", seed=6), 1500, seed=6, tie_rate=0.15)
    result = fit_bradley_terry_result(battles)
    models = sorted(result.ratings.index)
    others = models[1:]
    design = np.zeros((len(battles), len(others)))
    for k, name in enumerate(others):
        design[:, k] = (battles["model_a"] == name).to_numpy(dtype=float) - (
            battles["model_b"] == name
        ).to_numpy(dtype=float)
    y = outcome(battles["winner"])
    glm = sm.GLM(y, design, family=sm.families.Binomial())
    for robust, cov_type in ((False, "nonrobust"), (True, "HC0")):
        fitted = glm.fit(cov_type=cov_type, tol=1e-12)
        ours = result.robust_covariance if robust else result.covariance
        ours = ours.loc[models, models].to_numpy() / ELO_PER_LOGIT**2
        # Var(theta_k - theta_ref) and Cov of such differences from our centred covariance.
        contrast = np.zeros((len(others), len(models)))
        contrast[:, 0] = -1.0
        contrast[:, 1:] = np.eye(len(others))
        np.testing.assert_allclose(contrast @ ours @ contrast.T, fitted.cov_params(), rtol=1e-6)
        ratings = result.ratings[models].to_numpy() / ELO_PER_LOGIT
        np.testing.assert_allclose(ratings[1:] - ratings[0], fitted.params, atol=1e-8)


def test_sandwich_is_tighter_than_model_based_when_ties_are_common() -> None:
    battles = simulate_battles(parse_strengths("4", seed=2), 4000, seed=2, tie_rate=0.5)
    result = fit_bradley_terry_result(battles)
    robust = np.diag(result.robust_covariance.to_numpy())
    model = np.diag(result.covariance.to_numpy())
    assert (robust < model).all()


def test_all_ties_give_provisional_models_with_model_based_intervals_not_zero_width() -> None:
    # review reproduction: the sandwich meat ties * (1/2 - p)^2 is 0 at p = 1/2
    result = fit_bradley_terry_result(frame([("a", "b", "tie")] * 12 + [("b", "c", "tie")] * 12))
    assert result.reasons == dict.fromkeys("abc", ("only_ties",))
    assert result.ratings.to_dict() == pytest.approx({"a": 1000.0, "b": 1000.0, "c": 1000.0})
    intervals = result.intervals()
    assert (intervals["ci_low"] < intervals["ci_high"]).all()
    assert (intervals["se"] > 40).all()
    # every battle is a tie, so the guarded sandwich is exactly the model-based covariance
    np.testing.assert_allclose(result.robust_covariance, result.covariance, rtol=1e-9)
    tests = pairwise_tests(result.ratings, result.robust_covariance)
    assert (tests["se"] > 0).all()
    assert not tests["significant"].any()


def test_model_that_only_tied_is_provisional_and_not_locked_to_its_opponent() -> None:
    decisive = [("a", "b", w) for w in ["model_a", "model_b"] * 10]
    rows = decisive + [("a", "c", "tie")] * 12 + [("c", "loser", "model_a")] * 3
    result = fit_bradley_terry_result(frame(rows))
    # the win over an unrated model does not count: it carries no information on the ratings
    assert result.reasons["c"] == ("only_ties",)
    assert result.reasons["loser"] == ("no_wins", "few_battles")
    assert "a" not in result.provisional and "b" not in result.provisional
    assert set(result.centred_on) == {"a", "b"}
    assert result.ratings["c"] == pytest.approx(result.ratings["a"])
    cov = result.robust_covariance
    # before the guard the a - c difference had a sandwich variance of 0
    assert cov.loc["a", "a"] + cov.loc["c", "c"] - 2 * cov.loc["a", "c"] > 50.0**2
    # as a provisional model hanging on one edge, c neither moves nor widens the others
    alone = fit_bradley_terry_result(frame(decisive))
    pd.testing.assert_frame_equal(
        cov.loc[["a", "b"], ["a", "b"]], alone.robust_covariance, rtol=1e-9, atol=1e-9
    )
    intervals = result.intervals()
    assert (intervals["ci_high"] - intervals["ci_low"] > 100).all()


def test_unbeaten_model_is_provisional_not_a_huge_number() -> None:
    rows = [("a", "b", w) for w in ["model_a", "model_b", "tie"] * 10]
    rows += [("lucky", "a", "model_a")]
    result = fit_bradley_terry_result(frame(rows))
    assert result.reasons["lucky"] == ("no_losses", "few_battles")
    assert "lucky" not in result.ratings.index
    assert set(result.ratings.index) == {"a", "b"}
    assert result.ratings.max() < 1100
    assert "a" not in result.provisional


def test_winless_model_is_provisional() -> None:
    rows = [("a", "b", w) for w in ["model_a", "model_b"] * 10] + [("a", "loser", "model_a")] * 12
    result = fit_bradley_terry_result(frame(rows))
    assert result.reasons["loser"] == ("no_wins",)
    assert list(result.ratings.index) != [] and "loser" not in result.ratings.index


def test_disconnected_groups_rate_only_the_largest() -> None:
    big = [
        (x, y, w) for x, y in [("a", "b"), ("b", "c"), ("a", "c")] for w in ["model_a", "model_b"]
    ]
    small = [("p", "q", "model_a"), ("p", "q", "model_b")]
    battles = frame(big * 5 + small * 10)
    result = fit_bradley_terry_result(battles, min_battles=0)
    assert set(result.ratings.index) == {"a", "b", "c"}
    assert result.reasons == {"p": ("not_connected",), "q": ("not_connected",)}
    alone = fit_bradley_terry(frame(big * 5))
    pd.testing.assert_series_equal(result.ratings, alone)
    assert result.n_used == 30


def test_one_way_bridge_leaves_the_weaker_group_unrated() -> None:
    strong = [("a", "b", w) for w in ["model_a", "model_b"] * 6]
    weak = [("c", "d", w) for w in ["model_a", "model_b"] * 6]
    bridge = [("a", "c", "model_a")] * 3  # a always beats c: no path back
    result = fit_bradley_terry_result(frame(strong + weak + bridge))
    # two components of equal size: the one with more battles inside wins, then the name order
    assert set(result.ratings.index) == {"a", "b"}
    assert result.reasons["c"] == ("not_connected",)


def test_fewer_battles_than_minimum_keeps_rating_but_is_provisional() -> None:
    battles = frame([("a", "b", w) for w in ["model_a", "model_b", "tie"]] * 5)
    result = fit_bradley_terry_result(battles, min_battles=20)
    assert result.provisional == {"a", "b"}
    assert result.ratings["a"] == pytest.approx(1000.0)


def test_no_rateable_models_raises_insufficient_data() -> None:
    with pytest.raises(InsufficientData, match="record more votes"):
        fit_bradley_terry(frame([("a", "b", "model_a")]))
    empty = fit_bradley_terry_result(frame([]))
    assert empty.ratings.empty
    assert empty.n_battles == 0


def test_negative_min_battles_is_rejected() -> None:
    with pytest.raises(InvalidInputError, match="min_battles"):
        fit_bradley_terry_result(frame([("a", "b", "tie")]), min_battles=-1)


def test_pairwise_tests_holm_and_order() -> None:
    battles = simulate_battles(parse_strengths("4", seed=3), 2000, seed=3)
    result = fit_bradley_terry_result(battles)
    tests = pairwise_tests(result.ratings, result.robust_covariance)
    assert len(tests) == 6
    assert (tests["diff"] >= 0).all()
    assert (tests["p_holm"] >= tests["p_value"] - 1e-15).all()
    top = tests.iloc[0]
    cov = result.robust_covariance
    se = np.sqrt(
        cov.loc[top.model_a, top.model_a]
        + cov.loc[top.model_b, top.model_b]
        - 2 * cov.loc[top.model_a, top.model_b]
    )
    assert top.se == pytest.approx(se)
    assert top["diff"] == pytest.approx(result.ratings[top.model_a] - result.ratings[top.model_b])
    assert tests["significant"].equals(tests["p_holm"] < 0.05)


def test_pairwise_fallback_takes_the_larger_variance_only_for_the_listed_models() -> None:
    names = ["a", "b", "c"]
    ratings = pd.Series([1100.0, 1000.0, 900.0], index=names)
    tight = pd.DataFrame(np.eye(3) * 10.0, index=names, columns=names)
    wide = pd.DataFrame(np.eye(3) * 5000.0, index=names, columns=names)
    plain = pairwise_tests(ratings, tight).set_index(["model_a", "model_b"])
    guarded = pairwise_tests(ratings, tight, fallback=wide, fallback_models=["c"])
    guarded = guarded.set_index(["model_a", "model_b"])
    assert guarded.loc[("a", "b"), "se"] == pytest.approx(np.sqrt(20.0))
    assert guarded.loc[("a", "c"), "se"] == pytest.approx(np.sqrt(10000.0))
    assert guarded.loc[("b", "c"), "se"] == pytest.approx(np.sqrt(10000.0))
    assert plain["significant"].all()
    assert guarded["significant"].tolist() == [True, False, False]
    # a fallback never narrows: the tight one as fallback changes nothing
    again = pairwise_tests(ratings, wide, fallback=tight, fallback_models=names)
    pd.testing.assert_frame_equal(again, pairwise_tests(ratings, wide))


# --- invariants -----------------------------------------------------------------------------

_models = st.sampled_from(["m0", "m1", "m2", "m3", "m4"])
_battle = st.tuples(_models, _models, st.sampled_from(["model_a", "model_b", "tie", "both_bad"]))
_battles = st.lists(_battle, min_size=1, max_size=60).map(
    lambda rows: [row for row in rows if row[0] != row[1]]
)
_INVARIANT = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _ratings_or_none(rows: list[tuple[str, str, str]]) -> pd.Series | None:
    result = fit_bradley_terry_result(frame(rows))
    return None if result.ratings.empty else result.ratings


@_INVARIANT
@given(_battles, st.permutations(["x", "y", "z", "v", "w"]))
def test_relabelling_models_relabels_ratings(rows, new_names) -> None:
    mapping = dict(zip(["m0", "m1", "m2", "m3", "m4"], new_names, strict=True))
    before = fit_bradley_terry_result(frame(rows))
    after = fit_bradley_terry_result(frame([(mapping[a], mapping[b], w) for a, b, w in rows]))
    renamed = before.ratings.rename(index=mapping).sort_index()
    if set(renamed.index) != set(after.ratings.index):
        # two components equally large with as many battles: the name order picks one
        assert len(renamed) == len(after.ratings)
        assert before.n_used == after.n_used
        return
    np.testing.assert_allclose(renamed.to_numpy(), after.ratings.sort_index().to_numpy(), atol=1e-7)


@_INVARIANT
@given(_battles, st.data())
def test_swapping_sides_with_flipped_winner_leaves_ratings_unchanged(rows, data) -> None:
    flip = {"model_a": "model_b", "model_b": "model_a", "tie": "tie", "both_bad": "both_bad"}
    chosen = data.draw(st.lists(st.booleans(), min_size=len(rows), max_size=len(rows)))
    swapped = [
        (b, a, flip[w]) if swap else (a, b, w) for (a, b, w), swap in zip(rows, chosen, strict=True)
    ]
    before = _ratings_or_none(rows)
    after = _ratings_or_none(swapped)
    if before is None:
        assert after is None
        return
    assert after is not None
    pd.testing.assert_series_equal(before.sort_index(), after.sort_index(), atol=1e-9, rtol=0)


@_INVARIANT
@given(_battles)
def test_ratings_are_finite_moderate_and_centred_whenever_they_exist(rows) -> None:
    result = fit_bradley_terry_result(frame(rows))
    if result.ratings.empty:
        return
    assert np.isfinite(result.ratings).all()
    centred = result.ratings[list(result.centred_on)]
    assert centred.mean() == pytest.approx(1000.0, abs=1e-7)
    if set(result.ratings.index) - result.provisional:
        assert set(result.centred_on) == set(result.ratings.index) - result.provisional
    # with at most 60 battles the MLE, when it exists, cannot be astronomically far apart
    assert (result.ratings - 1000.0).abs().max() < 2000.0
    for model, codes in result.reasons.items():
        assert (model in result.ratings.index) == _UNRATED_CODES.isdisjoint(codes)
    # no interval pretends to be exact: zero width only for the model that defines the scale
    # when it is the one model the ratings are centred on
    lone = set(result.centred_on) if len(result.centred_on) == 1 else set()
    for robust in (True, False):
        se = result.intervals(robust=robust)["se"].drop(list(lone))
        assert (se > 1.0).all(), (robust, se)


_UNRATED_CODES = {"no_losses", "no_wins", "not_connected"}


def _decisive(rows: list[tuple[str, str, str]], rated: set[str]) -> set[str]:
    """Models that won or lost outright against a model of ``rated``."""
    return {
        name
        for a, b, w in rows
        if a in rated and b in rated and w in ("model_a", "model_b")
        for name in (a, b)
    }


@_INVARIANT
@given(_battles)
def test_only_ties_flags_exactly_the_rated_models_without_a_decisive_battle(rows) -> None:
    result = fit_bradley_terry_result(frame(rows))
    rated = set(result.ratings.index)
    flagged = {m for m, codes in result.reasons.items() if "only_ties" in codes}
    assert flagged == rated - _decisive(rows, rated)


def test_model_with_few_battles_neither_moves_nor_widens_the_others() -> None:
    base = simulate_battles(parse_strengths("5", seed=8), 2000, seed=8)[
        ["model_a", "model_b", "winner"]
    ]
    rookie = frame([("rookie", "model-2", w) for w in ["model_a", "model_b", "tie"]])
    without = fit_bradley_terry_result(base)
    with_rookie = fit_bradley_terry_result(pd.concat([base, rookie], ignore_index=True))
    assert "rookie" in with_rookie.ratings.index
    assert with_rookie.reasons["rookie"] == ("few_battles",)
    assert set(with_rookie.centred_on) == set(without.ratings.index)
    others = list(without.ratings.index)
    pd.testing.assert_series_equal(
        with_rookie.ratings[others], without.ratings[others], atol=1e-6, rtol=0
    )
    np.testing.assert_allclose(
        with_rookie.intervals().se[others], without.intervals().se[others], rtol=1e-6
    )
    assert with_rookie.intervals().loc["rookie", "se"] > 5 * without.intervals().se.max()


def test_holm_adjustment_equals_statsmodels_multipletests() -> None:
    rng = np.random.default_rng(0)
    for size in (1, 2, 7, 28, 300):
        p_values = rng.uniform(0, 0.2, size) ** 2
        p_values[: size // 3] = p_values[0]  # ties
        reject, expected, _, _ = multipletests(p_values, alpha=0.05, method="holm")
        np.testing.assert_allclose(holm_adjust(p_values), expected, rtol=1e-12)
        np.testing.assert_array_equal(holm_adjust(p_values) < 0.05, reject)
    assert holm_adjust(np.zeros(0)).size == 0
