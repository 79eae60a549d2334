"""The arena's leaderboard document: one mode in the main table, per-mode and per-depth groups."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest
from sqlalchemy.orm import Session

from lamarena.analysis.ranking.leaderboard import build_leaderboard
from lamarena.arena.leaderboard import leaderboard_document
from lamarena.simulation import simulate_battles
from lamarena.store.bulk import insert_battle_records
from lamarena.store.records import records_from_frame

from .conftest import Harness

OPTIONS: dict[str, Any] = {"n_resamples": 40, "seed": 0, "min_battles": 1}
TEXT_STRENGTHS = {"alpha": 1100.0, "beta": 1000.0, "gamma": 900.0}
SPEECH_STRENGTHS = {"alpha": 900.0, "beta": 1000.0, "gamma": 1100.0}


def _mixed(n_text: int = 300, n_speech: int = 200) -> pd.DataFrame:
    text = simulate_battles(TEXT_STRENGTHS, n_text, seed=7).assign(mode="text")
    speech = simulate_battles(SPEECH_STRENGTHS, n_speech, seed=8).assign(mode="speech")
    return pd.concat([text, speech], ignore_index=True)


def test_votes_of_one_mode_and_one_depth_get_one_leaderboard_and_no_groups() -> None:
    frame = simulate_battles(TEXT_STRENGTHS, 200, seed=7)  # no mode column: text
    document = leaderboard_document(frame, **OPTIONS)
    assert document["by_mode"] is None and document["by_turns"] is None
    assert document["mode"] == "text"
    assert document["battles_by_mode"] == {"text": 200, "speech": 0}
    assert document["models"] == build_leaderboard(frame, **OPTIONS).to_dict()["models"]


def test_both_modes_are_ranked_apart_and_the_main_table_is_the_text_out_one() -> None:
    frame = _mixed()
    document = leaderboard_document(frame, **OPTIONS)
    assert document["battles_by_mode"] == {"text": 300, "speech": 200}
    assert document["mode"] == "text" and document["n_battles"] == 300
    groups = {group["group"]: group for group in document["by_mode"]["groups"]}
    for mode in ("text", "speech"):
        alone = frame[frame["mode"] == mode].reset_index(drop=True)
        assert groups[mode]["leaderboard"] == build_leaderboard(alone, **OPTIONS).to_dict()
    assert document["models"] == groups["text"]["leaderboard"]["models"]
    assert groups["speech"]["leaderboard"]["models"][0]["model"] == "gamma"
    assert document["by_turns"] is None  # every vote after one turn


def test_depths_are_grouped_within_the_main_mode_only() -> None:
    frame = _mixed()
    frame["n_turns"] = [1 + index % 3 for index in range(len(frame))]
    document = leaderboard_document(frame, **OPTIONS)
    by_turns = document["by_turns"]
    assert by_turns["by"] == "turns"
    assert sum(group["n_battles"] for group in by_turns["groups"]) == 300  # text-out votes
    assert all(group["leaderboard"]["mode"] == "text" for group in by_turns["groups"])
    speech = leaderboard_document(frame[frame["mode"] == "speech"], **OPTIONS)
    assert speech["mode"] == "speech" and speech["by_mode"] is None
    assert sum(group["n_battles"] for group in speech["by_turns"]["groups"]) == 200


def test_no_votes_is_an_empty_document() -> None:
    document = leaderboard_document(
        pd.DataFrame(columns=["model_a", "model_b", "winner"]), **OPTIONS
    )
    assert document["n_battles"] == 0 and document["models"] == []
    assert (document["by_mode"], document["by_turns"]) == (None, None)


@pytest.mark.parametrize("databases", ["sqlite"], indirect=True)
def test_the_api_ranks_stored_speech_out_votes_apart(harness: Harness) -> None:
    frame = _mixed(120, 80)
    records = [
        record.model_copy(update={"mode": mode})
        for record, mode in zip(records_from_frame(frame), frame["mode"], strict=True)
    ]
    with harness.engine.begin() as connection, Session(bind=connection) as session:
        insert_battle_records(session, records)
        session.commit()
    document = harness.client().get("/api/leaderboard").json()
    assert document["battles_by_mode"] == {"text": 120, "speech": 80}
    assert document["mode"] == "text" and document["n_battles"] == 120
    assert [(g["group"], g["n_battles"]) for g in document["by_mode"]["groups"]] == [
        ("text", 120),
        ("speech", 80),
    ]
