"""Vote counts kept as votes arrive: repo, flags, turns, imports, migration 0007, workers, check."""

from __future__ import annotations

import multiprocessing
import sqlite3
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest
from alembic import command
from sqlalchemy import Engine, func, insert, select

from lamarena.analysis.ranking.clusters import battle_clusters
from lamarena.errors import AlreadyVoted, DatabaseError
from lamarena.store import repo
from lamarena.store.db import alembic_config, make_engine, make_sessionmaker, migrate_to_head
from lamarena.store.exporters import write_battle_records
from lamarena.store.records import BattleRecord, TurnRecord
from lamarena.store.tables import Battle, ClusterPairCount, PairCount, Participant, Turn, Vote
from lamarena.store.tables import Session as SessionRow
from lamarena.store.vote_counts import (
    CLUSTER_COLUMNS,
    CLUSTER_KEY,
    OUTCOMES,
    PAIR_COLUMNS,
    PAIR_KEY,
    cluster_of,
)
from lamarena.store.vote_counts_check import check_counts, recount
from lamarena.store.vote_counts_read import read_cluster_pair_counts, read_pair_counts
from lamarena.store.votes import import_votes

WHEN = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
# Python orders "Zeta" before "alpha" (upper case first); a database collation may not.
ZETA, ALPHA, BETA = "Zeta", "alpha", "beta"


# -- helpers ------------------------------------------------------------------------------------


def _battle(
    db,
    *,
    model_a: str,
    model_b: str,
    winner: str | None,
    session_id: str | None = None,
    probability: float | None = None,
    mode: str = "text",
    turns: int = 1,
    flags: tuple[str, ...] = (),
) -> str:
    battle_id = repo.create_battle(
        db,
        model_a=model_a,
        model_b=model_b,
        session_id=session_id,
        sampling_probability=probability,
        mode=mode,
        flags=flags,
        created_at=WHEN,
    )
    for number in range(2, turns + 1):
        repo.add_turn(db, battle_id, number, created_at=WHEN)
    if winner is not None:
        repo.record_vote(db, battle_id, winner, created_at=WHEN)
    return battle_id


def _cast_scenario(engine: Engine) -> dict[str, str]:
    """The votes of the hand-checked scenario, each in its own transaction; the battle ids."""
    ids: dict[str, str] = {}
    factory = make_sessionmaker(engine)
    with factory.begin() as db:
        ids["session_p"] = repo.create_session(db, participant_id="p-1", created_at=WHEN)
        ids["session_s"] = repo.create_session(db, created_at=WHEN)
    plan: list[tuple[str, dict[str, Any]]] = [
        # participant p-1: alpha (A) vs Zeta (B); Zeta is the pair's first model
        ("p_a", {"model_a": ALPHA, "model_b": ZETA, "winner": "model_a", "probability": 0.5}),
        ("p_b", {"model_a": ALPHA, "model_b": ZETA, "winner": "model_b", "probability": 0.25}),
        ("p_tie", {"model_a": ALPHA, "model_b": ZETA, "winner": "tie"}),
        # a session without a participant: beta (A) vs alpha (B)
        ("s_a", {"model_a": BETA, "model_b": ALPHA, "winner": "model_a", "probability": 0.1}),
        (
            "s_bad",
            {
                "model_a": BETA,
                "model_b": ALPHA,
                "winner": "both_bad",
                "probability": 0.2,
                "turns": 2,
            },
        ),
        # no session: a spoken battle
        ("speech", {"model_a": ALPHA, "model_b": BETA, "winner": "model_b", "mode": "speech"}),
        # flagged before its vote, and one nobody voted on: neither counts
        ("flagged", {"model_a": ALPHA, "model_b": ZETA, "winner": "model_a", "flags": ("x",)}),
        ("unvoted", {"model_a": ALPHA, "model_b": ZETA, "winner": None}),
    ]
    for name, spec in plan:
        session_id = {"p": ids["session_p"], "s": ids["session_s"]}.get(name.split("_")[0])
        if name == "flagged":
            session_id = ids["session_p"]
        with factory.begin() as db:
            ids[name] = _battle(db, session_id=session_id, **spec)
    return ids


def _pair_rows(frame: pd.DataFrame) -> dict[tuple, tuple]:
    return {
        tuple(row[name] for name in PAIR_KEY): tuple(int(row[name]) for name in OUTCOMES)
        for _, row in frame.iterrows()
    }


def _cluster_rows(frame: pd.DataFrame) -> dict[tuple, dict[str, Any]]:
    rows = {}
    for _, row in frame.iterrows():
        values = {name: row[name] for name in CLUSTER_COLUMNS[len(CLUSTER_KEY) :]}
        for name in ("min_probability", "max_probability"):
            values[name] = None if pd.isna(values[name]) else float(values[name])
        rows[tuple(row[name] for name in CLUSTER_KEY)] = values
    return rows


def _assert_stored_equals_recount(engine: Engine) -> None:
    with make_sessionmaker(engine).begin() as db:
        counted = recount(db)
        pairs, clusters = read_pair_counts(db), read_cluster_pair_counts(db)
    pd.testing.assert_frame_equal(pairs, counted.pairs)
    pd.testing.assert_frame_equal(clusters, counted.clusters, check_exact=False, rtol=1e-9)
    assert check_counts(engine).drift == []


def _expected_from_votes(engine: Engine) -> tuple[dict[tuple, list[int]], dict[tuple, list[int]]]:
    """Pair and cluster counts computed plainly from the stored votes (not the module's code)."""
    later = select(func.count()).where(Turn.battle_id == Battle.id).scalar_subquery()
    with engine.connect() as connection:
        rows = connection.execute(
            select(
                Battle.id,
                Battle.mode,
                Battle.model_a,
                Battle.model_b,
                Battle.session_id,
                Battle.participant_id,
                Vote.winner,
                (1 + later).label("n_turns"),
            )
            .join(Vote, Vote.battle_id == Battle.id)
            .where(Battle.counted)
        ).all()
    pairs: dict[tuple, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    clusters: dict[tuple, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for row in rows:
        first, second = sorted((row.model_a, row.model_b))
        won = {"model_a": row.model_a, "model_b": row.model_b}.get(row.winner)
        index = {first: 0, second: 1}.get(won, 2 if row.winner == "tie" else 3)
        pairs[(row.mode, row.n_turns, first, second)][index] += 1
        cluster = cluster_of(row.participant_id, row.session_id, row.id)
        clusters[(row.mode, row.n_turns, cluster, first, second)][index] += 1
    return dict(pairs), dict(clusters)


def _stored_counts(engine: Engine) -> tuple[dict[tuple, list[int]], dict[tuple, list[int]]]:
    pairs = {key: list(value) for key, value in _pair_rows(read_pair_counts(engine)).items()}
    clusters = {
        key: [int(values[name]) for name in OUTCOMES]
        for key, values in _cluster_rows(read_cluster_pair_counts(engine)).items()
    }
    return pairs, clusters


def _upgrade_to(engine: Engine, revision: str) -> None:
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


# -- votes through the repository ---------------------------------------------------------------


def test_votes_recorded_through_the_repo_are_counted(engine):
    ids = _cast_scenario(engine)

    pairs = _pair_rows(read_pair_counts(engine))
    assert pairs == {
        ("speech", 1, ALPHA, BETA): (0, 1, 0, 0),
        ("text", 1, ZETA, ALPHA): (1, 1, 1, 0),  # Zeta won p_b, alpha won p_a, one tie
        ("text", 1, ALPHA, BETA): (0, 1, 0, 0),
        ("text", 2, ALPHA, BETA): (0, 0, 0, 1),
    }
    clusters = _cluster_rows(read_cluster_pair_counts(engine))
    assert set(clusters) == {
        ("speech", 1, f"b:{ids['speech']}", ALPHA, BETA),
        ("text", 1, "p:p-1", ZETA, ALPHA),
        ("text", 1, f"s:{ids['session_s']}", ALPHA, BETA),
        ("text", 2, f"s:{ids['session_s']}", ALPHA, BETA),
    }
    participant = clusters[("text", 1, "p:p-1", ZETA, ALPHA)]
    assert participant == {
        "first_wins": 1,
        "second_wins": 1,
        "ties": 1,
        "both_bad": 0,
        "first_wins_ipw": pytest.approx(4.0),  # 1 / 0.25
        "second_wins_ipw": pytest.approx(2.0),  # 1 / 0.5
        "ties_ipw": 0.0,
        "both_bad_ipw": 0.0,
        "missing_probability": 1,
        "min_probability": 0.25,
        "max_probability": 0.5,
    }
    two_turns = clusters[("text", 2, f"s:{ids['session_s']}", ALPHA, BETA)]
    assert two_turns["both_bad"] == 1
    assert two_turns["both_bad_ipw"] == pytest.approx(5.0)
    speech = clusters[("speech", 1, f"b:{ids['speech']}", ALPHA, BETA)]
    assert (speech["missing_probability"], speech["min_probability"]) == (1, None)
    _assert_stored_equals_recount(engine)
    assert _stored_counts(engine) == _expected_from_votes(engine)


def test_counts_read_as_typed_columns_filtered_by_mode(engine):
    _cast_scenario(engine)
    with make_sessionmaker(engine).begin() as db:
        speech = read_pair_counts(db, mode="speech")
        clusters = read_cluster_pair_counts(db, mode="text")
    assert list(speech.columns) == list(PAIR_COLUMNS)
    assert speech[["model_first", "model_second", "second_wins"]].values.tolist() == [
        [ALPHA, BETA, 1]
    ]
    assert list(clusters.columns) == list(CLUSTER_COLUMNS)
    assert set(clusters["mode"]) == {"text"}
    assert clusters["first_wins"].dtype == np.int64
    assert clusters["min_probability"].dtype == np.float64
    empty = read_cluster_pair_counts(engine, mode="nothing")
    assert empty.empty and list(empty.columns) == list(CLUSTER_COLUMNS)
    assert empty["ties"].dtype == np.int64


def test_clusters_group_battles_as_the_analysis_auto_clusters(engine):
    _cast_scenario(engine)
    with make_sessionmaker(engine).begin() as db:
        frame = repo.battles_frame(db)
        raw = dict(db.execute(select(Battle.id, Battle.session_id)).all())
    participants = [value if isinstance(value, str) else None for value in frame["participant_id"]]
    ours = [
        cluster_of(participant, raw[battle], battle)
        for battle, participant in zip(frame["battle_id"], participants, strict=True)
    ]
    assert sorted(key[:2] for key in set(ours)) == ["b:", "p:", "s:"]
    labels = battle_clusters(frame, "auto").labels
    # the same partition of the battles: each of our clusters is exactly one of theirs
    assert len(set(ours)) == len(set(labels)) == len(set(zip(ours, labels, strict=True)))


# -- changes to voted battles -------------------------------------------------------------------


def test_flagging_a_voted_battle_takes_its_vote_out(engine):
    ids = _cast_scenario(engine)
    factory = make_sessionmaker(engine)

    with factory.begin() as db:
        repo.flag_battle(db, ids["p_a"], "self_identified")  # its probability was the largest
    participant = _cluster_rows(read_cluster_pair_counts(engine))[("text", 1, "p:p-1", ZETA, ALPHA)]
    assert (participant["second_wins"], participant["second_wins_ipw"]) == (0, 0.0)
    assert (participant["min_probability"], participant["max_probability"]) == (0.25, 0.25)
    assert _pair_rows(read_pair_counts(engine))[("text", 1, ZETA, ALPHA)] == (1, 0, 1, 0)

    with factory.begin() as db:
        repo.flag_battle(db, ids["speech"], "duplicate_audio")  # the only vote of its rows
        repo.flag_battle(db, ids["flagged"], "duplicate_audio")  # never counted
        repo.flag_battle(db, ids["unvoted"], "duplicate_audio")  # no vote
    assert ("speech", 1, ALPHA, BETA) not in _pair_rows(read_pair_counts(engine))
    assert set(read_cluster_pair_counts(engine)["mode"]) == {"text"}
    assert _pair_rows(read_pair_counts(engine))[("text", 1, ZETA, ALPHA)] == (1, 0, 1, 0)
    _assert_stored_equals_recount(engine)


def test_a_vote_on_a_flagged_battle_is_not_counted(engine):
    factory = make_sessionmaker(engine)
    with factory.begin() as db:
        battle_id = _battle(db, model_a=ALPHA, model_b=BETA, winner=None)
        repo.flag_battle(db, battle_id, "self_identified")
    with factory.begin() as db:
        repo.record_vote(db, battle_id, "model_a")
    assert read_pair_counts(engine).empty and read_cluster_pair_counts(engine).empty
    assert check_counts(engine).drift == []


def test_a_turn_added_after_the_vote_moves_its_count(engine):
    ids = _cast_scenario(engine)
    with make_sessionmaker(engine).begin() as db:
        repo.add_turn(db, ids["speech"], 2, created_at=WHEN)
    pairs = _pair_rows(read_pair_counts(engine))
    assert ("speech", 1, ALPHA, BETA) not in pairs
    assert pairs[("speech", 2, ALPHA, BETA)] == (0, 1, 0, 0)
    _assert_stored_equals_recount(engine)


def test_a_refused_vote_changes_no_count(engine):
    ids = _cast_scenario(engine)
    before = read_cluster_pair_counts(engine)
    with make_sessionmaker(engine).begin() as db, pytest.raises(AlreadyVoted):
        repo.record_vote(db, ids["p_a"], "model_b")
    pd.testing.assert_frame_equal(read_cluster_pair_counts(engine), before)


# -- imports ------------------------------------------------------------------------------------


def _record(number: int, **fields: Any) -> BattleRecord:
    base: dict[str, Any] = {
        "battle_id": f"imported-{number}",
        "created_at": WHEN + timedelta(minutes=number),
        "model_a": ALPHA,
        "model_b": ZETA,
        "winner": "model_a",
    }
    return BattleRecord(**(base | fields))


def test_an_import_adds_its_counted_votes_to_the_stored_ones(engine, tmp_path):
    _cast_scenario(engine)
    records = [
        _record(1, session_id="lab-1", participant_id="p-1", sampling_probability=0.125),
        _record(2, session_id="lab-1", participant_id="p-1", winner="model_b"),
        _record(3, session_id="lab-2", model_a=BETA, model_b=ALPHA, winner="tie"),
        _record(4, counted=False, flags=["self_identified"]),
        _record(
            5,
            winner="model_b",
            mode="speech",
            turns=[TurnRecord(query_transcript="one"), TurnRecord(query_transcript="two")],
        ),
    ]
    path = tmp_path / "votes.jsonl"
    write_battle_records(records, path)

    assert import_votes(engine, path, "jsonl") == 5

    pairs = _pair_rows(read_pair_counts(engine))
    assert pairs[("text", 1, ZETA, ALPHA)] == (2, 2, 1, 0)  # scenario (1, 1, 1, 0) + 1, 2
    assert pairs[("text", 1, ALPHA, BETA)] == (0, 1, 1, 0)
    assert pairs[("speech", 2, ZETA, ALPHA)] == (1, 0, 0, 0)
    participant = _cluster_rows(read_cluster_pair_counts(engine))[("text", 1, "p:p-1", ZETA, ALPHA)]
    assert participant["second_wins_ipw"] == pytest.approx(2.0 + 8.0)
    assert participant["min_probability"] == 0.125
    assert participant["missing_probability"] == 2
    _assert_stored_equals_recount(engine)
    assert _stored_counts(engine) == _expected_from_votes(engine)


# -- migration 0007 -----------------------------------------------------------------------------


def _insert_0006_votes(engine: Engine) -> None:
    """Votes as a 0006 server stored them, before the counts existed."""
    battles = [
        # id, session, participant, model_a, model_b, winner, counted, probability, mode, turns
        ("m1", "s1", "p-1", ALPHA, ZETA, "model_a", True, 0.5, "text", 1),
        ("m2", "s1", "p-1", ZETA, ALPHA, "model_a", True, 0.25, "text", 1),
        ("m3", "s2", None, BETA, ALPHA, "tie", True, None, "text", 3),
        ("m4", None, None, ALPHA, BETA, "both_bad", True, None, "speech", 1),
        ("m5", "s2", None, BETA, ALPHA, "model_b", False, 0.5, "text", 1),
        ("m6", "s2", None, BETA, ALPHA, None, True, 0.5, "text", 1),
    ]
    with engine.begin() as connection:
        connection.execute(insert(Participant).values(id="p-1", created_at=WHEN))
        connection.execute(
            insert(SessionRow),
            [
                {"id": "s1", "participant_id": "p-1", "created_at": WHEN},
                {"id": "s2", "participant_id": None, "created_at": WHEN},
            ],
        )
        for battle_id, session, participant, a, b, winner, counted, p, mode, turns in battles:
            connection.execute(
                insert(Battle).values(
                    id=battle_id,
                    session_id=session,
                    participant_id=participant,
                    created_at=WHEN,
                    model_a=a,
                    model_b=b,
                    source="arena",
                    counted=counted,
                    sampling_probability=p,
                    mode=mode,
                )
            )
            for number in range(2, turns + 1):
                connection.execute(
                    insert(Turn).values(battle_id=battle_id, turn=number, created_at=WHEN)
                )
            if winner is not None:
                connection.execute(
                    insert(Vote).values(battle_id=battle_id, winner=winner, created_at=WHEN)
                )


def test_migration_0007_counts_the_votes_stored_before_it(databases):
    engine = databases.engine(migrated=False)
    _upgrade_to(engine, "0006")
    _insert_0006_votes(engine)

    migrate_to_head(engine)

    assert _pair_rows(read_pair_counts(engine)) == {
        ("speech", 1, ALPHA, BETA): (0, 0, 0, 1),
        ("text", 1, ZETA, ALPHA): (1, 1, 0, 0),  # m1: alpha (second) won; m2: Zeta (first) won
        ("text", 3, ALPHA, BETA): (0, 0, 1, 0),
    }
    clusters = _cluster_rows(read_cluster_pair_counts(engine))
    participant = clusters[("text", 1, "p:p-1", ZETA, ALPHA)]
    assert (participant["first_wins_ipw"], participant["second_wins_ipw"]) == (4.0, 2.0)
    assert (participant["min_probability"], participant["max_probability"]) == (0.25, 0.5)
    assert clusters[("text", 3, "s:s2", ALPHA, BETA)]["missing_probability"] == 1
    assert ("speech", 1, "b:m4", ALPHA, BETA) in clusters
    _assert_stored_equals_recount(engine)

    with make_sessionmaker(engine).begin() as db:  # and kept from then on
        repo.record_vote(db, "m6", "model_a")
    assert _pair_rows(read_pair_counts(engine))[("text", 1, ALPHA, BETA)] == (0, 1, 0, 0)
    _assert_stored_equals_recount(engine)


def test_migration_0007_downgrades_and_upgrades_again(databases):
    engine = databases.engine(migrated=False)
    _upgrade_to(engine, "0006")
    _insert_0006_votes(engine)
    migrate_to_head(engine)
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0006")
        assert connection.scalar(select(func.count()).select_from(Vote)) == 5
    migrate_to_head(engine)
    _assert_stored_equals_recount(engine)


# -- concurrent workers -------------------------------------------------------------------------

_WORKERS = 3
_VOTES_PER_WORKER = 60
_CLUSTERS = ("p:w-0", "p:w-1", "s")
_WINNERS = ("model_a", "model_b", "tie", "both_bad")


def _vote_worker(url: str, votes: list[tuple[str, str]], start: Any) -> None:
    """Cast ``votes`` (battle id, winner), one transaction each, once ``start`` is set."""
    engine = make_engine(url)
    try:
        factory = make_sessionmaker(engine)
        start.wait(60)
        for battle_id, winner in votes:
            with factory.begin() as db:
                repo.record_vote(db, battle_id, winner)
    finally:
        engine.dispose()


def _flag_worker(url: str, battle_ids: list[str], start: Any) -> None:
    """Flag ``battle_ids`` one at a time while the votes on them arrive."""
    engine = make_engine(url)
    try:
        factory = make_sessionmaker(engine)
        start.wait(60)
        for battle_id in battle_ids:
            with factory.begin() as db:
                repo.flag_battle(db, battle_id, "duplicate_audio")
    finally:
        engine.dispose()


def _open_battles(engine: Engine) -> list[str]:
    """Battles on two pairs in three clusters, probabilities mixed, for the workers to vote on."""
    ids = []
    with make_sessionmaker(engine).begin() as db:
        sessions = [
            repo.create_session(db, participant_id="w-0", created_at=WHEN),
            repo.create_session(db, participant_id="w-1", created_at=WHEN),
            repo.create_session(db, created_at=WHEN),
        ]
        for number in range(_WORKERS * _VOTES_PER_WORKER):
            pair = (ALPHA, ZETA) if number % 2 else (ZETA, BETA)
            ids.append(
                repo.create_battle(
                    db,
                    model_a=pair[0],
                    model_b=pair[1],
                    session_id=sessions[number % 3],
                    sampling_probability=None if number % 5 == 0 else 0.1 + (number % 7) / 10,
                    created_at=WHEN,
                )
            )
    return ids


def test_concurrent_workers_lose_no_increment(databases):
    engine = databases.engine()
    url = engine.url.render_as_string(hide_password=False)
    ids = _open_battles(engine)
    flagged = ids[::9]
    context = multiprocessing.get_context("spawn")
    start = context.Event()
    workers = [
        context.Process(
            target=_vote_worker,
            args=(
                url,
                [(battle, _WINNERS[i % 4]) for i, battle in enumerate(ids) if i % _WORKERS == w],
                start,
            ),
        )
        for w in range(_WORKERS)
    ]
    workers.append(context.Process(target=_flag_worker, args=(url, flagged, start)))
    for worker in workers:
        worker.start()
    start.set()
    for worker in workers:
        worker.join(240)
    assert [worker.exitcode for worker in workers] == [0] * len(workers)

    pairs, clusters = _stored_counts(engine)
    counted = len(ids) - len(flagged)
    assert sum(sum(counts) for counts in pairs.values()) == counted
    assert sum(sum(counts) for counts in clusters.values()) == counted
    assert {key[2].split(":")[0] for key in clusters} == {"p", "s"}
    assert (pairs, clusters) == _expected_from_votes(engine)
    _assert_stored_equals_recount(engine)


def _race_worker(url: str, role: str, battle_ids: list[str], barrier: Any) -> None:
    """Meet the other racers at ``barrier`` before each battle, then vote, flag or add a turn."""
    engine = make_engine(url)
    try:
        factory = make_sessionmaker(engine)
        for number, battle_id in enumerate(battle_ids):
            barrier.wait(60)
            with factory.begin() as db:
                if role == "vote":
                    repo.record_vote(db, battle_id, _WINNERS[number % 4])
                elif role == "flag" and number % 2 == 0:
                    repo.flag_battle(db, battle_id, "self_identified")
                elif role == "turn":
                    repo.add_turn(db, battle_id, 2, created_at=WHEN)
    finally:
        engine.dispose()


def test_a_vote_racing_a_flag_and_a_turn_on_its_battle_is_counted_once_where_it_belongs(
    databases,
):
    engine = databases.engine()
    url = engine.url.render_as_string(hide_password=False)
    ids = _open_battles(engine)[:40]
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(3)
    racers = [
        context.Process(target=_race_worker, args=(url, role, ids, barrier))
        for role in ("vote", "flag", "turn")
    ]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join(240)
    assert [racer.exitcode for racer in racers] == [0, 0, 0]

    pairs, clusters = _stored_counts(engine)
    assert sum(sum(counts) for counts in pairs.values()) == len(ids) // 2  # the unflagged half
    assert {key[1] for key in pairs} == {2}  # every battle got its second turn
    assert (pairs, clusters) == _expected_from_votes(engine)
    _assert_stored_equals_recount(engine)


# -- checking and repairing ---------------------------------------------------------------------


def test_check_counts_reports_drift_and_repair_rewrites_the_rows(engine):
    ids = _cast_scenario(engine)
    clean = check_counts(engine)
    assert (clean.rows_checked, clean.drift, clean.repaired) == (8, [], False)
    with engine.begin() as connection:
        connection.execute(
            PairCount.__table__.update()
            .where(PairCount.mode == "speech")
            .values(second_wins=PairCount.second_wins + 5)
        )
        connection.execute(
            ClusterPairCount.__table__.update()
            .where(ClusterPairCount.cluster == "p:p-1")
            .values(max_probability=0.75)
        )
        connection.execute(
            ClusterPairCount.__table__.delete().where(
                ClusterPairCount.cluster == f"b:{ids['speech']}"
            )
        )

    found = check_counts(engine)

    assert found.repaired is False
    assert found.rows_checked == 8
    by_table = {(entry["table"], entry["key"].get("cluster")): entry for entry in found.drift}
    assert set(by_table) == {
        ("pair_counts", None),
        ("cluster_pair_counts", "p:p-1"),
        ("cluster_pair_counts", f"b:{ids['speech']}"),
    }
    pair = by_table[("pair_counts", None)]
    assert pair["key"] == {
        "mode": "speech",
        "n_turns": 1,
        "model_first": ALPHA,
        "model_second": BETA,
    }
    assert (pair["stored"]["second_wins"], pair["recounted"]["second_wins"]) == (6, 1)
    assert by_table[("cluster_pair_counts", "p:p-1")]["stored"]["max_probability"] == 0.75
    assert by_table[("cluster_pair_counts", f"b:{ids['speech']}")]["stored"] is None
    assert found.to_dict()["drift"] == found.drift
    assert _pair_rows(read_pair_counts(engine))[("speech", 1, ALPHA, BETA)] == (0, 6, 0, 0)

    repaired = check_counts(engine, repair=True)

    assert repaired.repaired is True and len(repaired.drift) == 3
    _assert_stored_equals_recount(engine)
    assert check_counts(engine, repair=True).repaired is False  # nothing left to repair


def test_a_zero_row_is_no_drift_and_a_stray_row_is(engine):
    _cast_scenario(engine)
    with engine.begin() as connection:
        connection.execute(
            PairCount.__table__.insert().values(
                mode="text", n_turns=4, model_first=ALPHA, model_second=BETA
            )
        )
    assert check_counts(engine).drift == []
    with engine.begin() as connection:
        connection.execute(
            PairCount.__table__.update().where(PairCount.n_turns == 4).values(ties=2)
        )
    drift = check_counts(engine).drift
    assert [(entry["key"]["n_turns"], entry["recounted"]) for entry in drift] == [(4, None)]


def test_check_counts_on_an_unreachable_database_is_a_database_error():
    engine = make_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")
    try:
        with pytest.raises(DatabaseError, match="cannot connect"):
            check_counts(engine)
        with pytest.raises(DatabaseError, match="cannot connect"):
            read_pair_counts(engine)
    finally:
        engine.dispose()


# -- reading at scale ---------------------------------------------------------------------------


@pytest.fixture
def sqlite_engine(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'counts.db'}")
    migrate_to_head(engine)
    try:
        yield engine
    finally:
        engine.dispose()


def test_three_hundred_thousand_cluster_rows_are_read_as_columns_in_one_select(sqlite_engine):
    engine = sqlite_engine
    models = [f"model-{number:03d}" for number in range(25)]
    pairs = [(a, b) for i, a in enumerate(models) for b in models[i + 1 :]]  # 300 pairs
    rows = [
        {
            "mode": "text",
            "n_turns": 1,
            "cluster": f"p:participant-{cluster:04d}",
            "model_first": a,
            "model_second": b,
            "first_wins": 1,
            "second_wins": 2,
            "ties": 0,
            "both_bad": 0,
            "first_wins_ipw": 3.0,
            "second_wins_ipw": 6.0,
            "ties_ipw": 0.0,
            "both_bad_ipw": 0.0,
            "missing_probability": 0,
            "min_probability": 1 / 3,
            "max_probability": None,
        }
        for cluster in range(1_000)
        for a, b in pairs
    ]
    with engine.begin() as connection:
        connection.execute(ClusterPairCount.__table__.insert(), rows)
    read_cluster_pair_counts(engine)  # warm the connection and the page cache

    def times(**options: Any) -> tuple[float, pd.DataFrame]:
        started = time.perf_counter()
        frame = read_cluster_pair_counts(engine, **options)
        return time.perf_counter() - started, frame

    whole, frame = min((times() for _ in range(3)), key=lambda timed: timed[0])
    counts, counts_frame = min(
        (times(columns=OUTCOMES) for _ in range(3)), key=lambda timed: timed[0]
    )
    floor = _driver_fetch_s(
        engine, "SELECT * FROM cluster_pair_counts ORDER BY " + ", ".join(CLUSTER_KEY)
    )

    assert len(frame) == 300_000
    assert int(frame["second_wins"].sum()) == 600_000
    assert frame["max_probability"].isna().all()
    assert list(counts_frame.columns) == [*CLUSTER_KEY, *OUTCOMES]
    # sqlite3 makes one Python object per value: all 16 columns take about 0.6 s in its
    # fetchall alone on a 2-core VM, and the frame about 0.3 s more (ORM rows: several seconds)
    assert whole < 1.8 * floor + 0.1, f"{whole:.2f} s, the driver's fetchall {floor:.2f} s"
    assert counts < 1.0, f"{counts:.2f} s"  # keys and counts, what a bootstrap reads


def _driver_fetch_s(engine: Engine, sql: str) -> float:
    """The fastest of three ``fetchall`` of ``sql`` straight through sqlite3."""
    connection = sqlite3.connect(str(engine.url.database))
    try:
        best = float("inf")
        for _ in range(3):
            started = time.perf_counter()
            connection.execute(sql).fetchall()
            best = min(best, time.perf_counter() - started)
        return best
    finally:
        connection.close()
