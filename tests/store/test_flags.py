"""Battle records carry ``counted``, ``flags`` and ``equal_pace``; leaderboards skip uncounted."""

import json
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import select

from lamarena.store import repo
from lamarena.store.db import make_sessionmaker
from lamarena.store.exporters import PARQUET_SCHEMA
from lamarena.store.importers import read_battle_records
from lamarena.store.records import records_to_frame
from lamarena.store.tables import Battle
from lamarena.store.votes import export_votes, import_votes, load_battle_records, load_battles_frame
from store.arena_rows import ArenaRows

DATA = Path(__file__).parent / "data"
FLAGGED = DATA / "battles_flagged.jsonl"
OLD = DATA / "battles.jsonl"  # written before counted/flags/equal_pace existed
ARENA_SESSION = "Yq3v0m5dI2nGf8oWcA1bR7tXkL9sJ4hE6uPzN0yQwVc"
NEW_FIELDS = ("counted", "flags", "equal_pace")


def _stored(engine) -> dict[str, tuple]:
    with make_sessionmaker(engine).begin() as session:
        rows = session.execute(
            select(
                Battle.id, Battle.counted, Battle.flags, Battle.equal_pace, Battle.participant_id
            )
        )
        return {row.id: tuple(row)[1:] for row in rows}


def test_flagged_file_reads_flags_sorted():
    records = read_battle_records(FLAGGED, "jsonl")
    assert [(r.counted, r.flags, r.equal_pace) for r in records] == [
        (True, [], True),
        (False, ["duplicate_audio", "self_identified"], True),
        (False, ["self_identified"], False),
    ]


def test_import_stores_counted_flags_equal_pace_and_participant(engine):
    assert import_votes(engine, FLAGGED, "jsonl") == 3
    assert _stored(engine) == {
        "f1a90000-0000-4000-8000-000000000001": (True, None, True, "prolific-7"),
        "f1a90000-0000-4000-8000-000000000002": (
            False,
            "duplicate_audio,self_identified",
            True,
            "prolific-7",
        ),
        "f1a90000-0000-4000-8000-000000000003": (False, "self_identified", False, None),
    }
    loaded = {record.battle_id: record for record in load_battle_records(engine)}
    assert loaded["f1a90000-0000-4000-8000-000000000002"].flags == [
        "duplicate_audio",
        "self_identified",
    ]
    assert loaded["f1a90000-0000-4000-8000-000000000002"].counted is False
    assert loaded["f1a90000-0000-4000-8000-000000000001"].equal_pace is True


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_flags_round_trip_through_both_formats(databases, tmp_path, suffix):
    first, second = databases.engine(), databases.engine()
    import_votes(first, FLAGGED, "jsonl")
    export_votes(first, tmp_path / f"one{suffix}")
    import_votes(second, tmp_path / f"one{suffix}", suffix.removeprefix("."))
    export_votes(first, tmp_path / "one.jsonl")
    export_votes(second, tmp_path / "two.jsonl")
    assert (tmp_path / "one.jsonl").read_bytes() == (tmp_path / "two.jsonl").read_bytes()
    exported = [json.loads(line) for line in (tmp_path / "one.jsonl").read_text().splitlines()]
    assert [(row["counted"], row["flags"], row["equal_pace"]) for row in exported] == [
        (True, [], True),
        (False, ["duplicate_audio", "self_identified"], True),
        (False, ["self_identified"], False),
    ]
    assert ARENA_SESSION not in (tmp_path / "one.jsonl").read_text()
    if suffix == ".parquet":
        schema = pq.read_schema(tmp_path / "one.parquet")
        assert schema.equals(PARQUET_SCHEMA)
        assert schema.field("flags").type == pa.list_(pa.string())
        assert schema.field("counted").type == pa.bool_()


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_files_without_the_new_fields_import_with_defaults(engine, tmp_path, suffix):
    path = OLD
    if suffix == ".parquet":  # a Parquet export from before: the old columns only
        old_columns = [name for name in PARQUET_SCHEMA.names if name not in NEW_FIELDS]
        rows = [
            record.model_dump(include=set(old_columns), mode="python")
            for record in read_battle_records(OLD, "jsonl")
        ]
        for row in rows:
            row["winner"] = row["winner"].value
        path = tmp_path / "old.parquet"
        schema = pa.schema([PARQUET_SCHEMA.field(name) for name in old_columns])
        pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)
        assert "counted" not in pq.read_schema(path).names
    assert import_votes(engine, path, suffix.removeprefix(".")) == 4
    records = load_battle_records(engine)
    assert {(r.counted, tuple(r.flags), r.equal_pace) for r in records} == {(True, (), False)}
    assert set(_stored(engine).values()) >= {(True, None, False, None)}


def test_talk_arena_and_fastchat_import_counted_unflagged(engine):
    imported_at = datetime(2025, 1, 1, tzinfo=UTC)
    for path, fmt in (
        (DATA / "talk_arena_votes.json", "talk-arena"),
        (DATA / "fastchat_battles.json", "fastchat"),
    ):
        for record in read_battle_records(path, fmt, imported_at=imported_at):
            assert (record.counted, record.flags, record.equal_pace) == (True, [], False)
        import_votes(engine, path, fmt, imported_at=imported_at)
    assert {value[:3] for value in _stored(engine).values()} == {(True, None, False)}


def test_battles_frame_leaves_out_uncounted_battles_by_default(engine):
    import_votes(engine, FLAGGED, "jsonl")
    import_votes(engine, OLD, "jsonl")
    records = load_battle_records(engine)
    with make_sessionmaker(engine).begin() as session:
        counted = repo.battles_frame(session)
        everything = repo.battles_frame(session, include_uncounted=True)
    assert len(counted) == 5 and bool(counted["counted"].all())
    assert "f1a90000-0000-4000-8000-000000000002" not in set(counted["battle_id"])
    pd.testing.assert_frame_equal(everything, records_to_frame(records))
    assert list(everything["counted"]) == [record.counted for record in records]
    pd.testing.assert_frame_equal(load_battles_frame(engine), counted)
    pd.testing.assert_frame_equal(load_battles_frame(engine, include_uncounted=True), everything)


def test_exported_participant_is_the_battles_own(engine, tmp_path):
    rows = ArenaRows(engine)
    session_id = rows.session(participant_id="p-session")
    own = rows.battle(session_id, participant_id="p-session")
    before_0003 = rows.battle(session_id, participant_id=None)  # falls back to the session's
    with make_sessionmaker(engine).begin() as session:
        # a participant stored on the battle is what the battle exports, whatever the session
        session.get(Battle, own).participant_id = "p-battle"
    export_votes(engine, tmp_path / "out.jsonl")
    exported = {
        row["battle_id"]: row["participant_id"]
        for row in map(json.loads, (tmp_path / "out.jsonl").read_text().splitlines())
    }
    assert exported == {own: "p-battle", before_0003: "p-session"}
