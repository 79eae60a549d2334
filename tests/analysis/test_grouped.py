"""Leaderboards kept apart, per reply mode and per conversation depth: each on its own votes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lamarena.analysis.ranking.grouped import (
    DEPTHS,
    depth_of,
    grouped_leaderboards,
    leaderboards_by_depth,
    leaderboards_by_mode,
)
from lamarena.analysis.ranking.leaderboard import build_leaderboard
from lamarena.analysis.ranking.modes import (
    MODES,
    mode_counts,
    mode_of,
    require_one_mode,
    select_mode,
)
from lamarena.errors import InvalidInputError
from lamarena.simulation import parse_strengths, simulate_battles

OPTIONS = {"n_resamples": 50, "seed": 0, "min_battles": 1}


def _mixed(n_text: int = 600, n_speech: int = 400) -> pd.DataFrame:
    """Text-out votes and speech-out votes with different true strengths."""
    text = simulate_battles({"x": 1100.0, "y": 1000.0, "z": 900.0}, n_text, seed=4)
    speech = simulate_battles({"x": 900.0, "y": 1000.0, "z": 1100.0}, n_speech, seed=5)
    text["mode"] = "text"
    speech["mode"] = "speech"
    return pd.concat([text, speech], ignore_index=True)


def test_depth_groups_are_one_two_and_three_or_more() -> None:
    depths = depth_of(pd.Series([1, 2, 3, 7, None, 1.0]))
    assert depths.tolist() == ["1", "2", "3+", "3+", "1", "1"]


def test_each_depth_is_ranked_on_its_own_votes_only() -> None:
    battles = simulate_battles(parse_strengths("4", seed=1), 900, seed=2)
    rng = np.random.default_rng(3)
    battles["n_turns"] = rng.choice([1, 2, 3, 4], size=len(battles), p=[0.5, 0.3, 0.1, 0.1])
    grouped = leaderboards_by_depth(battles, **OPTIONS)
    assert grouped["by"] == "turns"
    assert [group["group"] for group in grouped["groups"]] == list(DEPTHS)
    counts = [group["n_battles"] for group in grouped["groups"]]
    assert counts == [
        int((battles["n_turns"] == 1).sum()),
        int((battles["n_turns"] == 2).sum()),
        int((battles["n_turns"] >= 3).sum()),
    ]
    deep = battles[battles["n_turns"] >= 3].reset_index(drop=True)
    independent = build_leaderboard(deep, **OPTIONS).to_dict()
    assert grouped["groups"][2]["leaderboard"]["models"] == independent["models"]


def test_a_depth_without_votes_is_a_note_not_a_failure() -> None:
    battles = simulate_battles(parse_strengths("3", seed=1), 200, seed=2)  # no n_turns: 1 turn
    grouped = leaderboards_by_depth(battles, n_resamples=20, min_battles=1)
    one, two, more = grouped["groups"]
    assert one["n_battles"] == 200 and one["leaderboard"] is not None
    assert two == {"group": "2", "n_battles": 0, "leaderboard": None, "note": "no battles"}
    assert more["leaderboard"] is None


def test_a_missing_mode_is_text_and_an_unknown_one_is_named() -> None:
    plain = pd.DataFrame({"model_a": ["x"], "model_b": ["y"], "winner": ["tie"]})
    assert mode_of(plain).tolist() == ["text"]
    battles = pd.DataFrame({"mode": ["speech", None, np.nan, "", "text"]})
    assert mode_of(battles).tolist() == ["speech", "text", "text", "text", "text"]
    assert mode_counts(battles) == {"text": 4, "speech": 1}
    with pytest.raises(InvalidInputError, match=r"'mode' has 2 invalid.*row 1, value 'audio'"):
        mode_of(pd.DataFrame({"mode": ["text", "audio", "Speech"]}))


def test_each_mode_is_ranked_exactly_as_its_votes_alone() -> None:
    battles = _mixed()
    grouped = leaderboards_by_mode(battles, **OPTIONS)
    assert grouped["by"] == "mode"
    assert [(g["group"], g["n_battles"]) for g in grouped["groups"]] == [
        ("text", 600),
        ("speech", 400),
    ]
    for group in grouped["groups"]:
        alone = battles[battles["mode"] == group["group"]].reset_index(drop=True)
        assert group["leaderboard"] == build_leaderboard(alone, **OPTIONS).to_dict()
        assert group["leaderboard"]["mode"] == group["group"]
    # The simulated strengths are reversed between the modes, and each table shows it.
    text, speech = (g["leaderboard"]["models"] for g in grouped["groups"])
    assert [row["model"] for row in text] == ["x", "y", "z"]
    assert [row["model"] for row in speech] == ["z", "y", "x"]


def test_a_mode_without_votes_is_a_note() -> None:
    battles = simulate_battles(parse_strengths("3", seed=1), 200, seed=2)  # no mode: text
    text, speech = leaderboards_by_mode(battles, **OPTIONS)["groups"]
    assert text["n_battles"] == 200 and text["leaderboard"]["mode"] == "text"
    assert speech == {"group": "speech", "n_battles": 0, "leaderboard": None, "note": "no battles"}


def test_one_leaderboard_of_both_modes_is_refused_with_the_counts() -> None:
    battles = _mixed()
    with pytest.raises(InvalidInputError) as info:
        build_leaderboard(battles, **OPTIONS)
    message = str(info.value)
    assert "600 text-out and 400 speech-out" in message
    assert "--by mode" in message and "--mode text" in message
    with pytest.raises(InvalidInputError, match="600 text-out and 400 speech-out"):
        leaderboards_by_depth(battles, **OPTIONS)  # depths within pooled modes: refused too
    assert require_one_mode(select_mode(battles, "speech")) == "speech"
    assert require_one_mode(battles.iloc[:0]) == "text"


def test_depths_of_one_mode_after_selecting_it() -> None:
    battles = _mixed()
    battles["n_turns"] = [1 + index % 3 for index in range(len(battles))]
    speech = select_mode(battles, "speech")
    assert len(speech) == 400 and set(speech["mode"]) == {"speech"}
    grouped = leaderboards_by_depth(speech, **OPTIONS)
    assert sum(g["n_battles"] for g in grouped["groups"]) == 400
    assert all(g["leaderboard"]["mode"] == "speech" for g in grouped["groups"])


def test_unknown_grouping_and_mode_are_rejected() -> None:
    battles = _mixed(60, 40)
    with pytest.raises(InvalidInputError, match="mode or turns"):
        grouped_leaderboards(battles, "topic", **OPTIONS)
    with pytest.raises(InvalidInputError, match="text or speech"):
        select_mode(battles, "video")
    assert MODES == ("text", "speech")
