"""numbers.json: every section of the study, JSON-safe, with notes where data is missing."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import pytest
from sklearn.decomposition import PCA

from lamarena.analysis.gap import static_table_from_frame
from lamarena.errors import InvalidInputError
from lamarena.report import SECTIONS, compute_study, load_static_input
from lamarena.report.html import render_report

from .conftest import PAPER_TABLE, QUICK

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


def test_every_section_is_computed(study_document: dict[str, Any]) -> None:
    for section in SECTIONS:
        assert study_document[section], section
    assert study_document["notes"] == {}
    json.dumps(study_document, allow_nan=False)  # NaN never reaches the file
    assert study_document["n_battles"] == 1200
    assert study_document["settings"]["tau_rounds"] == QUICK.tau_rounds


def test_the_tau_table_covers_all_fourteen_tasks(study_document: dict[str, Any]) -> None:
    rows = study_document["kendall_tau"]
    assert [row["benchmark"] for row in rows] == TASKS
    for row in rows:
        assert {"benchmark", "tau", "distance", "ci_low", "ci_high", "n_models"} <= set(row)
        assert row["n_models"] == 9  # the Random Baseline has no votes
        assert -1.0 <= row["tau"] <= 1.0
        assert row["distance"] == pytest.approx((1 - row["tau"]) / 2)
    assert study_document["static"]["lower_is_better"] == ["asr_wer"]
    assert "Random Baseline" not in study_document["static"]["shared_models"]


def test_regression_pca_topics_and_feedback_have_their_documented_fields(
    study_document: dict[str, Any],
) -> None:
    regression = study_document["regression"]
    assert {"r2_marginal", "r2_conditional", "coefficients", "dropped_by_vif"} <= set(regression)
    assert len(regression["coefficients"]) + len(regression["dropped_by_vif"]) <= 14
    # the primary fit and the scale of its R² are named, the linear model beside it
    assert regression["method"] == "logistic_mixed_model_laplace"
    assert regression["scale"] == "latent"
    assert regression["sensitivity"]["scale"] == "observed"
    assert regression["permutations"] > 0
    assert all(row["p_permutation"] is not None for row in regression["coefficients"])
    pca = study_document["pca"]
    assert sum(pca["explained_variance_ratio"]) == pytest.approx(1.0, abs=1e-6)
    assert set(pca["loadings"]) <= set(TASKS)
    assert pca["standardised"] is True and pca["raw"]["standardised"] is False
    assert 1 <= pca["components_for_95"] <= len(pca["explained_variance_ratio"])
    # the raw PCA is scikit-learn's on the centred, oriented scores of the complete models
    static = load_static_input(PAPER_TABLE)
    scores = static.oriented().dropna(axis=1, how="all").dropna(axis=0)
    expected = PCA(svd_solver="full").fit(scores.to_numpy()).explained_variance_ratio_
    assert pca["raw"]["explained_variance_ratio"] == pytest.approx(list(expected), abs=1e-9)
    assert pca["raw"]["explained_variance_ratio"] != pytest.approx(
        pca["explained_variance_ratio"], abs=1e-3
    )
    topics = study_document["topics"]
    assert topics["n_queries"] == 1200
    assert len(topics["leaderboards"]) == len(topics["topics"])
    assert sum(board["n_battles"] for board in topics["leaderboards"]) == 1200
    feedback = study_document["feedback"]
    assert feedback["n_battles"] == 1200 and 0 < feedback["n_feedback"] < 1200


def test_win_rates_follow_the_leaderboard(study_document: dict[str, Any]) -> None:
    rates = study_document["win_rates"]
    ranked = [row["model"] for row in study_document["leaderboard"]["models"]]
    assert rates["models"] == ranked
    matrix = rates["matrix"]
    for i in range(len(ranked)):
        assert matrix[i][i] is None
        for j in range(len(ranked)):
            if i != j and matrix[i][j] is not None:
                assert matrix[i][j] + matrix[j][i] == pytest.approx(1.0)
                assert rates["significant"][i][j] == rates["significant"][j][i]
    # starred from each pair's own record (the study's paired bootstrap), not the ratings' test
    records = study_document["leaderboard"]["head_to_head"]
    assert sum(map(sum, rates["significant"])) == 2 * sum(r["significant"] for r in records)
    index = {name: i for i, name in enumerate(ranked)}
    for record in records:
        i, j = index[record["model_a"]], index[record["model_b"]]
        assert rates["significant"][i][j] == record["significant"]
        assert rates["p_value"][i][j] == pytest.approx(record["p_value"])
        assert matrix[i][j] == pytest.approx(record["win_rate"])


def test_sections_without_data_are_none_with_a_note(study_battles: pd.DataFrame) -> None:
    plain = study_battles[["model_a", "model_b", "winner"]]
    static = load_static_input(PAPER_TABLE)
    document = compute_study(plain, static, options=QUICK)
    assert document["topics"] is None and document["feedback"] is None
    assert "query_transcript" in document["notes"]["topics"]
    assert "feedback_text" in document["notes"]["feedback"]
    assert document["kendall_tau"] and document["regression"] and document["pca"]
    json.dumps(document, allow_nan=False)


def test_too_few_shared_models_leave_the_static_analyses_out(
    study_battles: pd.DataFrame,
) -> None:
    plain = study_battles[["model_a", "model_b", "winner"]]
    frame = pd.DataFrame({"model": ["GPT4o", "Gemini"], "qa": [65.2, 64.2], "age": [12.2, 7.9]})
    document = compute_study(plain, static_table_from_frame(frame), options=QUICK)
    assert document["regression"] is None and "regression" in document["notes"]
    assert all(row["tau"] is None for row in document["kendall_tau"])
    assert document["leaderboard"]["n_battles"] == 1200


def test_votes_and_static_scores_without_a_shared_model_are_an_error(
    study_battles: pd.DataFrame,
) -> None:
    frame = pd.DataFrame({"model": ["x", "y", "z"], "qa": [1.0, 2.0, 3.0]})
    with pytest.raises(InvalidInputError, match="no model of the static table"):
        compute_study(study_battles, static_table_from_frame(frame), options=QUICK)


def test_votes_after_conversations_get_a_leaderboard_per_depth(
    study_battles: pd.DataFrame,
) -> None:
    plain = study_battles[["model_a", "model_b", "winner"]].copy()
    assert (
        compute_study(plain, load_static_input(PAPER_TABLE), options=QUICK)["leaderboard_by_turns"]
        is None
    )  # every vote after one turn: nothing to split
    plain["n_turns"] = [1 + index % 4 for index in range(len(plain))]
    document = compute_study(plain, load_static_input(PAPER_TABLE), options=QUICK)
    groups = document["leaderboard_by_turns"]["groups"]
    assert [(g["group"], g["n_battles"]) for g in groups] == [("1", 300), ("2", 300), ("3+", 600)]
    assert all(g["leaderboard"]["n_resamples"] == QUICK.n_resamples for g in groups)
    html = render_report(document)
    assert html.count('class="by-turns"') == 3 and "after 3+ turns (600 battles)" in html


def test_text_out_and_speech_out_votes_get_a_leaderboard_each_and_are_never_pooled(
    study_battles: pd.DataFrame,
) -> None:
    plain = study_battles[["model_a", "model_b", "winner"]].copy()
    static = load_static_input(PAPER_TABLE)
    one_mode = compute_study(plain, static, options=QUICK)
    assert one_mode["leaderboard_by_mode"] is None  # every vote on text replies: nothing to split
    assert one_mode["mode"] == "text" and "mode" not in one_mode["notes"]
    plain["mode"] = ["speech" if index % 4 == 0 else "text" for index in range(len(plain))]
    document = compute_study(plain, static, options=QUICK)
    groups = document["leaderboard_by_mode"]["groups"]
    assert [(g["group"], g["n_battles"]) for g in groups] == [("text", 900), ("speech", 300)]
    assert [g["leaderboard"]["mode"] for g in groups] == ["text", "speech"]
    # The headline sections rank the text-out votes alone, and say so.
    assert document["mode"] == "text" and document["battles_by_mode"] == {
        "text": 900,
        "speech": 300,
    }
    assert document["n_battles"] == 900 and document["leaderboard"]["n_battles"] == 900
    assert document["leaderboard"]["models"] == groups[0]["leaderboard"]["models"]
    assert "900 text-out and 300 speech-out" in document["notes"]["mode"]
    html = render_report(document)
    assert html.count('class="by-mode"') == 2 and "speech-out (300 battles)" in html
    assert 'id="mode-note"' in html
    speech_only = compute_study(plain[plain["mode"] == "speech"], static, options=QUICK)
    assert speech_only["mode"] == "speech" and speech_only["leaderboard_by_mode"] is None
    assert speech_only["leaderboard"]["mode"] == "speech"
