"""Exports carry a salted hash of an arena session, never the cookie value."""

import hashlib
import hmac
import json

import pyarrow.parquet as pq
import pytest

from lamarena.errors import DatabaseError
from lamarena.store.db import make_sessionmaker, migrate_to_head
from lamarena.store.hashing import (
    exported_session_id,
    is_session_hash,
    salted_hash,
    session_hash,
    store_salt,
)
from lamarena.store.tables import StoreSecret
from lamarena.store.votes import export_votes, import_votes, load_battle_records
from store.arena_rows import ArenaRows, cookie


def _salt(engine) -> str:
    with make_sessionmaker(engine).begin() as session:
        return store_salt(session)


def _exported_sessions(path) -> dict[str, str | None]:
    rows = [json.loads(line) for line in path.read_text("utf-8").splitlines()]
    return {row["battle_id"]: row["session_id"] for row in rows}


def test_salted_hash_is_hmac_sha256_keyed_with_the_salt():
    expected = hmac.new(b"0f" * 4, b"value", hashlib.sha256).hexdigest()
    assert salted_hash("0f" * 4, "value") == expected
    assert len(salted_hash("s", "v")) == 64


def test_session_hash_form_and_idempotence():
    hashed = session_hash("salt", "cookie-value")
    assert hashed == "sh-" + salted_hash("salt", "cookie-value")[:32]
    assert is_session_hash(hashed)
    assert session_hash("other salt", hashed) == hashed  # an export's hash is not hashed again
    assert not is_session_hash(cookie())  # arena ids never look like a hash
    assert not is_session_hash("sh-" + "A" * 32) and not is_session_hash(hashed + "0")


def test_only_arena_sessions_are_hashed():
    assert exported_session_id("salt", "s1", "arena") == session_hash("salt", "s1")
    for source in ("simulate", "fastchat", "talk-arena", "jsonl"):
        assert exported_session_id("salt", "s1", source) == "s1"
    assert exported_session_id("salt", None, "arena") is None


def test_every_database_has_its_own_salt(databases):
    first = databases.engine(migrated=False)
    second = databases.engine(migrated=False)
    migrate_to_head(first)
    migrate_to_head(second)
    assert len(_salt(first)) == 64
    assert _salt(first) != _salt(second)


def test_missing_salt_is_a_database_error(engine):
    with make_sessionmaker(engine).begin() as session:
        session.delete(session.get(StoreSecret, "hash_salt"))
        session.flush()
        with pytest.raises(DatabaseError, match="no 'hash_salt' secret: migrate"):
            store_salt(session)


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_export_never_contains_the_raw_session_id(engine, tmp_path, suffix):
    rows = ArenaRows(engine)
    session_id = rows.session(participant_id="prolific-1")
    first = rows.battle(session_id, participant_id="prolific-1")
    second = rows.battle(session_id, participant_id="prolific-1", winner="tie")
    rows.battle(session_id, winner=None)  # not voted: not exported

    out = tmp_path / f"votes{suffix}"
    assert export_votes(engine, out) == 2
    assert session_id.encode() not in out.read_bytes()
    if suffix == ".parquet":
        columns = pq.read_table(out).to_pydict()
        sessions = dict(zip(columns["battle_id"], columns["session_id"], strict=True))
    else:
        sessions = _exported_sessions(out)
    expected = session_hash(_salt(engine), session_id)
    assert sessions == {first: expected, second: expected}
    assert all(record.session_id == expected for record in load_battle_records(engine))


def test_same_session_same_hash_across_exports(engine, tmp_path):
    rows = ArenaRows(engine)
    session_id = rows.session()
    first = rows.battle(session_id)
    export_votes(engine, tmp_path / "one.jsonl")
    second = rows.battle(session_id)
    export_votes(engine, tmp_path / "two.jsonl")

    one, two = (
        _exported_sessions(tmp_path / "one.jsonl"),
        _exported_sessions(tmp_path / "two.jsonl"),
    )
    assert one[first] == two[first] == two[second]
    assert is_session_hash(one[first])


def test_two_databases_hash_one_session_differently(databases, tmp_path):
    engines = [databases.engine(migrated=False), databases.engine(migrated=False)]
    hashes = []
    for number, engine in enumerate(engines):
        migrate_to_head(engine)  # a fresh migration makes a fresh salt
        rows = ArenaRows(engine)
        battle = rows.battle(rows.session("the-same-cookie-value"))
        out = tmp_path / f"{number}.jsonl"
        export_votes(engine, out)
        assert b"the-same-cookie-value" not in out.read_bytes()
        hashes.append(_exported_sessions(out)[battle])
    assert hashes[0] != hashes[1]
    assert all(is_session_hash(value) for value in hashes)


def test_export_import_export_is_stable_across_salts(databases, tmp_path):
    first, second = databases.engine(migrated=False), databases.engine(migrated=False)
    migrate_to_head(first)
    migrate_to_head(second)
    rows = ArenaRows(first)
    arena_session = rows.session(participant_id="p-1")
    rows.battle(arena_session, participant_id="p-1")
    rows.battle(arena_session, participant_id="p-1", winner="model_b")
    rows.battle(rows.session("sim-session"), source="simulate", winner="both_bad")

    export_votes(first, tmp_path / "one.jsonl")
    assert import_votes(second, tmp_path / "one.jsonl", "jsonl") == 3
    export_votes(second, tmp_path / "two.jsonl")

    assert (tmp_path / "one.jsonl").read_bytes() == (tmp_path / "two.jsonl").read_bytes()
    sessions = set(_exported_sessions(tmp_path / "one.jsonl").values())
    assert sessions == {session_hash(_salt(first), arena_session), "sim-session"}
