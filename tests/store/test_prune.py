"""``battles prune``: unvoted old battles, their replies and kept audio, and old client events."""

import re
import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from lamarena.errors import DatabaseError, InvalidInputError
from lamarena.store.db import make_sessionmaker
from lamarena.store.prune import PruneReport, parse_duration, prune_battles
from lamarena.store.repo import add_reply, add_turn
from lamarena.store.tables import Battle, ClientEvent, Reply, Turn, Vote
from lamarena.store.tables import Session as SessionRow
from store.arena_rows import T0, ArenaRows

NOW = T0 + timedelta(days=30)
OLD = NOW - timedelta(days=8)
RECENT = NOW - timedelta(hours=1)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("7d", timedelta(days=7)),
        ("24h", timedelta(hours=24)),
        ("90m", timedelta(minutes=90)),
        (" 1d ", timedelta(days=1)),
        ("36500d", timedelta(days=36500)),
    ],
)
def test_parse_duration(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("7", "a whole number and a unit: 7d (days), 24h (hours) or 90m (minutes)"),
        ("7 d", "a whole number and a unit"),
        ("1.5d", "a whole number and a unit"),
        ("-1d", "a whole number and a unit"),
        ("7w", "a whole number and a unit"),
        ("7D", "a whole number and a unit"),
        ("1d2h", "a whole number and a unit"),
        ("", "a whole number and a unit"),
        ("0h", "more than zero"),
        ("36501d", "at most 36500d"),
        ("99999999999999999999m", "at most 36500d"),
    ],
)
def test_parse_duration_rejects_other_forms(text, message):
    with pytest.raises(InvalidInputError, match=re.escape(message)) as info:
        parse_duration(text)
    assert str(info.value).startswith(f"--older-than {text!r}: ")


def _counts(engine) -> dict[str, int]:
    with make_sessionmaker(engine).begin() as session:
        return {
            table.__tablename__: session.scalar(select(func.count()).select_from(table)) or 0
            for table in (SessionRow, Battle, Reply, Vote, ClientEvent)
        }


def _battle_ids(engine) -> set[str]:
    with make_sessionmaker(engine).begin() as session:
        return set(session.scalars(select(Battle.id)))


@pytest.fixture
def store(engine, tmp_path):
    """Battles old and recent, voted and not, keeping audio files in and out of the data dir."""
    data = tmp_path / "data"
    (data / "audio").mkdir(parents=True)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    files = {
        "alone": data / "audio" / "alone.wav",  # only an old unvoted battle keeps it
        "twice": data / "audio" / "twice.wav",  # two old unvoted battles keep it
        "shared": data / "audio" / "shared.wav",  # an old unvoted and a voted battle
        "recent": data / "audio" / "recent.wav",  # a recent unvoted battle
        "outside": outside / "outside.wav",  # not under the data dir
    }
    for number, path in enumerate(files.values(), start=1):
        path.write_bytes(b"x" * 100 * number)
    missing = data / "audio" / "missing.wav"  # already gone
    rows = ArenaRows(engine)
    session_id = rows.session(consent=True)
    keep = lambda name: str(files[name])  # noqa: E731
    doomed = {
        rows.battle(session_id, winner=None, created_at=OLD, kept_audio_path=keep("alone")),
        rows.battle(session_id, winner=None, created_at=OLD, kept_audio_path=keep("twice")),
        rows.battle(session_id, winner=None, created_at=OLD, kept_audio_path=keep("twice")),
        rows.battle(session_id, winner=None, created_at=OLD, kept_audio_path=keep("shared")),
        rows.battle(session_id, winner=None, created_at=OLD, kept_audio_path=keep("outside")),
        rows.battle(session_id, winner=None, created_at=OLD, kept_audio_path=str(missing)),
        rows.battle(session_id, winner=None, created_at=OLD, replies=False),
    }
    kept = {
        "voted": rows.battle(session_id, created_at=OLD, kept_audio_path=keep("shared")),
        "recent": rows.battle(
            session_id, winner=None, created_at=RECENT, kept_audio_path=keep("recent")
        ),
    }
    for at in (OLD, OLD, RECENT):
        rows.event("c1" * 32, "battle", at)
    return data, files, doomed, kept


def test_prune_deletes_unvoted_old_battles_replies_audio_and_events(engine, store):
    data, files, _doomed, kept = store
    before = _counts(engine)
    report = prune_battles(engine, timedelta(days=7), data, now=NOW)

    assert (report.battles, report.replies, report.client_events) == (7, 12, 2)
    assert (report.audio_files, report.audio_bytes) == (2, 100 + 200)  # alone, twice
    assert (report.audio_missing, report.audio_outside) == (1, 1)
    assert report.cutoff == NOW - timedelta(days=7) and report.dry_run is False
    assert _battle_ids(engine) == set(kept.values())
    after = _counts(engine)
    assert after["battles"] == before["battles"] - 7
    assert after["replies"] == before["replies"] - 12
    assert after["votes"] == before["votes"] == 1
    assert after["client_events"] == 1
    assert after["sessions"] == before["sessions"]
    assert not files["alone"].exists() and not files["twice"].exists()
    assert files["shared"].exists() and files["recent"].exists() and files["outside"].exists()
    assert report.to_dict()["cutoff"] == (NOW - timedelta(days=7)).isoformat()

    again = prune_battles(engine, timedelta(days=7), data, now=NOW)
    assert (again.battles, again.replies, again.client_events, again.audio_files) == (0, 0, 0, 0)


def test_dry_run_reports_the_same_and_changes_nothing(engine, store):
    data, files, _doomed, _kept = store
    before = _counts(engine)
    dry = prune_battles(engine, timedelta(days=7), data, now=NOW, dry_run=True)
    assert _counts(engine) == before
    assert all(path.exists() for path in files.values())
    real = prune_battles(engine, timedelta(days=7), data, now=NOW)
    assert dry.dry_run and not real.dry_run
    assert dry.to_dict() | {"dry_run": False} == real.to_dict()


def test_a_shorter_duration_takes_more(engine, store):
    data, files, _doomed, kept = store
    report = prune_battles(engine, timedelta(minutes=30), data, now=NOW)
    assert report.battles == 8 and report.client_events == 3
    assert not files["recent"].exists()
    assert _battle_ids(engine) == {kept["voted"]}


def test_a_failed_prune_deletes_nothing_and_keeps_every_file(engine, databases, store):
    data, files, _doomed, _kept = store
    if databases.kind == "sqlite":
        statements = [
            "CREATE TRIGGER refuse BEFORE DELETE ON client_events "
            "BEGIN SELECT RAISE(ABORT, 'refused'); END"
        ]
    else:
        statements = [
            "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "RAISE EXCEPTION 'refused'; END $$",
            "CREATE TRIGGER refuse BEFORE DELETE ON client_events FOR EACH ROW "
            "EXECUTE FUNCTION refuse()",
        ]
    with engine.begin() as connection:
        for statement in statements:
            connection.exec_driver_sql(statement)
    before = _counts(engine)
    with pytest.raises(
        DatabaseError, match=r"pruning battles failed .*refused.*nothing was deleted"
    ):
        prune_battles(engine, timedelta(days=7), data, now=NOW)
    assert _counts(engine) == before  # the battles deleted before the refusal came back
    assert all(path.exists() for path in files.values())


def test_prune_refuses_a_duration_that_is_not_positive(engine, tmp_path):
    with pytest.raises(InvalidInputError, match="more than zero"):
        prune_battles(engine, timedelta(0), tmp_path)


def test_a_vote_arriving_during_the_prune_keeps_its_battle(engine, tmp_path):
    rows = ArenaRows(engine)
    session_id = rows.session()
    voted_late = rows.battle(session_id, winner=None, created_at=OLD)
    unvoted = rows.battle(session_id, winner=None, created_at=OLD)
    voter = make_sessionmaker(engine)()
    voter.begin()
    # The vote is written (and, on PostgreSQL, its battle row key-share locked) but not committed
    # when the prune starts: the prune must wait for it and then leave the battle alone.
    voter.add(Vote(battle_id=voted_late, winner="tie", created_at=NOW))
    voter.flush()
    result: dict[str, object] = {}

    def prune() -> None:
        result["report"] = prune_battles(engine, timedelta(days=7), tmp_path, now=NOW)

    worker = threading.Thread(target=prune)
    worker.start()
    worker.join(timeout=1.0)
    assert worker.is_alive()  # waiting for the voter's transaction
    voter.commit()
    voter.close()
    worker.join(timeout=30)
    assert not worker.is_alive()
    report = result["report"]
    assert isinstance(report, PruneReport) and report.battles == 1
    assert _battle_ids(engine) == {voted_late}
    assert unvoted not in _battle_ids(engine)
    assert _counts(engine)["votes"] == 1


def test_prune_of_a_database_without_the_schema_is_a_database_error(databases, tmp_path):
    engine = databases.engine(migrated=False)
    with pytest.raises(DatabaseError, match="pruning battles failed"):
        prune_battles(engine, timedelta(days=7), tmp_path)


def test_a_pruned_conversation_takes_its_later_turns_and_their_kept_audio(engine, tmp_path):
    data = tmp_path / "data"
    (data / "audio").mkdir(parents=True)
    second = data / "audio" / "second-turn.wav"  # only the old conversation's turn 2 keeps it
    shared = data / "audio" / "shared-turn.wav"  # also a voted battle's own query
    for path in (second, shared):
        path.write_bytes(b"y" * 50)
    rows = ArenaRows(engine)
    session_id = rows.session(consent=True)
    old = rows.battle(session_id, winner=None, created_at=OLD)
    voted = rows.battle(session_id, created_at=OLD, kept_audio_path=str(shared))
    with make_sessionmaker(engine).begin() as session:
        add_turn(session, old, 2, created_at=OLD, kept_audio_path=str(second))
        add_turn(session, old, 3, created_at=OLD, kept_audio_path=str(shared))
        add_reply(session, old, "a", text="later", turn=2)

    report = prune_battles(engine, timedelta(days=7), data, now=NOW)

    assert report.battles == 1 and report.audio_files == 1
    assert not second.exists() and shared.exists()
    with make_sessionmaker(engine).begin() as session:
        assert session.scalar(select(func.count()).select_from(Turn)) == 0
        assert set(session.scalars(select(Battle.id))) == {voted}
