"""The arena's leaderboard from the counts the store keeps: the same document as from the votes.

The refresher reads ``cluster_pair_counts`` (kept in each vote's transaction), not the votes. Its
document must equal :func:`leaderboard_document` of the stored battles read one by one, ordered
so that their clusters first appear in key order (counts number clusters by key), on SQLite and
PostgreSQL; votes drawn with unequal probabilities are read themselves, and weighted.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy.orm import Session, sessionmaker

from lamarena.arena import leaderboard as leaderboard_module
from lamarena.arena.leaderboard import FitOptions, fit_leaderboard, leaderboard_document
from lamarena.simulation import simulate_battles
from lamarena.store.bulk import insert_battle_records
from lamarena.store.records import records_from_frame
from lamarena.store.votes import load_battles_frame

OPTIONS = FitOptions(n_resamples=150, seed=2, min_battles=5)
STRENGTHS = {"alpha": 1120.0, "beta": 1000.0, "gamma": 940.0, "delta": 1060.0}


def _store(engine: Any, frame: pd.DataFrame) -> None:
    records = records_from_frame(frame)
    if "mode" in frame:
        modes = frame["mode"].fillna("text")
        records = [
            record.model_copy(update={"mode": mode})
            for record, mode in zip(records, modes, strict=True)
        ]
    with sessionmaker(engine).begin() as session:
        insert_battle_records(session, records)


def _in_cluster_order(frame: pd.DataFrame) -> pd.DataFrame:
    """The battles reordered so that their clusters first appear in sorted key order."""
    participant = frame["participant_id"].astype(object)
    session = frame["session_id"].astype(object)
    key = np.where(
        participant.notna(),
        "p:" + participant.astype(str),
        np.where(session.notna(), "s:" + session.astype(str), "b:" + frame["battle_id"]),
    )
    order = np.argsort(key, kind="stable")
    return frame.iloc[order].reset_index(drop=True)


def _document(engine: Any) -> dict[str, Any]:
    return fit_leaderboard(engine, sessionmaker(engine, class_=Session), OPTIONS).document


def _expected(engine: Any, frame: pd.DataFrame | None = None) -> dict[str, Any]:
    stored = _in_cluster_order(load_battles_frame(engine)) if frame is None else frame
    return leaderboard_document(
        stored,
        n_resamples=OPTIONS.n_resamples,
        seed=OPTIONS.seed,
        min_battles=OPTIONS.min_battles,
    )


def test_counts_give_the_document_of_the_votes(engine, monkeypatch):
    text = simulate_battles(STRENGTHS, 400, seed=3, votes_per_participant=8, participant_sd=0.4)
    speech = simulate_battles(STRENGTHS, 160, seed=4).assign(mode="speech")
    frame = pd.concat([text.assign(mode="text"), speech], ignore_index=True)
    _store(engine, frame)
    read_votes = []
    real = leaderboard_module.session_columns
    monkeypatch.setattr(
        leaderboard_module, "session_columns", lambda *a, **k: read_votes.append(1) or real(*a, **k)
    )
    document = _document(engine)
    assert read_votes == []  # uniform probabilities: the counts were enough
    assert document == _expected(engine)
    assert document["battles_by_mode"] == {"text": 400, "speech": 160}
    assert document["cluster"]["by"] == "participant"
    assert document["weighting"]["missing_probability"] == 0


def test_counts_of_several_depths_give_the_document_of_the_votes(engine):
    # rows come ordered by depth first: the clusters of one depth keep their key order
    frame = simulate_battles(STRENGTHS, 360, seed=8, votes_per_participant=6, participant_sd=0.3)
    records = records_from_frame(frame)
    # every vote of the even participants is deep: their clusters appear only among the
    # depth-2 rows, after every depth-1 row, yet come first in key order for some of them
    deep = {
        record.battle_id
        for record in records
        if int(str(record.participant_id).rsplit("-", 1)[1]) % 2 == 0
    }
    records = [
        record.model_copy(update={"turns": [record.turns[0], record.turns[0]]})
        if record.battle_id in deep
        else record
        for record in records
    ]
    # and a second mode, so the text-out votes are a subset of the rows
    speech = records_from_frame(simulate_battles(STRENGTHS, 90, seed=9), namespace="speech")
    records += [record.model_copy(update={"mode": "speech"}) for record in speech]
    with sessionmaker(engine).begin() as session:
        insert_battle_records(session, records)
    document = _document(engine)
    assert document["battles_by_mode"] == {"text": 360, "speech": 90}
    assert [group["n_battles"] for group in document["by_turns"]["groups"]] == [180, 180, 0]
    assert document == _expected(engine)


def test_unequal_probabilities_are_read_from_the_votes_and_weighted(engine):
    frame = simulate_battles(STRENGTHS, 500, seed=5, sampling="active", refresh_every=50)
    _store(engine, frame)
    document = _document(engine)
    assert document["weights"] == "ipw"
    assert document == _expected(engine, load_battles_frame(engine))


def test_a_flagged_vote_leaves_the_counts_and_the_document(engine):
    from lamarena.store import repo

    frame = simulate_battles(STRENGTHS, 200, seed=6)
    frame = frame.assign(battle_id=[f"b{i}" for i in range(len(frame))])
    _store(engine, frame)
    before = _document(engine)
    with sessionmaker(engine).begin() as session:
        repo.flag_battle(session, "b7", "self_identified")
    after = _document(engine)
    assert after["n_battles"] == before["n_battles"] - 1
    assert after == _expected(engine)
