"""A failing database surfaces as one DatabaseError at the store's service boundary."""

import json
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from lamarena.errors import DatabaseError, InvalidInputError
from lamarena.store import repo, votes
from lamarena.store.db import make_engine, make_sessionmaker, migrate_to_head
from lamarena.store.records import BattleRecord, Latency

SAMPLE = Path(__file__).parent / "data" / "battles.jsonl"


def _counts(engine) -> dict[str, int]:
    with make_sessionmaker(engine).begin() as session:
        return repo.table_counts(session)


@pytest.fixture
def unreachable(databases, tmp_path):
    """An engine on a database that cannot be reached: no directory, or no server."""
    if databases.kind == "sqlite":
        url = f"sqlite:///{tmp_path / 'no-such-dir' / 'x.db'}"
    else:
        url = "postgresql+psycopg://nobody:secret@127.0.0.1:1/x"
    engine = make_engine(url)
    yield engine
    engine.dispose()


SERVICES = {
    "migrate_to_head": migrate_to_head,
    "import_votes": lambda engine, tmp_path: votes.import_votes(engine, SAMPLE, "jsonl"),
    "export_votes": lambda engine, tmp_path: votes.export_votes(engine, tmp_path / "v.jsonl"),
    "load_battle_records": votes.load_battle_records,
    "load_battles_frame": votes.load_battles_frame,
}


def _call(name, engine, tmp_path):
    service = SERVICES[name]
    return service(engine) if name.startswith(("migrate", "load")) else service(engine, tmp_path)


@pytest.mark.parametrize("name", list(SERVICES))
def test_unreachable_database_is_one_line_database_error(unreachable, databases, tmp_path, name):
    with pytest.raises(DatabaseError) as info:
        _call(name, unreachable, tmp_path)
    message = str(info.value)
    if databases.kind == "sqlite":
        assert message == (
            f"database sqlite:///{tmp_path / 'no-such-dir' / 'x.db'}: cannot connect (unable to "
            "open database file); check --db / LAMARENA_DATABASE_URL and that the file's "
            "directory exists and is writable"
        )
    else:
        assert message == (
            "database postgresql+psycopg://nobody:***@127.0.0.1:1/x: cannot connect (connection "
            "refused); check --db / LAMARENA_DATABASE_URL and that the server is running"
        )
    assert "secret" not in message and "\n" not in message
    assert isinstance(info.value.__cause__, DBAPIError)
    assert list(tmp_path.iterdir()) == []  # no export file, no SQLite directory


@pytest.mark.postgres
def test_postgres_database_that_does_not_exist_is_named(postgres_cluster):
    engine = make_engine(postgres_cluster.url("no_such_database"))
    try:
        with pytest.raises(DatabaseError, match=r'cannot connect \(database "no_such_database"'):
            migrate_to_head(engine)
    finally:
        engine.dispose()


@pytest.mark.parametrize("name", ["export_votes", "load_battle_records", "load_battles_frame"])
def test_read_of_a_database_without_the_schema_is_database_error(databases, tmp_path, name):
    engine = databases.engine(migrated=False)
    shown = engine.url.render_as_string(hide_password=True)
    with pytest.raises(DatabaseError) as info:
        _call(name, engine, tmp_path)
    message = str(info.value)
    assert message.startswith(f"database {shown}: reading the battles failed (")
    assert "battles" in message.split("(", 1)[1]  # the driver names the missing table
    assert message.endswith("); check that --db names a lamarena database")
    assert "\n" not in message
    assert list(tmp_path.iterdir()) == []


def test_schema_from_a_newer_version_is_database_error(engine):
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(DatabaseError, match=r"cannot migrate the schema \(.*'9999'.*newer version"):
        migrate_to_head(engine)


def _install_failing_trigger(engine, kind: str, battle_id: str, when: str) -> None:
    """Make the database itself refuse the vote of ``battle_id``, at once or at COMMIT."""
    statements = {
        ("sqlite", "insert"): [
            "CREATE TRIGGER boom BEFORE INSERT ON votes "
            f"WHEN NEW.battle_id = '{battle_id}' BEGIN SELECT RAISE(ABORT, 'boom'); END"
        ],
        ("sqlite", "commit"): [  # a deferred foreign key is checked at COMMIT
            "CREATE TABLE boom_parent (id TEXT PRIMARY KEY)",
            "CREATE TABLE boom_child (id TEXT REFERENCES boom_parent (id) "
            "DEFERRABLE INITIALLY DEFERRED)",
            "CREATE TRIGGER boom AFTER INSERT ON votes "
            f"WHEN NEW.battle_id = '{battle_id}' BEGIN "
            "INSERT INTO boom_child VALUES (NEW.battle_id); END",
        ],
        ("postgresql", "insert"): [
            "CREATE TRIGGER boom BEFORE INSERT ON votes FOR EACH ROW EXECUTE FUNCTION boom()"
        ],
        ("postgresql", "commit"): [
            "CREATE CONSTRAINT TRIGGER boom AFTER INSERT ON votes DEFERRABLE INITIALLY DEFERRED "
            "FOR EACH ROW EXECUTE FUNCTION boom()"
        ],
    }[kind, when]
    if kind == "postgresql":
        statements.insert(
            0,
            "CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            f"IF NEW.battle_id = '{battle_id}' THEN RAISE EXCEPTION 'boom'; END IF; "
            "RETURN NEW; END $$",
        )
    with engine.begin() as connection:
        for statement in statements:
            connection.exec_driver_sql(statement)


@pytest.mark.parametrize("when", ["insert", "commit"])
def test_database_failing_mid_import_changes_nothing(databases, tmp_path, when):
    engine = databases.engine()
    votes.import_votes(engine, SAMPLE, "jsonl")
    before = _counts(engine)
    # The third vote fails (at its INSERT, or at COMMIT) after participants, sessions, battles,
    # replies and two votes of this file were written in the transaction.
    _install_failing_trigger(engine, databases.kind, "n3", when)
    path = tmp_path / "v.jsonl"
    lines = [
        {
            "battle_id": f"n{number}",
            "created_at": f"2025-06-01T00:00:0{number}Z",
            "session_id": "new-session",
            "participant_id": "new-participant",
            "model_a": "a",
            "model_b": "b",
            "winner": "tie",
            "reply_a": "x",
            "latency_b": {"chars": number},
        }
        for number in range(1, 6)
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), "utf-8")

    with pytest.raises(DatabaseError) as info:
        votes.import_votes(engine, path, "jsonl")

    shown = engine.url.render_as_string(hide_password=True)
    reason = (
        "FOREIGN KEY constraint failed"
        if (databases.kind, when) == ("sqlite", "commit")
        else "boom"
    )
    assert str(info.value) == (
        f"database {shown}: importing {path} failed ({reason}); nothing was imported"
    )
    assert isinstance(info.value.__cause__, DBAPIError)
    assert _counts(engine) == before
    assert {r.battle_id for r in votes.load_battle_records(engine)}.isdisjoint({"n1", "n2"})


def test_number_the_driver_cannot_store_is_database_error(engine, monkeypatch, tmp_path):
    # Validation bounds chars; a record built without validation still fails cleanly.
    votes.import_votes(engine, SAMPLE, "jsonl")
    before = _counts(engine)
    record = BattleRecord.model_validate(
        {
            "battle_id": "huge",
            "created_at": "2025-06-01T00:00:00Z",
            "session_id": "s-huge",
            "model_a": "a",
            "model_b": "b",
            "winner": "tie",
        }
    ).model_copy(update={"latency_a": Latency.model_construct(chars=2**70)})
    monkeypatch.setattr(votes, "read_battle_records", lambda *args, **kwargs: [record])
    with pytest.raises(DatabaseError, match=r"importing .* failed \(.*\); nothing was imported"):
        votes.import_votes(engine, tmp_path / "v.jsonl", "jsonl")
    assert _counts(engine) == before


def test_battle_stored_concurrently_is_still_invalid_input(engine, monkeypatch):
    # Another writer stores the same battles between our check and our insert.
    votes.import_votes(engine, SAMPLE, "jsonl")
    before = _counts(engine)
    monkeypatch.setattr(repo, "existing_battle_ids", lambda session, ids: set())
    with pytest.raises(InvalidInputError) as info:
        votes.import_votes(engine, SAMPLE, "jsonl")
    assert not isinstance(info.value, DatabaseError)
    assert str(info.value).startswith(f"{SAMPLE}: the database refused the battles (")
    assert str(info.value).endswith("; nothing was imported")
    assert _counts(engine) == before
