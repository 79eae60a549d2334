"""Static vs interactive: Kendall tau table, VIF screening, vote regression and PCA."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy.stats import kendalltau
from statsmodels.regression.mixed_linear_model import MixedLM, VCSpec
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.outliers_influence import variance_inflation_factor
from statsmodels.tools.sm_exceptions import ConvergenceWarning

from lamarena.analysis.gap import (
    RegressionResult,
    StaticTable,
    is_lower_better,
    kendall_tau_rows,
    kendall_tau_table,
    load_static_table,
    regress_votes_on_benchmarks,
    static_pca,
    static_table_from_frame,
    variance_inflation_factors,
)
from lamarena.analysis.gap.linear_mixed import screen_by_vif
from lamarena.analysis.ranking.bradley_terry import fit_bradley_terry
from lamarena.errors import InsufficientData, InvalidInputError
from lamarena.simulation import simulate_battles

PAPER_CSV = Path(__file__).parents[2] / "src/lamarena/data/study/paper_table1_static.csv"
TASKS = [
    "humor",
    "sarcasm",
    "intent",
    "emotion",
    "relation",
    "gender",
    "age",
    "accent",
    "grounding",
    "language",
    "entity",
    "qa",
    "instruction",
    "asr_wer",
]
ROUNDS = 300


@pytest.fixture(scope="module")
def paper() -> StaticTable:
    return load_static_table(PAPER_CSV)


@pytest.fixture(scope="module")
def paper_battles(paper: StaticTable) -> pd.DataFrame:
    """7,500 simulated votes over the paper's 10 model names, strengths tied loosely to QA."""
    spread = np.linspace(150.0, -150.0, len(paper.models))
    strengths = dict(zip(paper.models, 1000.0 + spread, strict=True))
    return simulate_battles(strengths, 7500, seed=11, tie_rate=0.1, both_bad_rate=0.05)


@pytest.fixture(scope="module")
def paper_taus(paper_battles: pd.DataFrame, paper: StaticTable) -> pd.DataFrame:
    return kendall_tau_table(paper_battles, paper, rounds=ROUNDS, seed=3)


def linear_study(
    seed: int,
    *,
    models: int = 20,
    votes: int = 6000,
    beta: tuple[float, ...] = (0.06, -0.04, 0.0),
    sigma_u: float = 0.03,
    scores: np.ndarray | None = None,
) -> tuple[pd.DataFrame, StaticTable, np.ndarray]:
    """Votes drawn from P(A wins) = 0.5 + sum_j beta_j (x_aj - x_bj) + u_a - u_b.

    The model scores ``x`` are standard normal (drawn with ``seed`` unless given), the model
    effects ``u`` normal with SD ``sigma_u``: the signed linear probability mixed model exactly.
    """
    rng = np.random.default_rng(seed)
    names = np.array([f"m{i:02d}" for i in range(models)], dtype=object)
    x = rng.normal(size=(models, len(beta))) if scores is None else scores
    strength = x @ np.array(beta) + rng.normal(scale=sigma_u, size=models)
    a = rng.integers(0, models, votes)
    b = (a + rng.integers(1, models, votes)) % models
    prob = np.clip(0.5 + strength[a] - strength[b], 0.0, 1.0)
    winner = np.where(rng.random(votes) < prob, "model_a", "model_b")
    battles = pd.DataFrame({"model_a": names[a], "model_b": names[b], "winner": winner})
    table = pd.DataFrame(x, index=names, columns=[f"f{j + 1}" for j in range(len(beta))])
    return battles, StaticTable(table), np.array(beta)


# --- static table ---------------------------------------------------------------------------


def test_paper_csv_loads_14_tasks_with_wer_lower_is_better(paper: StaticTable) -> None:
    assert paper.benchmarks == tuple(TASKS)
    assert len(paper.models) == 10
    assert "group" not in paper.scores.columns
    assert paper.lower_is_better == frozenset({"asr_wer"})
    assert math.isnan(paper.scores.loc["Random Baseline", "qa"])
    oriented = paper.oriented()
    assert oriented.loc["GPT4o", "asr_wer"] == pytest.approx(-0.19)
    assert oriented.loc["GPT4o", "humor"] == pytest.approx(44.6)


@pytest.mark.parametrize(
    ("name", "lower"),
    [
        ("asr_wer", True),
        ("WER", True),
        ("librispeech-wer", True),
        ("wer2", True),
        ("answer_f1", False),
        ("power", False),
        ("humor", False),
    ],
)
def test_wer_columns_are_recognised_as_a_word_part(name: str, lower: bool) -> None:
    assert is_lower_better(name) is lower


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name,humor\nA,1\nB,2\n", "no 'model' column"),
        ("model,humor\nA,1\nA,2\n", "more than once: A"),
        ("model,group\nA,open\nB,closed\n", "no numeric benchmark column"),
        ("model,humor\n,1\nB,2\n", "empty model name in data row(s) [1]"),
        ("model,humor\nA,inf\nB,2\n", "infinite score(s) in humor"),
        ("", "the file is empty"),
        ("model,humor\n", "no rows"),
    ],
)
def test_bad_csv_gives_a_clear_error(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "static.csv"
    path.write_text(text)
    with pytest.raises(InvalidInputError) as caught:
        load_static_table(path)
    assert message in str(caught.value)


def test_missing_csv_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match=r"cannot read .*nowhere\.csv"):
        load_static_table(tmp_path / "nowhere.csv")


def test_repeated_columns_and_text_scores_are_rejected() -> None:
    frame = pd.DataFrame([["A", 1.0, 2.0]], columns=["model", "humor", " humor"])
    with pytest.raises(InvalidInputError, match="named more than once: humor"):
        static_table_from_frame(frame)
    with pytest.raises(InvalidInputError, match="must be numbers; not in humor"):
        StaticTable(pd.DataFrame({"humor": ["high", "low"]}, index=["A", "B"]))


def test_explicit_lower_is_better_overrides_names_and_is_checked() -> None:
    frame = pd.DataFrame({"model": ["A", "B"], "cer": [0.1, 0.2], "asr_wer": [0.3, 0.1]})
    table = static_table_from_frame(frame, lower_is_better=["cer"])
    assert table.lower_is_better == frozenset({"cer"})
    with pytest.raises(InvalidInputError, match="unknown benchmark"):
        static_table_from_frame(frame, lower_is_better=["nope"])


# --- Kendall tau ----------------------------------------------------------------------------


def test_tau_equals_scipy_on_the_same_vectors_wer_included(
    paper_battles: pd.DataFrame, paper: StaticTable, paper_taus: pd.DataFrame
) -> None:
    ratings = fit_bradley_terry(paper_battles)
    rows = paper_taus.set_index("benchmark")
    for task in TASKS:
        scores = paper.scores[task].reindex(ratings.index).dropna()
        sign = -1.0 if task == "asr_wer" else 1.0
        expected = kendalltau(ratings[scores.index].to_numpy(), sign * scores.to_numpy())
        assert rows.loc[task, "tau"] == pytest.approx(expected.statistic, abs=1e-12)
        assert rows.loc[task, "p_value"] == pytest.approx(expected.pvalue, abs=1e-12)
        assert rows.loc[task, "n_models"] == len(scores)
    raw = kendalltau(
        ratings[paper.scores["asr_wer"].dropna().index], paper.scores["asr_wer"].dropna()
    )
    assert rows.loc["asr_wer", "tau"] == pytest.approx(-raw.statistic, abs=1e-12)
    assert rows.loc["asr_wer", "lower_is_better"]


def test_paper_tau_table_covers_all_14_tasks_with_intervals(paper_taus: pd.DataFrame) -> None:
    assert list(paper_taus["benchmark"]) == TASKS
    assert paper_taus["tau"].notna().all()
    assert paper_taus["reason"].isna().all()
    assert (paper_taus["ci_low"] <= paper_taus["tau"] + 1e-12).all()
    assert (paper_taus["tau"] <= paper_taus["ci_high"] + 1e-12).all()
    assert (paper_taus["ci_low"] < paper_taus["ci_high"]).any()
    np.testing.assert_allclose(paper_taus["distance"], (1 - paper_taus["tau"]) / 2)
    assert paper_taus["p_value"].between(0, 1).all()
    # The random baseline has no QA, instruction or ASR score: 9 shared models there, 10 elsewhere.
    counts = paper_taus.set_index("benchmark")["n_models"]
    assert counts[["qa", "instruction", "asr_wer"]].eq(9).all()
    assert counts.drop(["qa", "instruction", "asr_wer"]).eq(10).all()
    assert paper_taus.attrs["rounds"] == ROUNDS


def test_two_distances_are_labelled_and_differ_only_under_ties(
    paper_taus: pd.DataFrame, paper: StaticTable, paper_battles: pd.DataFrame
) -> None:
    ratings = fit_bradley_terry(paper_battles)
    oriented = paper.oriented()
    for row in paper_taus.itertuples():
        scores = oriented[row.benchmark].reindex(ratings.index).dropna()
        r = ratings[scores.index].to_numpy()
        v = scores.to_numpy()
        pairs = discordant = tied_in_one = 0
        for i in range(len(v)):  # independent: count the pairs one by one
            for j in range(i + 1, len(v)):
                pairs += 1
                a, b = np.sign(r[i] - r[j]), np.sign(v[i] - v[j])
                discordant += a * b < 0
                tied_in_one += (a == 0) != (b == 0)
        assert row.distance_count == pytest.approx((discordant + tied_in_one / 2) / pairs)
        if tied_in_one == 0:
            assert row.distance_count == pytest.approx(row.distance)
    assert paper_taus.attrs["distance"]["distance"] == "(1 - tau_b) / 2"
    assert "tied" in paper_taus.attrs["distance"]["distance_count"]


def test_holm_across_benchmarks_beside_the_unadjusted_p_values(paper_taus: pd.DataFrame) -> None:
    expected = multipletests(paper_taus["p_value"].to_numpy(), method="holm")[1]
    np.testing.assert_allclose(paper_taus["p_holm"], expected)
    assert (paper_taus["p_holm"] >= paper_taus["p_value"] - 1e-12).all()


def test_a_benchmark_tied_to_the_strengths_has_tau_one() -> None:
    strengths = {"a": 1300.0, "b": 1100.0, "c": 900.0, "d": 700.0}
    battles = simulate_battles(strengths, 3000, seed=5)
    scores = pd.DataFrame(
        {"match": [4.0, 3.0, 2.0, 1.0, 9.0], "wer": [0.1, 0.2, 0.3, 0.4, 0.0]},
        index=[*strengths, "never_voted"],
    )
    table = kendall_tau_table(
        battles, StaticTable(scores, frozenset({"wer"})), rounds=200, seed=1
    ).set_index("benchmark")
    assert table.loc["match", "tau"] == pytest.approx(1.0)
    assert table.loc["match", "distance"] == pytest.approx(0.0)
    assert table.loc["wer", "tau"] == pytest.approx(1.0)
    assert table.loc["match", "ci_high"] == pytest.approx(1.0)
    assert table.loc["match", "n_models"] == 4  # the unvoted model has no rating


def test_too_few_shared_models_or_equal_scores_give_nan_and_a_reason() -> None:
    strengths = {"a": 1200.0, "b": 1000.0, "c": 800.0}
    battles = simulate_battles(strengths, 600, seed=2)
    scores = pd.DataFrame(
        {"sparse": [1.0, 2.0, np.nan], "flat": [5.0, 5.0, 5.0], "ok": [3.0, 2.0, 1.0]},
        index=["a", "b", "c"],
    )
    table = kendall_tau_table(battles, StaticTable(scores), rounds=50).set_index("benchmark")
    assert math.isnan(table.loc["sparse", "tau"])
    assert "only 2 model(s)" in table.loc["sparse", "reason"]
    assert math.isnan(table.loc["flat", "tau"])
    assert "same score" in table.loc["flat", "reason"]
    assert table.loc["ok", "reason"] is None
    assert table.loc["ok", "tau"] == pytest.approx(1.0)


def test_kendall_tau_rows_equals_scipy_with_ties() -> None:
    rng = np.random.default_rng(0)
    samples = rng.integers(0, 4, size=(50, 7)).astype(float)
    target = rng.integers(0, 3, size=7).astype(float)
    target[0], target[1] = 0.0, 2.0  # never constant
    rows = kendall_tau_rows(samples, target)
    for row, value in zip(samples, rows, strict=True):
        expected = kendalltau(row, target).statistic
        if np.isnan(expected):
            assert np.isnan(value)
        else:
            assert value == pytest.approx(expected, abs=1e-12)


def test_unbounded_levels_rank_before_values() -> None:
    samples = np.array([[0.0, 5.0, 9.0]])
    levels = np.array([[1, 0, 0]])  # the first model is unbounded above: it ranks top
    target = np.array([3.0, 2.0, 1.0])
    assert kendall_tau_rows(samples, target, levels=levels)[0] == pytest.approx(1 / 3)
    assert kendall_tau_rows(samples, target)[0] == pytest.approx(-1.0)


def test_tau_table_rejects_bad_options(paper_battles: pd.DataFrame, paper: StaticTable) -> None:
    with pytest.raises(InvalidInputError, match="confidence"):
        kendall_tau_table(paper_battles, paper, confidence=1.5)
    with pytest.raises(InvalidInputError, match="min_models"):
        kendall_tau_table(paper_battles, paper, min_models=1)
    with pytest.raises(InvalidInputError, match="StaticTable"):
        kendall_tau_table(paper_battles, paper.scores)  # type: ignore[arg-type]


# --- VIF ------------------------------------------------------------------------------------


def test_vif_equals_statsmodels_with_a_constant() -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(size=(200, 3))
    x[:, 2] += 0.8 * x[:, 0]
    features = pd.DataFrame(x, columns=["a", "b", "c"])
    design = np.column_stack([np.ones(200), x])
    expected = [variance_inflation_factor(design, j) for j in (1, 2, 3)]
    np.testing.assert_allclose(variance_inflation_factors(features), expected, rtol=1e-10)
    assert variance_inflation_factors(features).index.tolist() == ["a", "b", "c"]


def test_weighted_vifs_are_statsmodels_vifs_of_the_repeated_rows() -> None:
    # the regression counts the votes of one ordered pair as one row weighted by their number
    rng = np.random.default_rng(5)
    rows = rng.normal(size=(30, 3))
    rows[:, 1] += 0.9 * rows[:, 0]
    counts = rng.integers(1, 40, size=30).astype(float)
    repeated = np.repeat(rows, counts.astype(int), axis=0)
    design = np.column_stack([np.ones(len(repeated)), repeated])
    expected = [variance_inflation_factor(design, j) for j in (1, 2, 3)]
    weighted = variance_inflation_factors(pd.DataFrame(rows, columns=["a", "b", "c"]), counts)
    np.testing.assert_allclose(weighted, expected, rtol=1e-9)
    with pytest.raises(InvalidInputError, match="one value per row"):
        variance_inflation_factors(pd.DataFrame(rows), counts[:3])
    with pytest.raises(InvalidInputError, match="non-negative"):
        variance_inflation_factors(pd.DataFrame(rows), -counts)


def test_vif_screening_drops_a_duplicated_and_a_near_duplicated_feature() -> None:
    rng = np.random.default_rng(6)
    x = rng.normal(size=(300, 3))
    features = pd.DataFrame(
        {
            "a": x[:, 0],
            "b": x[:, 1],
            "a_copy": x[:, 0],
            "c": x[:, 2],
            "c_near": x[:, 2] + rng.normal(scale=0.05, size=300),
        }
    )
    vifs = variance_inflation_factors(features)
    assert np.isinf(vifs["a"]) and np.isinf(vifs["a_copy"])
    kept, dropped = screen_by_vif(features, 10.0)
    assert dropped[0] == "a_copy"
    assert set(dropped) == {"a_copy", "c_near"} or set(dropped) == {"a_copy", "c"}
    assert "a" in kept and "b" in kept
    assert (variance_inflation_factors(features[list(kept)]) <= 10.0).all()


def test_vif_of_a_constant_feature_is_infinite() -> None:
    features = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "flat": [2.0, 2.0, 2.0, 2.0]})
    assert np.isinf(variance_inflation_factors(features)["flat"])
    with pytest.raises(InvalidInputError, match="at least 1"):
        screen_by_vif(features, 0.5)


# --- vote regression ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def study() -> tuple[pd.DataFrame, StaticTable, np.ndarray]:
    return linear_study(0)


@pytest.fixture(scope="module")
def raw_fit(study: tuple[pd.DataFrame, StaticTable, np.ndarray]) -> RegressionResult:
    battles, static, _ = study
    return regress_votes_on_benchmarks(battles, static, standardise=False, model="linear")


def test_regression_recovers_known_coefficients_within_their_intervals(
    study: tuple[pd.DataFrame, StaticTable, np.ndarray], raw_fit: RegressionResult
) -> None:
    _, _, beta = study
    table = raw_fit.coefficients
    assert list(table["feature"]) == ["f1", "f2", "f3"]
    assert ((table["ci_low"] <= beta) & (beta <= table["ci_high"])).all()
    assert (np.abs(table["estimate"] - beta) < 3 * table["std_error"]).all()
    assert table.loc[0, "p_value"] < 1e-3 and table.loc[1, "p_value"] < 1e-3
    assert raw_fit.intercept == pytest.approx(0.5, abs=0.03)
    assert raw_fit.n_votes == 6000 and raw_fit.n_models == 20
    assert raw_fit.dropped_by_vif == ()
    assert raw_fit.converged


def test_r2_is_in_range_and_follows_nakagawa(
    study: tuple[pd.DataFrame, StaticTable, np.ndarray], raw_fit: RegressionResult
) -> None:
    assert 0.0 < raw_fit.r2_marginal <= raw_fit.r2_conditional <= 1.0
    battles, static, _ = study
    scores = static.scores
    fixed = (
        scores.loc[battles["model_a"]].to_numpy() - scores.loc[battles["model_b"]].to_numpy()
    ) @ raw_fit.coefficients["estimate"].to_numpy()
    random = 2.0 * raw_fit.variance_components["model"]  # u_a - u_b: two draws per vote
    total = fixed.var() + random + raw_fit.residual_variance
    assert raw_fit.r2_marginal == pytest.approx(fixed.var() / total, rel=1e-9)
    assert raw_fit.r2_conditional == pytest.approx((fixed.var() + random) / total, rel=1e-9)


def test_standardised_estimates_are_raw_estimates_times_the_model_sd(
    study: tuple[pd.DataFrame, StaticTable, np.ndarray], raw_fit: RegressionResult
) -> None:
    battles, static, _ = study
    scaled = regress_votes_on_benchmarks(battles, static, model="linear")
    sd = static.scores.std(ddof=0).to_numpy()
    np.testing.assert_allclose(
        scaled.coefficients["estimate"], raw_fit.coefficients["estimate"] * sd, rtol=1e-3
    )
    np.testing.assert_allclose(
        scaled.coefficients["p_value"], raw_fit.coefficients["p_value"], atol=1e-3
    )
    assert scaled.r2_marginal == pytest.approx(raw_fit.r2_marginal, rel=1e-3)


def test_regression_drops_a_duplicated_benchmark_by_vif() -> None:
    battles, static, _ = linear_study(1, models=12, votes=3000)
    scores = static.scores.assign(f1_again=static.scores["f1"])
    fit = regress_votes_on_benchmarks(battles, StaticTable(scores))
    assert fit.dropped_by_vif == ("f1_again",)
    assert list(fit.coefficients["feature"]) == ["f1", "f2", "f3"]
    assert (fit.coefficients["vif"] <= 10.0).all()


def test_ties_and_unscored_models_are_left_out(
    study: tuple[pd.DataFrame, StaticTable, np.ndarray],
) -> None:
    battles, static, _ = study
    extra = pd.DataFrame(
        {
            "model_a": ["m00", "m01", "m02", "unscored"],
            "model_b": ["m01", "m02", "unscored", "m03"],
            "winner": ["tie", "both_bad", "model_a", "model_b"],
        }
    )
    fit = regress_votes_on_benchmarks(
        pd.concat([battles.iloc[:1500], extra], ignore_index=True), static
    )
    assert fit.n_votes == 1500
    assert fit.n_ties == 2
    assert fit.n_unscored == 2
    assert "unscored" not in fit.models


def test_paper_regression_screens_to_fewer_features_than_models(
    paper_battles: pd.DataFrame, paper: StaticTable
) -> None:
    fit = regress_votes_on_benchmarks(paper_battles, paper)
    # The random baseline is voted on but has no QA, instruction or ASR score.
    assert fit.dropped_missing == ("qa", "instruction", "asr_wer")
    assert fit.n_models == 10
    kept = list(fit.coefficients["feature"])
    assert len(kept) <= fit.n_models - 1
    assert sorted(kept + list(fit.dropped_by_vif)) == sorted(
        t for t in TASKS if t not in fit.dropped_missing
    )
    assert 0.0 <= fit.r2_marginal <= fit.r2_conditional <= 1.0
    document = fit.to_dict()
    json.dumps(document, allow_nan=False)
    assert {"r2_marginal", "r2_conditional", "coefficients", "dropped_by_vif"} <= set(document)
    assert document["n_votes"] == fit.n_votes
    assert set(document["coefficients"][0]) >= {"feature", "estimate", "std_error", "p_value"}


def test_a_model_variance_at_zero_is_an_estimate_and_the_fit_is_then_ols() -> None:
    battles, static, _ = linear_study(2, models=10, votes=2000, sigma_u=0.0)
    fit = regress_votes_on_benchmarks(battles, static, standardise=False, model="linear")
    assert fit.converged
    assert fit.variance_components["model"] <= 1e-4 * fit.residual_variance
    assert any("estimated at (nearly) zero" in note for note in fit.fit_warnings)
    assert fit.r2_conditional == pytest.approx(fit.r2_marginal, abs=1e-4)
    scores = static.scores
    exog = sm.add_constant(
        scores.loc[battles["model_a"]].to_numpy() - scores.loc[battles["model_b"]].to_numpy()
    )
    ols = sm.OLS((battles["winner"] == "model_a").to_numpy(dtype=float), exog).fit()
    np.testing.assert_allclose(fit.coefficients["estimate"], ols.params[1:], rtol=1e-4)
    np.testing.assert_allclose(fit.coefficients["std_error"], ols.bse[1:], rtol=1e-4)
    assert fit.residual_variance == pytest.approx(ols.scale, rel=1e-6)


def test_sides_random_effects_fit_two_variances(
    paper_battles: pd.DataFrame, paper: StaticTable
) -> None:
    fit = regress_votes_on_benchmarks(paper_battles, paper, model="linear", random_effects="sides")
    assert set(fit.variance_components) == {"model_a", "model_b"}
    assert 0.0 <= fit.r2_marginal <= fit.r2_conditional <= 1.0
    with pytest.raises(InvalidInputError, match="random_effects"):
        regress_votes_on_benchmarks(
            paper_battles,
            paper,
            model="linear",
            random_effects="both",  # type: ignore[arg-type]
        )
    with pytest.raises(InvalidInputError, match="linear model"):
        regress_votes_on_benchmarks(paper_battles, paper, random_effects="sides")


def test_to_dict_turns_nan_into_none() -> None:
    result = RegressionResult(
        coefficients=pd.DataFrame(
            {
                "feature": ["x"],
                "estimate": [np.nan],
                "std_error": [0.1],
                "p_value": [np.nan],
                "ci_low": [np.nan],
                "ci_high": [np.nan],
                "vif": [np.inf],
            }
        ),
        dropped_by_vif=("y",),
        r2_marginal=np.nan,
        r2_conditional=0.5,
        n_votes=10,
        n_models=3,
    )
    document = result.to_dict()
    json.dumps(document, allow_nan=False)
    assert document["r2_marginal"] is None
    assert document["coefficients"][0]["estimate"] is None
    assert document["coefficients"][0]["vif"] is None
    assert document["coefficients"][0]["std_error"] == 0.1


def test_regression_needs_three_models_and_both_outcomes() -> None:
    two = pd.DataFrame({"model_a": ["a", "b"] * 5, "model_b": ["b", "a"] * 5})
    two["winner"] = ["model_a", "model_b"] * 5
    static = StaticTable(pd.DataFrame({"x": [1.0, 2.0, 3.0]}, index=["a", "b", "c"]))
    with pytest.raises(InsufficientData, match="3 decisive votes among 3 models"):
        regress_votes_on_benchmarks(two, static)
    one_sided = pd.DataFrame(
        {"model_a": ["a", "b", "c"] * 4, "model_b": ["b", "c", "a"] * 4, "winner": "model_a"}
    )
    with pytest.raises(InsufficientData, match="same side"):
        regress_votes_on_benchmarks(one_sided, static)


@pytest.mark.parametrize("random_effects", ["signed", "sides"])
def test_mixed_model_matches_statsmodels_mixedlm_where_it_converges(
    paper_battles: pd.DataFrame, paper: StaticTable, random_effects: str
) -> None:
    fit = regress_votes_on_benchmarks(
        paper_battles,
        paper,
        model="linear",
        random_effects=random_effects,  # type: ignore[arg-type]
    )
    kept = list(fit.coefficients["feature"])
    votes = paper_battles[paper_battles["winner"].isin(["model_a", "model_b"])]
    models = list(fit.models)
    scores = paper.oriented().loc[models, kept]
    scores = (scores - scores.mean()) / scores.std(ddof=0)
    first = votes["model_a"].map(models.index).to_numpy()
    second = votes["model_b"].map(models.index).to_numpy()
    exog = np.column_stack(
        [np.ones(len(votes)), scores.to_numpy()[first] - scores.to_numpy()[second]]
    )
    side_a = np.zeros((len(votes), len(models)))
    side_b = np.zeros((len(votes), len(models)))
    side_a[np.arange(len(votes)), first] = 1.0
    side_b[np.arange(len(votes)), second] = 1.0
    if random_effects == "signed":
        spec = VCSpec(["model"], [[models]], [[side_a - side_b]])
    else:
        spec = VCSpec(["model_a", "model_b"], [[models], [models]], [[side_a], [side_b]])
    endog = (votes["winner"] == "model_a").to_numpy(dtype=float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        reference = MixedLM(endog, exog, groups=np.zeros(len(votes)), exog_vc=spec).fit(
            reml=True, method=["nm"]
        )
    assert reference.converged
    np.testing.assert_allclose(fit.coefficients["estimate"], reference.fe_params[1:], rtol=1e-3)
    np.testing.assert_allclose(fit.coefficients["std_error"], reference.bse_fe[1:], rtol=0.02)
    np.testing.assert_allclose(list(fit.variance_components.values()), reference.vcomp, rtol=1e-2)
    assert fit.residual_variance == pytest.approx(reference.scale, rel=1e-4)


def test_k_minus_one_features_leave_a_zero_model_variance_not_a_failure() -> None:
    # The study's situation (6 models, 5 features kept): K - 1 benchmark differences span every
    # contrast of model strengths, so nothing is left for the model effects.
    battles, static, _ = linear_study(3, models=4, votes=3000, sigma_u=0.03)
    fit = regress_votes_on_benchmarks(battles, static, standardise=False, model="linear")
    assert fit.converged
    assert fit.variance_components["model"] == 0.0
    assert any("not identifiable" in note for note in fit.fit_warnings)
    assert fit.r2_conditional == fit.r2_marginal
    # Position-specific effects (lme4's (1 | model_a) + (1 | model_b)) remain estimable.
    sides = regress_votes_on_benchmarks(
        battles, static, standardise=False, model="linear", random_effects="sides"
    )
    assert not any("not identifiable" in note for note in sides.fit_warnings)
    assert fit.coefficients["std_error"].notna().all()


@pytest.mark.slow
def test_estimates_are_unbiased_and_standard_errors_calibrated() -> None:
    scores = np.random.default_rng(99).normal(size=(20, 3))
    estimates, errors = [], []
    for seed in range(60):
        battles, static, beta = linear_study(seed, votes=3000, scores=scores)
        table = regress_votes_on_benchmarks(
            battles, static, standardise=False, model="linear"
        ).coefficients
        estimates.append(table["estimate"].to_numpy())
        errors.append(table["std_error"].to_numpy())
    estimate, error = np.array(estimates), np.array(errors)
    spread = estimate.std(axis=0)
    assert np.all(np.abs(estimate.mean(axis=0) - beta) < 3 * spread / np.sqrt(60))
    assert np.all((error.mean(axis=0) > 0.8 * spread) & (error.mean(axis=0) < 1.25 * spread))
    coverage = np.mean(np.abs(estimate - beta) <= 1.96 * error)
    assert 0.88 <= coverage <= 0.99


# --- PCA ------------------------------------------------------------------------------------


def test_paper_pca_needs_five_components_for_95_percent(paper: StaticTable) -> None:
    result = static_pca(paper)
    ratios = np.array(result.explained_variance_ratio)
    assert ratios.sum() <= 1.0 + 1e-12
    assert (np.diff(ratios) <= 1e-12).all()
    assert result.dropped_models == ("Random Baseline",)
    assert result.loadings.shape == (14, 9)
    assert list(result.loadings.index) == TASKS
    assert result.scores.shape == (9, 9)
    assert result.components_for(0.95) == 5  # the study: 5 components explain 95%
    loadings = result.loadings.to_numpy()
    np.testing.assert_allclose(loadings.T @ loadings, np.eye(9), atol=1e-10)
    assert (loadings.sum(axis=0) >= 0).all()
    z = paper.oriented().drop(index="Random Baseline")
    z = (z - z.mean()) / z.std(ddof=0)
    np.testing.assert_allclose(result.scores.to_numpy() @ loadings.T, z.to_numpy(), atol=1e-9)
    json.dumps(result.to_dict(), allow_nan=False)
    assert set(result.to_dict()["loadings"]) == set(TASKS)


def test_pca_missing_score_strategies(paper: StaticTable) -> None:
    dropped = static_pca(paper, missing="drop_benchmarks")
    assert dropped.dropped_benchmarks == ("qa", "instruction", "asr_wer")
    assert dropped.loadings.shape == (11, 10)
    imputed = static_pca(paper, missing="impute_mean", standardise=False)
    assert imputed.loadings.shape == (14, 10)
    assert sum(imputed.explained_variance_ratio) == pytest.approx(1.0)
    with pytest.raises(InvalidInputError, match="missing"):
        static_pca(paper, missing="zero")  # type: ignore[arg-type]


def test_pca_needs_two_models() -> None:
    with pytest.raises(InsufficientData, match="at least 2 models"):
        static_pca(StaticTable(pd.DataFrame({"x": [1.0], "y": [2.0]}, index=["a"])))


def test_models_without_a_finite_rating_are_named_as_left_out_of_tau() -> None:
    import itertools

    rows = []
    for a, b in itertools.combinations(["m0", "m1", "m2", "m3"], 2):
        rows += [{"model_a": a, "model_b": b, "winner": "model_a"}] * 6
        rows += [{"model_a": a, "model_b": b, "winner": "model_b"}] * 4
    # m4 never loses: its maximum-likelihood rating is infinite.
    rows += [{"model_a": "m4", "model_b": m, "winner": "model_a"} for m in ["m0", "m1"] * 5]
    scores = pd.DataFrame({"model": ["m0", "m1", "m2", "m3", "m4"], "x": [5, 4, 3, 2, 9]})
    table = kendall_tau_table(pd.DataFrame(rows), static_table_from_frame(scores), rounds=50)
    assert table.loc[0, "n_models"] == 4
    assert table.attrs["unrated_models"] == ["m4"]


def test_the_regression_does_not_depend_on_the_order_of_the_benchmarks(
    paper_battles: pd.DataFrame, paper: StaticTable
) -> None:
    # With 9-10 models every difference feature lies in a 9-dimensional space, so the VIF
    # screen meets many infinite ties: their breaking must not follow the table's layout.
    forward = regress_votes_on_benchmarks(paper_battles, paper)
    columns = list(paper.scores.columns)
    for order in (columns[::-1], columns[3:] + columns[:3]):
        shuffled = StaticTable(paper.scores[order], paper.lower_is_better)
        again = regress_votes_on_benchmarks(paper_battles, shuffled)
        assert again.dropped_by_vif == forward.dropped_by_vif
        mine = forward.coefficients.set_index("feature").sort_index()
        theirs = again.coefficients.set_index("feature").sort_index()
        # the same model: equal up to the variance optimiser's tolerance (it starts from the
        # columns in their order)
        pd.testing.assert_frame_equal(theirs, mine, rtol=1e-4, atol=1e-8)
        assert again.r2_marginal == pytest.approx(forward.r2_marginal, rel=1e-4)


def test_vif_ties_drop_the_most_redundant_feature_whatever_the_column_order() -> None:
    rng = np.random.default_rng(9)
    base = rng.normal(size=(200, 2))
    features = pd.DataFrame(
        {
            "x": base[:, 0],
            "y": base[:, 1],
            "sum": base[:, 0] + base[:, 1],  # exactly collinear with x and y: every VIF infinite
            "noise": rng.normal(size=200),
        }
    )
    first = screen_by_vif(features, 10.0)
    for order in (["noise", "sum", "y", "x"], ["y", "noise", "x", "sum"]):
        kept, dropped = screen_by_vif(features[order], 10.0)
        assert dropped == first[1] and set(kept) == set(first[0])
    assert first[1] == ("sum",)  # most correlated with the rest


def test_selection_stability_is_the_share_of_leave_one_model_out_screens_keeping_each(
    paper_battles: pd.DataFrame, paper: StaticTable
) -> None:
    complete = paper.scores.dropna()  # every model scored on every benchmark
    static = StaticTable(complete, paper.lower_is_better)
    voted = paper_battles["model_a"].isin(complete.index) & paper_battles["model_b"].isin(
        complete.index
    )
    battles = paper_battles[voted].iloc[:1500].reset_index(drop=True)  # quick refits
    result = regress_votes_on_benchmarks(battles, static)
    stability = result.to_dict()["selection_stability"]

    # independent: rerun the whole regression without each model and read what it kept
    considered = set(complete.columns)
    kept_counts = dict.fromkeys(considered, 0)
    for model in result.models:
        rest = battles[(battles["model_a"] != model) & (battles["model_b"] != model)]
        again = regress_votes_on_benchmarks(rest, static)
        for name in considered - set(again.dropped_by_vif):
            kept_counts[name] += 1
    expected = {name: count / len(result.models) for name, count in kept_counts.items()}
    assert stability == pytest.approx(expected)
    assert all(0.0 <= share <= 1.0 for share in stability.values())
