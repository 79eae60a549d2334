import re
from datetime import UTC, datetime, timedelta, timezone

import pandas as pd
import pytest
from sqlalchemy import select

from lamarena.errors import AlreadyVoted, InvalidInputError, NotFound
from lamarena.store import repo
from lamarena.store.db import make_sessionmaker
from lamarena.store.hashing import exported_session_id, session_hash, store_salt
from lamarena.store.records import BattleRecord, Latency, Winner, records_to_frame
from lamarena.store.tables import Battle, Vote

T0 = datetime(2025, 5, 1, 9, 30, 0, 123456, tzinfo=UTC)


def _record(number: int, **overrides) -> BattleRecord:
    fields = {
        "battle_id": f"battle-{number}",
        "created_at": T0 + timedelta(minutes=number),
        "session_id": "session-1",
        "participant_id": "prolific-abc",
        "model_a": "gpt4o",
        "model_b": "qwen2-audio",
        "winner": Winner.MODEL_A,
        "query_audio_sha256": "ab" * 32,
        "query_transcript": f"question {number}",
        "reply_a": "answer a",
        "reply_b": "answer b",
        "latency_a": Latency(ttft_s=0.5, total_s=1.25, chars=8),
        "latency_b": Latency(ttft_s=0.75, total_s=2.0, chars=8),
        "feedback_text": "a was clearer",
        "audio_kept": True,
    }
    fields.update(overrides)
    return BattleRecord(**fields)


def test_inserted_records_load_back_equal(engine):
    records = [
        _record(1),
        _record(2, winner=Winner.BOTH_BAD, latency_b=None, reply_b=None, error_b="timeout"),
        _record(3, session_id=None, participant_id=None, audio_kept=False, reply_a=""),
    ]
    with make_sessionmaker(engine).begin() as session:
        assert repo.insert_battle_records(session, records) == 3

    with make_sessionmaker(engine).begin() as session:
        loaded = repo.load_battle_records(session)
        counts = repo.table_counts(session)
        hashed = session_hash(store_salt(session), "session-1")

    # an arena session leaves the store as its salted hash, everything else as inserted
    assert loaded == [
        record.model_copy(update={"session_id": hashed}) if record.session_id else record
        for record in records
    ]
    assert loaded[1].latency_b is None and loaded[1].error_b == "timeout"
    assert loaded[2].reply_a == "" and loaded[2].reply_b == "answer b"
    assert counts == {"participants": 1, "sessions": 1, "battles": 3, "replies": 6, "votes": 3}


def test_timestamps_read_back_utc_aware(engine):
    offset = timezone(timedelta(hours=-7))
    record = _record(1, created_at=datetime(2025, 5, 1, 2, 0, 0, 7, tzinfo=offset))
    with make_sessionmaker(engine).begin() as session:
        repo.insert_battle_records(session, [record])
    with make_sessionmaker(engine).begin() as session:
        created = session.scalar(select(Battle.created_at))
        voted = session.scalar(select(Vote.created_at))
    assert created == datetime(2025, 5, 1, 9, 0, 0, 7, tzinfo=UTC)
    assert created.utcoffset() == timedelta(0) and voted.utcoffset() == timedelta(0)


def test_arena_flow_creates_battle_replies_and_vote(engine):
    factory = make_sessionmaker(engine)
    with factory.begin() as session:
        session_id = repo.create_session(
            session, participant_id="prolific-xyz", consent_keep_audio=True
        )
        battle_id = repo.create_battle(
            session,
            model_a="gpt4o",
            model_b="gemini",
            session_id=session_id,
            query_audio_sha256="cd" * 32,
            kept_audio_path="audio/x.flac",
        )
        repo.add_reply(session, battle_id, "a", text="hi", ttft_s=0.1, total_s=0.9, chars=2)
        repo.add_reply(session, battle_id, "b", error="model 'gemini': timed out")
        repo.record_vote(session, battle_id, "tie", feedback_text="meh", session_id=session_id)

    with factory.begin() as session:
        (record,) = repo.load_battle_records(session)
    assert record.battle_id == battle_id
    assert record.participant_id == "prolific-xyz"
    assert record.winner is Winner.TIE
    assert record.audio_kept is True
    assert record.latency_a == Latency(ttft_s=0.1, total_s=0.9, chars=2)
    assert record.latency_b is None and record.error_b == "model 'gemini': timed out"
    assert record.created_at.tzinfo is not None


def test_second_vote_raises_already_voted_and_keeps_the_first(engine):
    factory = make_sessionmaker(engine)
    with factory.begin() as session:
        battle_id = repo.create_battle(session, model_a="m1", model_b="m2")
        repo.record_vote(session, battle_id, Winner.MODEL_A)

    with factory.begin() as session:
        with pytest.raises(AlreadyVoted):
            repo.record_vote(session, battle_id, Winner.MODEL_B)
        # the transaction is still usable after the refusal
        assert session.scalar(select(Vote.winner).where(Vote.battle_id == battle_id)) == "model_a"

    with factory.begin() as session:
        assert session.scalars(select(Vote.winner)).all() == ["model_a"]


def test_unique_index_refuses_a_second_vote_that_skips_the_check(engine, monkeypatch):
    # Simulates the race: another worker's vote lands between our check and our insert.
    factory = make_sessionmaker(engine)
    with factory.begin() as session:
        battle_id = repo.create_battle(session, model_a="m1", model_b="m2")
        repo.record_vote(session, battle_id, "model_b")
    with factory.begin() as session:
        monkeypatch.setattr(session, "scalar", lambda *args, **kwargs: None)
        with pytest.raises(AlreadyVoted):
            repo.record_vote(session, battle_id, "tie")
        monkeypatch.undo()
        # the savepoint was rolled back; the outer transaction still works
        assert session.scalars(select(Vote.winner)).all() == ["model_b"]


def test_vote_on_unknown_or_foreign_battle_is_not_found(engine):
    factory = make_sessionmaker(engine)
    with factory.begin() as session:
        mine = repo.create_session(session)
        battle_id = repo.create_battle(session, model_a="m1", model_b="m2", session_id=mine)
        with pytest.raises(NotFound):
            repo.record_vote(session, "no-such-battle", "tie")
        with pytest.raises(NotFound):
            repo.record_vote(session, battle_id, "tie", session_id="someone-else")
        assert session.scalar(select(Vote.id)) is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"model_a": "same", "model_b": "same"}, "two different models"),
        ({"model_a": "m1", "model_b": "m2", "kept_audio_path": "x.wav"}, "only when the session"),
    ],
)
def test_create_battle_rejects_bad_battles(engine, kwargs, message):
    with (
        make_sessionmaker(engine).begin() as session,
        pytest.raises(InvalidInputError, match=message),
    ):
        repo.create_battle(session, **kwargs)


def test_record_vote_rejects_unknown_winner(engine):
    with make_sessionmaker(engine).begin() as session:
        battle_id = repo.create_battle(session, model_a="m1", model_b="m2")
        with pytest.raises(InvalidInputError, match="'draw' is not one of model_a, model_b"):
            repo.record_vote(session, battle_id, "draw")


def test_battle_without_vote_is_not_loaded(engine):
    with make_sessionmaker(engine).begin() as session:
        repo.create_battle(session, model_a="m1", model_b="m2")
        assert repo.load_battle_records(session) == []
        assert repo.battles_frame(session).empty


def test_battles_frame_matches_records_to_frame(engine):
    records = [_record(1), _record(2, latency_a=None, query_transcript=None), _record(3)]
    with make_sessionmaker(engine).begin() as session:
        repo.insert_battle_records(session, records)
        frame = repo.battles_frame(session)
        salt = store_salt(session)
    expected = records_to_frame(records)
    # the session of an arena battle leaves the store as its salted hash, as in an export
    expected["session_id"] = pd.Series(
        [exported_session_id(salt, r.session_id, r.source) for r in records], dtype="str"
    )
    pd.testing.assert_frame_equal(frame, expected)
    assert frame["session_id"].str.startswith("sh-").all()
    assert frame.loc[1, "ttft_a_s"] != frame.loc[1, "ttft_a_s"]  # NaN where unknown
    assert frame.loc[0, "total_b_s"] == 2.0


def test_add_reply_refuses_a_second_reply_unknown_battle_and_bad_side(engine):
    with make_sessionmaker(engine).begin() as session:
        battle_id = repo.create_battle(session, model_a="m1", model_b="m2")
        repo.add_reply(session, battle_id, "a", text="first")
        with pytest.raises(InvalidInputError, match="already has a reply on side a"):
            repo.add_reply(session, battle_id, "a", text="second")
        with pytest.raises(InvalidInputError, match="side must be 'a' or 'b'"):
            repo.add_reply(session, battle_id, "c", text="third")
        with pytest.raises(NotFound):
            repo.add_reply(session, "no-such-battle", "b", text="fourth")
        assert repo.table_counts(session)["replies"] == 1


NO_SESSION = "no stored session"


@pytest.mark.parametrize(
    ("stored", "records", "message"),
    [
        (
            NO_SESSION,
            [_record(1), _record(2, participant_id=None, audio_kept=False)],
            "battle 'battle-2': participant_id None differs: session 'session-1' belongs to "
            "participant 'prolific-abc' in these records; nothing was written",
        ),
        (
            NO_SESSION,
            [_record(1, participant_id=None, audio_kept=False), _record(2)],
            "participant_id 'prolific-abc' differs: session 'session-1' has no participant in "
            "these records",
        ),
        (
            "prolific-abc",
            [_record(3, participant_id="prolific-other")],
            "session 'session-1' belongs to participant 'prolific-abc' in the database",
        ),
        (
            "prolific-abc",
            [_record(3, participant_id=None)],
            "session 'session-1' belongs to participant 'prolific-abc' in the database",
        ),
        (
            None,
            [_record(3)],
            "participant_id 'prolific-abc' differs: session 'session-1' has no participant in "
            "the database",
        ),
    ],
)
def test_insert_never_changes_the_participant_of_a_session(engine, stored, records, message):
    factory = make_sessionmaker(engine)
    if stored is not NO_SESSION:
        with factory.begin() as session:
            repo.create_session(session, session_id="session-1", participant_id=stored)
    with factory.begin() as session:
        before = repo.table_counts(session)
    with factory.begin() as session, pytest.raises(InvalidInputError, match=re.escape(message)):
        repo.insert_battle_records(session, records)
    with factory.begin() as session:
        assert repo.table_counts(session) == before


def test_concurrent_read_then_write_transactions_wait_instead_of_failing(engine):
    # Each transaction reads, waits until the other has read too, then writes: with a deferred
    # BEGIN, SQLite refused the second writer at once ("database is locked").
    import contextlib
    import threading

    from lamarena.store.db import make_sessionmaker as sessions_for

    with make_sessionmaker(engine).begin() as session:
        battle_ids = [
            repo.create_battle(session, model_a="a", model_b="b", query_audio_sha256="c" * 64)
            for _ in range(4)
        ]
    both_read = threading.Barrier(len(battle_ids), timeout=2)
    failures: list[BaseException] = []

    def vote(battle_id: str) -> None:
        try:
            with sessions_for(engine).begin() as session:
                session.scalar(select(Vote.id).where(Vote.battle_id == battle_id))
                # IMMEDIATE: the others wait at BEGIN, so they cannot all read first.
                with contextlib.suppress(threading.BrokenBarrierError):
                    both_read.wait()
                repo.record_vote(session, battle_id, "tie")
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=vote, args=(bid,)) for bid in battle_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    with make_sessionmaker(engine)() as session:
        assert len(session.scalars(select(Vote)).all()) == len(battle_ids)


def test_reader_reads_without_blocking_a_writer(engine):
    from lamarena.store.db import reader

    maker = make_sessionmaker(engine)
    with maker.begin() as session:
        battle_id = repo.create_battle(
            session, model_a="a", model_b="b", query_audio_sha256="c" * 64
        )
    with make_sessionmaker(reader(engine))() as reading:
        assert reading.get(Battle, battle_id) is not None  # a read transaction stays open
        with maker.begin() as writing:  # and a writer still commits (no "database is locked")
            repo.set_query_transcript(writing, battle_id, "hello")
    with maker() as session:
        assert session.get(Battle, battle_id).query_transcript == "hello"


def test_transcript_and_session_vote_count(engine):
    maker = make_sessionmaker(engine)
    with maker.begin() as session:
        session_id = repo.create_session(session, session_id="s-1")
        ids = [
            repo.create_battle(
                session,
                model_a="a",
                model_b="b",
                query_audio_sha256="c" * 64,
                session_id=session_id,
            )
            for _ in range(3)
        ]
        assert repo.session_vote_count(session, session_id) == 0
        for battle_id in ids[:2]:
            repo.record_vote(session, battle_id, "model_a", session_id=session_id)
        assert repo.session_vote_count(session, session_id) == 2
        assert repo.session_vote_count(session, "other") == 0
        with pytest.raises(NotFound):
            repo.set_query_transcript(session, "missing", "text")
