"""Leaderboards per conversation depth: each fitted on its own votes only."""

from __future__ import annotations

import numpy as np
import pandas as pd

from lamarena.analysis.ranking.by_depth import DEPTHS, depth_of, leaderboards_by_depth
from lamarena.analysis.ranking.leaderboard import build_leaderboard
from lamarena.simulation import parse_strengths, simulate_battles


def test_depth_groups_are_one_two_and_three_or_more() -> None:
    depths = depth_of(pd.Series([1, 2, 3, 7, None, 1.0]))
    assert depths.tolist() == ["1", "2", "3+", "3+", "1", "1"]


def test_each_depth_is_ranked_on_its_own_votes_only() -> None:
    battles = simulate_battles(parse_strengths("4", seed=1), 900, seed=2)
    rng = np.random.default_rng(3)
    battles["n_turns"] = rng.choice([1, 2, 3, 4], size=len(battles), p=[0.5, 0.3, 0.1, 0.1])
    options = {"n_resamples": 50, "seed": 0, "min_battles": 1}
    grouped = leaderboards_by_depth(battles, **options)
    assert grouped["by"] == "turns"
    assert [group["group"] for group in grouped["groups"]] == list(DEPTHS)
    counts = [group["n_battles"] for group in grouped["groups"]]
    assert counts == [
        int((battles["n_turns"] == 1).sum()),
        int((battles["n_turns"] == 2).sum()),
        int((battles["n_turns"] >= 3).sum()),
    ]
    deep = battles[battles["n_turns"] >= 3].reset_index(drop=True)
    independent = build_leaderboard(deep, **options).to_dict()
    assert grouped["groups"][2]["leaderboard"]["models"] == independent["models"]


def test_a_depth_without_votes_is_a_note_not_a_failure() -> None:
    battles = simulate_battles(parse_strengths("3", seed=1), 200, seed=2)  # no n_turns: 1 turn
    grouped = leaderboards_by_depth(battles, n_resamples=20, min_battles=1)
    one, two, more = grouped["groups"]
    assert one["n_battles"] == 200 and one["leaderboard"] is not None
    assert two == {"group": "2", "n_battles": 0, "leaderboard": None, "note": "no battles"}
    assert more["leaderboard"] is None
