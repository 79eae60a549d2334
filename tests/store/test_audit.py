"""``votes audit``: voter signals per session and per address, and the flags they raise."""

import json
from datetime import timedelta

import pytest

from lamarena.errors import DatabaseError
from lamarena.store.audit import (
    FAST_MEDIAN_S,
    FAST_MIN_VOTES,
    MANY_SESSIONS_PER_DAY,
    ONE_SIDED_MIN_VOTES,
    ONE_SIDED_SHARE,
    audit_votes,
)
from lamarena.store.db import make_sessionmaker
from lamarena.store.hashing import session_hash, store_salt
from lamarena.store.votes import load_battles_frame
from store.arena_rows import T0, ArenaRows

ADDRESS = "a1" * 32
OTHER = "b2" * 32


def _salt(engine) -> str:
    with make_sessionmaker(engine).begin() as session:
        return store_salt(session)


def _votes(rows, session_id, winners, seconds, **kwargs):
    return [
        rows.battle(session_id, winner=winner, seconds_after_replies=s, **kwargs)
        for winner, s in zip(winners, seconds, strict=True)
    ]


def _by_key(rows):
    return {row.key: row for row in rows}


def test_thresholds_are_the_documented_ones():
    assert (FAST_MEDIAN_S, FAST_MIN_VOTES) == (2.0, 5)
    assert (ONE_SIDED_SHARE, ONE_SIDED_MIN_VOTES) == (0.9, 10)
    assert MANY_SESSIONS_PER_DAY == 20


def test_fast_voters_are_flagged_from_five_timed_votes_under_two_seconds(engine):
    rows = ArenaRows(engine)
    fast, few, slow, timing_unknown = (rows.session() for _ in range(4))
    mixed = ["model_a", "model_b", "tie", "model_a", "model_b"]
    fast_ids = _votes(rows, fast, mixed, [0.5, 1.0, 1.9, 3.0, 0.2])  # median 1.0
    _votes(rows, few, mixed[:4], [0.5, 1.0, 1.0, 0.5])  # fast but only four votes
    _votes(rows, slow, mixed, [1.0, 2.0, 2.0, 2.5, 9.0])  # median exactly 2.0: not under
    _votes(rows, timing_unknown, mixed * 2, [None] * 10)

    audit = audit_votes(engine)
    salt = _salt(engine)
    sessions = _by_key(audit.sessions)
    assert sessions[session_hash(salt, fast)].flags == ("fast",)
    assert sessions[session_hash(salt, fast)].median_seconds_after_replies == 1.0
    assert sessions[session_hash(salt, few)].flags == ()
    assert sessions[session_hash(salt, slow)].flags == ()
    assert sessions[session_hash(salt, slow)].median_seconds_after_replies == 2.0
    assert sessions[session_hash(salt, timing_unknown)].median_seconds_after_replies is None
    assert audit.sessions[0].key == session_hash(salt, fast)  # flagged rows come first
    assert audit.flagged_battle_ids() == set(fast_ids)


def test_one_sided_voters_are_flagged_from_ten_votes_ninety_percent_one_side(engine):
    rows = ArenaRows(engine)
    one_sided, nine, balanced = rows.session(), rows.session(), rows.session()
    _votes(rows, one_sided, ["model_b"] * 9 + ["tie"], [5.0] * 10)  # 0.9 for B
    _votes(rows, nine, ["model_a"] * 9, [5.0] * 9)  # all A, but nine votes
    _votes(rows, balanced, ["model_a"] * 8 + ["model_b"] * 2, [5.0] * 10)  # 0.8

    salt = _salt(engine)
    sessions = _by_key(audit_votes(engine).sessions)
    row = sessions[session_hash(salt, one_sided)]
    assert (row.flags, row.side, row.side_share, row.votes) == (("one_sided",), "b", 0.9, 10)
    assert sessions[session_hash(salt, nine)].flags == ()
    assert sessions[session_hash(salt, nine)].side_share == 1.0
    assert sessions[session_hash(salt, balanced)].flags == ()
    assert sessions[session_hash(salt, balanced)].side == "a"


def test_an_address_with_more_than_twenty_sessions_in_a_day_is_flagged(engine):
    rows = ArenaRows(engine)
    many = []
    for number in range(MANY_SESSIONS_PER_DAY + 1):  # 21 sessions within 23 hours
        session_id = rows.session()
        at = T0 + timedelta(hours=number * 23 / MANY_SESSIONS_PER_DAY)
        many.append(rows.battle(session_id, client_hash=ADDRESS, created_at=at))
    spread = []
    for number in range(MANY_SESSIONS_PER_DAY + 1):  # 21 sessions, but never 21 in 24 hours
        session_id = rows.session()
        at = T0 + timedelta(hours=25 * (number % 2), minutes=number)
        spread.append(rows.battle(session_id, client_hash=OTHER, created_at=at))

    addresses = _by_key(audit_votes(engine).addresses)
    assert addresses[ADDRESS].flags == ("many_sessions",)
    assert addresses[ADDRESS].sessions_per_day == 21
    assert addresses[OTHER].flags == ()
    assert addresses[OTHER].sessions_per_day == 11
    assert addresses[ADDRESS].battles == 21
    assert audit_votes(engine).flagged_battle_ids() == set(many)


def test_address_rows_count_votes_cast_from_it_and_duplicate_audio(engine):
    rows = ArenaRows(engine)
    session_id = rows.session()
    rows.battle(session_id, client_hash=ADDRESS, vote_client_hash=OTHER, seconds_after_replies=4)
    rows.battle(session_id, client_hash=ADDRESS, flags=["duplicate_audio"], winner=None)
    rows.battle(
        session_id,
        client_hash=ADDRESS,
        vote_client_hash=ADDRESS,
        flags=["duplicate_audio", "self_identified"],
        winner="model_b",
        seconds_after_replies=6,
    )

    audit = audit_votes(engine)
    addresses = _by_key(audit.addresses)
    assert (addresses[ADDRESS].battles, addresses[ADDRESS].votes) == (3, 1)
    assert addresses[ADDRESS].duplicate_audio == 2
    assert addresses[ADDRESS].uncounted == 2
    assert addresses[ADDRESS].median_seconds_after_replies == 6
    assert (addresses[OTHER].battles, addresses[OTHER].votes) == (0, 1)
    (session_row,) = audit.sessions
    assert (session_row.battles, session_row.votes, session_row.duplicate_audio) == (3, 2, 2)
    assert session_row.median_seconds_after_replies == 5


def test_audit_document_never_shows_a_raw_session_id(engine):
    rows = ArenaRows(engine)
    arena_session = rows.session()
    _votes(
        rows,
        arena_session,
        ["model_a"] * 5,
        [0.1] * 5,
        client_hash=ADDRESS,
        vote_client_hash=ADDRESS,
    )
    rows.battle(rows.session("sim-7"), source="simulate")

    document = audit_votes(engine).to_dict()
    text = json.dumps(document)
    assert arena_session not in text
    assert [row["session"] for row in document["sessions"]] == [
        session_hash(_salt(engine), arena_session),
        "sim-7",  # not a cookie: shown as exported
    ]
    assert document["sessions"][0]["flags"] == ["fast"]
    assert document["flagged"] == {"sessions": 1, "addresses": 1, "votes": 5}
    assert document["thresholds"]["fast_median_s"] == 2.0
    assert set(document["addresses"][0]) == {
        "address",
        "votes",
        "battles",
        "median_seconds_after_replies",
        "side",
        "side_share",
        "duplicate_audio",
        "uncounted",
        "sessions_per_day",
        "flags",
    }


def test_exclude_flagged_drops_the_votes_of_flagged_sessions_and_addresses(engine):
    rows = ArenaRows(engine)
    fast = _votes(rows, rows.session(), ["model_a", "model_b"] * 3, [0.5] * 6)
    from_address = _votes(
        rows, rows.session(), ["model_b"] * 10, [5.0] * 10, vote_client_hash=ADDRESS
    )
    fine = _votes(rows, rows.session(), ["model_a", "model_b", "tie"], [5.0] * 3)
    uncounted = rows.battle(rows.session(), flags=["self_identified"])

    everything = load_battles_frame(engine, include_uncounted=True)
    assert len(everything) == 6 + 10 + 3 + 1
    counted = load_battles_frame(engine)
    assert uncounted not in set(counted["battle_id"]) and len(counted) == 19
    kept = load_battles_frame(engine, exclude_flagged=True)
    assert list(kept["battle_id"]) == fine
    assert list(kept.index) == [0, 1, 2]
    assert set(fast + from_address).isdisjoint(kept["battle_id"])


def test_audit_of_a_database_without_the_schema_is_a_database_error(databases):
    engine = databases.engine(migrated=False)
    with pytest.raises(DatabaseError, match="auditing the votes failed"):
        audit_votes(engine)
