"""The leaderboard document: DESIGN.md keys, JSON safety, ordering, provisional models."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit
from statsmodels.stats.multitest import multipletests

from analysis.builders import frame
from lamarena.analysis.ranking.bt_solver import ELO_SCALE
from lamarena.analysis.ranking.leaderboard import build_leaderboard
from lamarena.errors import InsufficientData, InvalidInputError
from lamarena.simulation import parse_strengths, simulate_battles
from lamarena.simulation.adaptive import simulate_pair_design, uniform_design_ratings

MODEL_KEYS = {"model", "rating", "ci_low", "ci_high", "battles", "win_rate", "provisional"}
PAIR_KEYS = {"model_a", "model_b", "diff", "se", "p_value", "p_holm", "significant", "win_rate_a"}


@pytest.fixture(scope="module")
def battles() -> pd.DataFrame:
    simulated = simulate_battles(parse_strengths("5", seed=2), 1500, seed=2, both_bad_rate=0.05)
    extra = frame(
        [("lucky", "model-1", "model_a")]  # unbeaten: no rating
        + [("rookie", "model-2", w) for w in ["model_a", "model_b", "tie"]]  # rated, few battles
        + [("island-a", "island-b", w) for w in ["model_a", "model_b"]]  # not connected
    )
    return pd.concat([simulated, extra], ignore_index=True)


def test_document_has_design_keys_and_is_strict_json(battles: pd.DataFrame) -> None:
    document = build_leaderboard(battles, n_resamples=500, seed=1).to_dict()
    text = json.dumps(document, allow_nan=False)
    assert json.loads(text) == document
    assert document["n_battles"] == len(battles)
    assert len(document["models"]) == 9
    for row in document["models"]:
        assert set(row) >= MODEL_KEYS
        assert isinstance(row["battles"], int)
        assert isinstance(row["provisional"], bool)
    rated = 6  # five simulated models and the rookie
    assert len(document["pairwise"]) == rated * (rated - 1) // 2
    provisional = {row["model"] for row in document["models"] if row["provisional"]}
    for pair in document["pairwise"]:
        assert set(pair) >= PAIR_KEYS
        assert pair["diff"] >= 0
        if provisional & {pair["model_a"], pair["model_b"]}:  # outside Holm's family
            assert pair["p_holm"] is None and pair["significant"] is False
        else:
            assert pair["p_holm"] >= pair["p_value"]
    assert document["ci"] == "bootstrap"
    assert document["seed"] == 1
    assert document["n_resamples"] == 500


def test_models_sorted_rated_then_provisional_with_null_ratings(battles: pd.DataFrame) -> None:
    rows = build_leaderboard(battles, n_resamples=300, seed=0).to_dict()["models"]
    flags = [row["provisional"] for row in rows]
    assert flags == sorted(flags)  # every non-provisional model comes first
    ranked = [row["rating"] for row in rows if not row["provisional"]]
    assert ranked == sorted(ranked, reverse=True)
    settled = [r["rating"] for r in rows if not r["provisional"]]
    assert abs(np.mean(settled) - 1000) < 1e-6
    by_name = {row["model"]: row for row in rows}
    assert by_name["rookie"]["provisional"] and by_name["rookie"]["rating"] is not None
    for name in ("lucky", "island-a", "island-b"):
        row = by_name[name]
        assert row["provisional"] is True
        assert row["rating"] is None and row["ci_low"] is None and row["ci_high"] is None
        assert row["provisional_reasons"]
    assert [row["model"] for row in rows][-3:] == ["lucky", "island-a", "island-b"]
    assert by_name["lucky"]["win_rate"] == 1.0


def test_intervals_contain_ratings_and_methods_agree(battles: pd.DataFrame) -> None:
    boot = build_leaderboard(battles, n_resamples=2000, seed=4).to_dict()["models"]
    analytic = build_leaderboard(battles, ci="analytic").to_dict()
    assert analytic["ci"] == "analytic" and analytic["n_resamples"] == 0
    for b_row, a_row in zip(boot, analytic["models"], strict=True):
        assert b_row["model"] == a_row["model"]
        if b_row["rating"] is None or b_row["model"] == "rookie":
            continue
        assert b_row["ci_low"] < b_row["rating"] < b_row["ci_high"]
        assert b_row["ci_low"] == pytest.approx(a_row["ci_low"], abs=8)
        assert b_row["ci_high"] == pytest.approx(a_row["ci_high"], abs=8)


def test_pairwise_win_rate_is_the_head_to_head_record() -> None:
    battles = frame(
        [("x", "y", "model_a")] * 6
        + [("y", "x", "model_a")] * 3
        + [("x", "y", "tie")] * 2
        + [("x", "z", w) for w in ["model_a", "model_b"] * 5]
        + [("y", "z", w) for w in ["model_a", "model_b"] * 5]
    )
    pairs = build_leaderboard(battles, ci="analytic").to_dict()["pairwise"]
    pair = next(p for p in pairs if {p["model_a"], p["model_b"]} == {"x", "y"})
    rate_x = (6 + 1) / 11
    expected = rate_x if pair["model_a"] == "x" else 1 - rate_x
    assert pair["win_rate_a"] == pytest.approx(expected)
    assert pair["battles"] == 11


def test_head_to_head_covers_every_pair_that_met_and_is_labelled_apart_from_pairwise() -> None:
    battles = frame(
        [("x", "y", "model_a")] * 12
        + [("y", "x", "model_a")] * 2
        + [("x", "y", "tie")] * 2
        + [("x", "z", w) for w in ["model_a", "model_b"] * 5]
        + [("q", "x", "model_b")]  # q: one battle, provisional, still has a record
    )
    document = build_leaderboard(battles, ci="analytic", seed=0).to_dict()
    records = {(r["model_a"], r["model_b"]): r for r in document["head_to_head"]}

    assert set(records) == {("x", "y"), ("x", "z"), ("q", "x")}
    xy = records[("x", "y")]
    assert xy["battles"] == 16 and xy["win_rate"] == pytest.approx(13 / 16)
    assert xy["ci_low"] <= xy["win_rate"] <= xy["ci_high"]
    assert xy["significant"] and xy["p_value"] < 0.05
    assert records[("x", "z")]["significant"] is False
    assert "paired bootstrap" in document["tests"]["head_to_head"]
    assert "unadjusted" in document["tests"]["head_to_head"]
    assert "rating difference" in document["tests"]["pairwise"]
    adjusted = build_leaderboard(battles, ci="analytic", seed=0, holm_head_to_head=True)
    assert "Holm" in adjusted.to_dict()["tests"]["head_to_head"]
    assert all(r.p_holm >= r.p_value for r in adjusted.head_to_head)


def test_pairs_with_a_provisional_model_stay_outside_the_holm_family() -> None:
    rng = np.random.default_rng(3)
    rows = []
    for a, b, p_a in [("x", "y", 0.7), ("x", "z", 0.6), ("y", "z", 0.45)]:
        rows += [(a, b, "model_a" if rng.random() < p_a else "model_b") for _ in range(120)]
    rows += [("new", "x", "model_b"), ("new", "y", "model_a"), ("new", "z", "model_b")]
    document = build_leaderboard(frame(rows), ci="analytic", min_battles=10).to_dict()
    pairs = document["pairwise"]
    firm = [p for p in pairs if "new" not in (p["model_a"], p["model_b"])]
    newcomer = [p for p in pairs if "new" in (p["model_a"], p["model_b"])]

    assert len(firm) == 3 and len(newcomer) == 3  # the newcomer is rated, but provisional
    expected = multipletests([p["p_value"] for p in firm], method="holm")[1]
    assert [p["p_holm"] for p in firm] == pytest.approx(list(expected))
    assert all(p["p_holm"] is None and p["significant"] is False for p in newcomer)
    assert all(p["p_value"] is not None for p in newcomer)


def test_rarely_beaten_model_has_unbounded_upper_interval(battles: pd.DataFrame) -> None:
    base = battles[battles["model_a"].str.startswith("model")]
    base = base[base["model_b"].str.startswith("model")]
    star = frame(
        [("star", "model-1", "model_a")] * 8
        + [("model-2", "star", "model_b")] * 8
        + [("star", "model-3", "model_b")]
    )
    rows = build_leaderboard(pd.concat([base, star]), n_resamples=1000, seed=0).to_dict()
    row = next(r for r in rows["models"] if r["model"] == "star")
    assert row["rating"] is not None and row["ci_low"] is not None
    assert row["ci_high"] is None


def test_style_control_is_reported(battles: pd.DataFrame) -> None:
    simulated = battles[battles["chars_a"].notna()]
    document = build_leaderboard(
        simulated, n_resamples=100, seed=0, control=("length", "latency")
    ).to_dict()
    assert document["method"] == "bradley_terry_style_control"
    assert document["controls"] == ["length", "latency"]
    length = document["style_coefficients"]["length"]
    assert length["ci_low"] < length["elo_per_unit"] < length["ci_high"]


def test_zero_battles_raise_an_actionable_error() -> None:
    with pytest.raises(InsufficientData, match="votes import"):
        build_leaderboard(frame([]))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"ci": "jackknife"}, "ci must be"),
        ({"confidence": 1.5}, "confidence"),
        ({"n_resamples": -1}, "n_resamples"),
        ({"control": ("colour",)}, "colour"),
    ],
)
def test_bad_options_are_rejected(kwargs: dict, match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        build_leaderboard(frame([("a", "b", "tie")]), **kwargs)


def test_same_seed_same_document(battles: pd.DataFrame) -> None:
    first = build_leaderboard(battles, n_resamples=200, seed=9).to_dict()
    shuffled = battles.sample(frac=1.0, random_state=0)
    assert build_leaderboard(shuffled, n_resamples=200, seed=9).to_dict() == first


def test_no_rated_models_still_lists_every_model() -> None:
    document = build_leaderboard(frame([("a", "b", "model_a")]), n_resamples=10).to_dict()
    assert [row["model"] for row in document["models"]] == ["a", "b"]
    assert all(row["provisional"] and row["rating"] is None for row in document["models"])
    assert document["pairwise"] == []


ONLY_TIES = "only ties or both-bad votes against the rated models"


@pytest.mark.parametrize("ci", ["bootstrap", "analytic"])
@pytest.mark.parametrize(
    "rows",
    [
        [("a", "b", "tie")] * 5,
        [("a", "b", "tie")] * 12 + [("b", "c", "both_bad")] * 12,
    ],
    ids=["5-ties", "24-ties-and-both-bad"],
)
def test_all_ties_give_flagged_models_and_no_zero_width_interval(
    ci: str, rows: list[tuple[str, str, str]]
) -> None:
    document = build_leaderboard(frame(rows), ci=ci, n_resamples=300, seed=0).to_dict()
    document = json.loads(json.dumps(document, allow_nan=False))
    assert document["models"]
    for row in document["models"]:
        assert row["rating"] == pytest.approx(1000.0)
        assert row["provisional"] is True
        assert any(reason.startswith(ONLY_TIES) for reason in row["provisional_reasons"])
        assert row["ci_low"] < row["rating"] - 50 and row["ci_high"] > row["rating"] + 50
    for pair in document["pairwise"]:
        assert pair["se"] > 0 and not pair["significant"]


@pytest.mark.parametrize("ci", ["bootstrap", "analytic"])
def test_pair_that_only_tied_is_never_significant(ci: str) -> None:
    # a beats b 600-400; c only ties, 50 times with each: its MLE sits halfway, and every
    # bootstrap resample of it is ties again, which made "a > c" look significant (p ~ 1e-7)
    rows = [("a", "b", "model_a")] * 600 + [("a", "b", "model_b")] * 400
    rows += [("a", "c", "tie")] * 50 + [("c", "b", "tie")] * 50
    document = build_leaderboard(frame(rows), ci=ci, n_resamples=2000, seed=0).to_dict()
    pairs = {frozenset((p["model_a"], p["model_b"])): p for p in document["pairwise"]}
    assert pairs[frozenset("ab")]["significant"]
    for other in "ab":
        pair = pairs[frozenset(("c", other))]
        assert pair["diff"] > 25 and not pair["significant"]
    models = {row["model"]: row for row in document["models"]}
    assert models["c"]["provisional"] and not models["a"]["provisional"]
    assert [row["model"] for row in document["models"]][-1] == "c"
    assert models["c"]["ci_high"] - models["c"]["ci_low"] > 100


def test_ties_do_not_change_the_leaderboard_of_models_with_decisive_battles(
    battles: pd.DataFrame,
) -> None:
    before = build_leaderboard(battles, ci="analytic").to_dict()
    extra = frame([("tied", "model-1", "tie")] * 12)
    after = build_leaderboard(pd.concat([battles, extra], ignore_index=True), ci="analytic")
    rows = {row["model"]: row for row in after.to_dict()["models"]}
    assert rows["tied"]["provisional"]
    for row in before["models"]:
        if row["rating"] is not None:
            assert rows[row["model"]]["ci_low"] == pytest.approx(row["ci_low"], abs=1e-6)


def test_an_anchor_pins_one_model_at_1000_and_keeps_every_difference(
    battles: pd.DataFrame,
) -> None:
    centred = build_leaderboard(battles, n_resamples=300, seed=2).to_dict()
    pinned = build_leaderboard(battles, n_resamples=300, seed=2, anchor="model-3").to_dict()
    before = {row["model"]: row for row in centred["models"] if row["rating"] is not None}
    after = {row["model"]: row for row in pinned["models"] if row["rating"] is not None}

    assert after["model-3"]["rating"] == pytest.approx(1000.0)
    assert after["model-3"]["ci_low"] == pytest.approx(1000.0) == after["model-3"]["ci_high"]
    shift = before["model-3"]["rating"] - 1000.0
    for name, row in after.items():
        assert row["rating"] == pytest.approx(before[name]["rating"] - shift)
    assert pinned["centred_on"] == ["model-3"] and "pinned" in pinned["scale"]
    # the anchor's rating is the reference: the tests of differences do not change
    diffs = {(p["model_a"], p["model_b"]): p["diff"] for p in centred["pairwise"]}
    for pair in pinned["pairwise"]:
        assert pair["diff"] == pytest.approx(diffs[(pair["model_a"], pair["model_b"])])
    with pytest.raises(InvalidInputError, match="anchor 'nobody' has no rating"):
        build_leaderboard(battles, n_resamples=10, anchor="nobody")


def _intransitive_table() -> pd.DataFrame:
    """Win probabilities that are not Bradley-Terry (the top model is weaker against its peers)."""
    names = [f"m{i}" for i in range(6)]
    elo = np.array([1150.0, 1100.0, 1050.0, 1000.0, 950.0, 900.0])
    bump = np.zeros((6, 6))
    bump[0, [1, 2]] = -0.6
    bump[0, [4, 5]] = 0.8
    logit = (elo[:, None] - elo[None, :]) / ELO_SCALE + bump - bump.T
    return pd.DataFrame(expit(logit), index=names, columns=names)


def _ratings(document: dict[str, Any]) -> pd.Series:
    return pd.Series({row["model"]: row["rating"] for row in document["models"]})


def test_auto_weights_undo_the_bias_of_active_sampling() -> None:
    """Actively sampled votes of a non-Bradley-Terry truth: ``auto`` weights and stays on target.

    The margin is set from the replicates' own spread: the unweighted bias of the top model must
    exceed the weighted one by four standard errors of the difference of the two means.
    """
    table = _intransitive_table()
    target = uniform_design_ratings(table)
    errors: dict[str, list[pd.Series]] = {"auto": [], "none": []}
    for seed in range(8):
        battles = simulate_pair_design(table, 15_000, sampling="active", seed=seed)
        for weights in errors:
            document = build_leaderboard(
                battles,
                n_resamples=20,
                seed=seed,
                weights=weights,  # type: ignore[arg-type]
            ).to_dict()
            assert document["weights"] == ("ipw" if weights == "auto" else "none")
            errors[weights].append(_ratings(document)[target.index] - target)
    weighted, unweighted = pd.DataFrame(errors["auto"]), pd.DataFrame(errors["none"])
    se = np.sqrt((weighted.var() + unweighted.var()) / len(weighted))
    gap = unweighted.mean().abs() - weighted.mean().abs()
    assert gap["m0"] > 4 * se["m0"], (weighted.mean(), unweighted.mean(), se)
    assert (weighted.mean().abs() < 4 * weighted.std() / np.sqrt(len(weighted)) + 1).all()
    assert np.square(weighted.mean()).sum() < np.square(unweighted.mean()).sum() / 4


def test_auto_does_not_weight_uniform_votes() -> None:
    table = _intransitive_table()
    uniform = simulate_pair_design(table, 3000, sampling="uniform", seed=1)
    for battles in (uniform, uniform.drop(columns="sampling_probability")):
        auto = build_leaderboard(battles, n_resamples=100, seed=3).to_dict()
        plain = build_leaderboard(battles, n_resamples=100, seed=3, weights="none").to_dict()
        assert auto == plain
        assert auto["weights"] == "none"
        assert auto["weighting"]["note"] is None


def test_auto_needs_a_probability_for_every_battle() -> None:
    battles = simulate_pair_design(_intransitive_table(), 2000, sampling="active", seed=2)
    battles.loc[:9, "sampling_probability"] = np.nan
    document = build_leaderboard(battles, n_resamples=0).to_dict()
    assert document["weights"] == "none"
    assert document["weighting"]["missing_probability"] == 10
    assert "10 of 2000 battles lack a sampling_probability" in document["weighting"]["note"]


@pytest.mark.parametrize("drop", [True, False])
def test_ipw_without_probabilities_is_refused(drop: bool) -> None:
    battles = simulate_pair_design(_intransitive_table(), 500, sampling="active", seed=4)
    if drop:
        battles = battles.drop(columns="sampling_probability")
    else:
        battles.loc[3, "sampling_probability"] = np.nan
    missing = 500 if drop else 1
    with pytest.raises(InvalidInputError, match=f"'sampling_probability'.*{missing} of 500"):
        build_leaderboard(battles, n_resamples=0, weights="ipw")


def test_ipw_is_refused_with_davidson_ties_or_style_control_and_auto_says_why() -> None:
    battles = simulate_pair_design(_intransitive_table(), 1500, sampling="active", seed=5)
    battles["winner"] = battles["winner"].where(np.arange(len(battles)) % 7 > 0, "tie")
    with pytest.raises(InvalidInputError, match="Davidson"):
        build_leaderboard(battles, n_resamples=0, weights="ipw", ties="davidson")
    document = build_leaderboard(battles, ties="davidson").to_dict()
    assert document["weights"] == "none"
    assert "Davidson" in document["weighting"]["note"]
    battles["chars_a"], battles["chars_b"] = 100.0, 120.0 + np.arange(len(battles)) % 50
    with pytest.raises(InvalidInputError, match="style control"):
        build_leaderboard(battles, n_resamples=0, weights="ipw", control="length")
    document = build_leaderboard(battles, n_resamples=0, control="length").to_dict()
    assert document["weights"] == "none"
    assert "style control" in document["weighting"]["note"]


@pytest.mark.parametrize("clustered", [False, True])
def test_weighted_bootstrap_refits_with_the_weights(clustered: bool) -> None:
    """The IPW bootstrap refits with the weights.

    Its intervals hold the weighted estimate, are wider on the whole than the unweighted ones
    (the weights cost precision), and as wide as the weighted sandwich's.
    """
    battles = simulate_pair_design(_intransitive_table(), 6000, sampling="active", seed=6)
    if clustered:
        battles["session_id"] = [f"s{i // 4}" for i in range(len(battles))]
    boot = build_leaderboard(battles, n_resamples=400, seed=1, weights="ipw").to_dict()
    sandwich = build_leaderboard(battles, n_resamples=0, weights="ipw").to_dict()
    plain = build_leaderboard(battles, n_resamples=400, seed=1, weights="none").to_dict()
    assert boot["weights"] == "ipw" and boot["ci"] == "bootstrap"
    assert boot["cluster"]["by"] == ("session" if clustered else "none")
    assert 0 < boot["weighting"]["effective_battles"] < len(battles)
    assert _ratings(boot).equals(_ratings(sandwich))

    def widths(document: dict[str, Any]) -> pd.Series:
        return pd.Series({r["model"]: r["ci_high"] - r["ci_low"] for r in document["models"]})

    for row in boot["models"]:
        assert row["ci_low"] < row["rating"] < row["ci_high"]
    assert widths(boot).mean() > 1.05 * widths(plain).mean()
    ratio = widths(boot) / widths(sandwich)[widths(boot).index]
    assert ratio.between(0.8, 1.25).all(), ratio
