"""Vote reasons: themes found in simulated feedback, counts per winning model, side masking."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import adjusted_rand_score

from lamarena.analysis.text.feedback import find_feedback_themes, mask_sides, winning_side
from lamarena.errors import InsufficientData, InvalidInputError
from lamarena.simulation import FEEDBACK_SHARES, parse_strengths, simulate_battles


@pytest.fixture(scope="module")
def voted() -> pd.DataFrame:
    return simulate_battles(parse_strengths("5"), 1500, seed=3, study=True, feedback=True)


@pytest.fixture(scope="module")
def themes(voted: pd.DataFrame):
    return find_feedback_themes(voted, seed=0)


def test_themes_follow_the_planted_reasons(voted: pd.DataFrame, themes) -> None:
    given = voted["feedback_text"].notna()
    ari = adjusted_rand_score(voted.loc[given, "feedback_theme"], themes.theme[given])
    assert ari >= 0.5, f"adjusted Rand index {ari:.3f}"
    assert 4 <= len(themes.themes) <= 8
    terms = {term for theme in themes.themes for term in theme.terms}
    assert {"helpful", "natural", "facts"} <= terms
    assert "model" not in terms  # "Model A" says who, not why


def test_counts_add_up_per_theme_and_per_winner(voted: pd.DataFrame, themes) -> None:
    given = int(voted["feedback_text"].notna().sum())
    assert themes.n_feedback == given and themes.n_battles == len(voted)
    assert sum(theme.count for theme in themes.themes) == given
    assert sum(theme.share for theme in themes.themes) == pytest.approx(1.0)
    names = set(voted["model_a"]) | set(voted["model_b"]) | {"tie", "both_bad"}
    for theme in themes.themes:
        assert sum(theme.by_winner.values()) == theme.count
        assert set(theme.by_winner) <= names
    # each battle's theme and its winner agree with the per-winner counts
    winners = winning_side(voted)
    for theme in themes.themes:
        inside = themes.theme == theme.id
        assert winners[inside].value_counts().to_dict() == theme.by_winner
    assert themes.theme[voted["feedback_text"].isna()].isna().all()
    document = themes.to_dict()
    assert document["n_feedback"] == given
    assert document["themes"][0]["examples"]


def test_a_tie_has_no_winning_model() -> None:
    battles = pd.DataFrame(
        {
            "model_a": ["x", "x", "y", "y"],
            "model_b": ["y", "y", "x", "x"],
            "winner": ["model_a", "model_b", "tie", "both_bad"],
        },
        index=[7, 8, 9, 10],
    )
    assert winning_side(battles).to_dict() == {7: "x", 8: "y", 9: "tie", 10: "both_bad"}


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("Model A gave more detail than the other one", "it gave more detail than it"),
        ("answer b was more accurate", "it was more accurate"),
        ("The first response sounded natural", "it sounded natural"),
        ("A good answer with lots of detail", "A good answer with lots of detail"),
    ],
)
def test_mentions_of_a_side_are_masked(text: str, masked: str) -> None:
    assert mask_sides(text) == masked


def test_no_reason_at_all_is_insufficient_data() -> None:
    battles = simulate_battles(parse_strengths("3"), 20, seed=0)
    battles["feedback_text"] = None
    with pytest.raises(InsufficientData, match="feedback_text"):
        find_feedback_themes(battles)
    with pytest.raises(InvalidInputError, match="no 'why' column"):
        find_feedback_themes(battles, column="why")


def test_the_number_of_themes_can_be_given() -> None:
    battles = pd.DataFrame(
        {
            "model_a": ["x", "y", "x", "y", "x", "y"],
            "model_b": ["y", "x", "y", "x", "y", "x"],
            "winner": ["model_a"] * 6,
            "feedback_text": [
                "more detail",
                "more detail please",
                "sounds human",
                "sounds very human",
                "no reason",
                "",
            ],
        }
    )

    def embed(texts: Sequence[str]) -> np.ndarray:
        return np.array([[float("detail" in t), float("human" in t), 0.1] for t in texts])

    result = find_feedback_themes(battles, n_themes=2, embedder=embed)
    assert len(result.themes) == 2 and result.n_feedback == 5 and result.silhouettes == {}
    assert result.theme.iloc[0] == result.theme.iloc[1] != result.theme.iloc[2]
    assert result.theme.iloc[5] is None


def test_simulated_reasons_follow_the_study_shares() -> None:
    strengths = parse_strengths("4")
    plain = simulate_battles(strengths, 20_000, seed=8, study=True)
    battles = simulate_battles(strengths, 20_000, seed=8, study=True, feedback=True)
    assert battles.drop(columns=["feedback_theme", "feedback_text"]).equals(plain)
    given = battles["feedback_text"].notna()
    assert given.mean() == pytest.approx(0.4, abs=0.015)
    assert (battles["feedback_theme"].notna() == given).all()
    decisive = battles["winner"].isin(["model_a", "model_b"]) & given
    shares = battles.loc[decisive, "feedback_theme"].value_counts(normalize=True)
    for theme, share in FEEDBACK_SHARES.items():
        assert shares[theme] == pytest.approx(share, abs=0.02)
    drawn = battles.loc[~battles["winner"].isin(["model_a", "model_b"]) & given, "feedback_theme"]
    assert set(drawn) == {"other"}
    named = battles.loc[decisive, "feedback_text"].str.contains("Model [AB]")
    sides = battles.loc[decisive & named.reindex(battles.index, fill_value=False)]
    agree = np.where(
        sides["winner"] == "model_a",
        sides["feedback_text"].str.contains("Model A"),
        sides["feedback_text"].str.contains("Model B"),
    )
    assert agree.all()
    assert "{" not in "".join(battles.loc[given, "feedback_text"].head(500))
    with pytest.raises(InvalidInputError, match="feedback_rate"):
        simulate_battles(strengths, 10, feedback=True, feedback_rate=1.5)
