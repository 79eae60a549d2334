import json
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from lamarena.errors import InvalidInputError
from lamarena.store import repo
from lamarena.store.db import make_sessionmaker
from lamarena.store.exporters import PARQUET_SCHEMA
from lamarena.store.importers import read_battle_records
from lamarena.store.records import BattleRecord, records_to_frame
from lamarena.store.votes import export_votes, import_votes, load_battle_records, load_battles_frame

DATA = Path(__file__).parent / "data"
SAMPLE = DATA / "battles.jsonl"


def _counts(engine) -> dict[str, int]:
    with make_sessionmaker(engine).begin() as session:
        return repo.table_counts(session)


def _by_id(records):
    return {record.battle_id: record for record in records}


def test_jsonl_round_trip_keeps_every_field(databases, tmp_path):
    original = read_battle_records(SAMPLE, "jsonl")
    first, second = databases.engine(), databases.engine()

    assert import_votes(first, SAMPLE, "jsonl") == 4
    assert export_votes(first, tmp_path / "one.jsonl") == 4
    assert import_votes(second, tmp_path / "one.jsonl", "jsonl") == 4
    assert export_votes(second, tmp_path / "two.jsonl") == 4

    assert (tmp_path / "one.jsonl").read_bytes() == (tmp_path / "two.jsonl").read_bytes()
    assert _by_id(load_battle_records(second)) == _by_id(original)
    lines = (tmp_path / "one.jsonl").read_text("utf-8").split("\n")
    assert lines[-1] == ""  # every line ends with a newline, U+2028 inside a string is no break
    exported = [json.loads(line) for line in lines[:-1]]
    first_battle = next(e for e in exported if e["battle_id"].endswith("0001"))
    assert first_battle["created_at"] == "2025-03-04T10:15:30.123456Z"
    assert first_battle["reply_b"] == "" and first_battle["error_a"] is None
    assert first_battle["latency_b"] == {"ttft_s": 1e-07, "total_s": None, "chars": 0}
    assert "東京" in first_battle["query_transcript"]
    assert list(first_battle) == list(BattleRecord.model_fields)


def test_parquet_round_trip_keeps_every_field(databases, tmp_path):
    first, second = databases.engine(), databases.engine()
    import_votes(first, SAMPLE, "jsonl")
    assert export_votes(first, tmp_path / "one.parquet") == 4
    assert import_votes(second, tmp_path / "one.parquet", "parquet") == 4
    export_votes(first, tmp_path / "one.jsonl")
    export_votes(second, tmp_path / "two.jsonl")

    assert (tmp_path / "one.jsonl").read_bytes() == (tmp_path / "two.jsonl").read_bytes()
    assert _by_id(load_battle_records(second)) == _by_id(read_battle_records(SAMPLE, "jsonl"))
    table = pq.read_table(tmp_path / "one.parquet")
    assert table.schema.equals(PARQUET_SCHEMA)
    assert table.schema.names == list(BattleRecord.model_fields)


def test_each_format_imports_into_the_store(databases):
    engine = databases.engine()
    imported_at = datetime(2025, 1, 1, tzinfo=UTC)
    assert (
        import_votes(engine, DATA / "talk_arena_votes.json", "talk-arena", imported_at=imported_at)
        == 5
    )
    assert import_votes(engine, DATA / "fastchat_battles.json", "fastchat") == 4
    assert import_votes(engine, SAMPLE, "jsonl") == 4
    counts = _counts(engine)
    assert counts["battles"] == counts["votes"] == 13
    frame = load_battles_frame(engine)
    assert len(frame) == 13
    assert set(frame["winner"]) == {"model_a", "model_b", "tie", "both_bad"}
    assert frame["created_at"].min() == pd.Timestamp("2023-04-24 15:53:11.132200", tz="UTC")


def test_load_battles_frame_equals_records_to_frame(engine):
    import_votes(engine, SAMPLE, "jsonl")
    pd.testing.assert_frame_equal(
        load_battles_frame(engine), records_to_frame(load_battle_records(engine))
    )


GOOD = {"created_at": "2025-01-01T00:00:00Z", "model_a": "a", "model_b": "b", "winner": "tie"}


def _lines(*records) -> str:
    return "".join(json.dumps(record) + "\n" for record in records)


BAD_FILES = [
    pytest.param(
        "votes.json",
        "talk-arena",
        json.dumps(
            {
                "_default": {
                    "g1": {"model_a": "a", "model_b": "b", "outcome": 0},
                    "17": {"model_a": "a", "model_b": "b", "outcome": 0.7},
                }
            }
        ),
        "record 17: field 'outcome': 0.7 is not one of 0, 0.5, 1",
        id="talk-arena-bad-outcome-after-good",
    ),
    pytest.param(
        "votes.json",
        "talk-arena",
        json.dumps({"_default": {"g1": {"model_a": "a", "outcome": 0}}}),
        "record g1: field 'model_b': is missing",
        id="talk-arena-missing-field",
    ),
    pytest.param(
        "battles.json",
        "fastchat",
        json.dumps(
            [
                {"model_a": "a", "model_b": "b", "winner": "tie", "tstamp": 1.0},
                {"model_a": "a", "model_b": "b", "winner": "draw", "tstamp": 2.0},
            ]
        ),
        "record 2: field 'winner': 'draw' is not one of",
        id="fastchat-bad-winner-after-good",
    ),
    pytest.param(
        "v.jsonl",
        "jsonl",
        _lines({**GOOD, "battle_id": "n1"}) + '{"battle_id": "n2",\n',
        "invalid JSON at line 2, column",
        id="jsonl-bad-json",
    ),
    pytest.param(
        "v.jsonl",
        "jsonl",
        _lines({**GOOD, "battle_id": "n1"}, {**GOOD, "battle_id": "n2", "model_b": "a"}),
        "record 2: field 'model_b': 'a' is the same model as model_a",
        id="jsonl-same-models",
    ),
    pytest.param(
        "v.jsonl",
        "jsonl",
        _lines({**GOOD, "battle_id": "n1"}, {**GOOD, "battle_id": "n1"}),
        "record 2: field 'battle_id': battle id 'n1' is already used by record 1",
        id="jsonl-duplicate-id-in-file",
    ),
    pytest.param(
        "v.jsonl",
        "jsonl",
        _lines(
            {**GOOD, "battle_id": "n1"},
            {**GOOD, "battle_id": "b7c1e0de-0001-4a3b-9d1e-000000000003"},
        ),
        "record b7c1e0de-0001-4a3b-9d1e-000000000003: field 'battle_id': is already in the "
        "database",
        id="jsonl-id-already-stored",
    ),
    pytest.param(
        "v.jsonl",
        "jsonl",
        _lines(
            *({**GOOD, "battle_id": f"n{i}"} for i in range(5)),
            {**GOOD, "battle_id": "n9", "winner": 2},
        ),
        "record 6: field 'winner': 2: Input should be",
        id="jsonl-bad-record-after-good-ones",
    ),
    pytest.param(
        "v.jsonl",
        "jsonl",
        _lines(
            {**GOOD, "battle_id": "n1", "session_id": "s-0001", "participant_id": "someone-else"}
        ),
        "session 's-0001' already belongs to participant '5f8e1c2a9b3d4e6f7a8b9c0d'",
        id="jsonl-session-of-another-participant",
    ),
    pytest.param(
        "v.jsonl",
        "jsonl",
        _lines({**GOOD, "battle_id": "n1", "reply_a": "nul\u0000"}),
        "record 1: field 'reply_a': contains a NUL character",
        id="jsonl-nul-character",
    ),
]


@pytest.mark.parametrize(("name", "fmt", "content", "message"), BAD_FILES)
def test_bad_file_changes_nothing_and_names_record_and_field(
    engine, tmp_path, name, fmt, content, message
):
    import_votes(engine, SAMPLE, "jsonl")
    before = _counts(engine)
    path = tmp_path / name
    path.write_text(content, "utf-8")

    with pytest.raises(InvalidInputError) as info:
        import_votes(engine, path, fmt)

    text = str(info.value)
    assert text.startswith(f"{path}: ")
    assert message in text
    assert "\n" not in text
    assert _counts(engine) == before


def test_importing_the_same_file_twice_is_refused(engine):
    import_votes(engine, DATA / "fastchat_battles.json", "fastchat")
    before = _counts(engine)
    with pytest.raises(InvalidInputError, match=r"already in the database \(and 3 more"):
        import_votes(engine, DATA / "fastchat_battles.json", "fastchat")
    assert _counts(engine) == before


def test_export_refuses_unknown_suffix_and_leaves_no_file(engine, tmp_path):
    with pytest.raises(InvalidInputError, match=r"name the file \.jsonl or \.parquet"):
        export_votes(engine, tmp_path / "votes.csv")
    assert list(tmp_path.iterdir()) == []


def test_export_replaces_the_file_atomically(engine, tmp_path):
    import_votes(engine, SAMPLE, "jsonl")
    out = tmp_path / "votes.jsonl"
    out.write_text("old content\n")
    assert export_votes(engine, out) == 4
    assert [p.name for p in tmp_path.iterdir()] == ["votes.jsonl"]  # no temporary file left
    assert out.read_text("utf-8").count("\n") == 4


def test_export_to_a_missing_directory_is_invalid_input(engine, tmp_path):
    with pytest.raises(InvalidInputError, match="does not exist"):
        export_votes(engine, tmp_path / "nowhere" / "votes.parquet")


def test_export_of_an_empty_store_writes_an_empty_file(engine, tmp_path):
    assert export_votes(engine, tmp_path / "votes.jsonl") == 0
    assert (tmp_path / "votes.jsonl").read_bytes() == b""
    assert export_votes(engine, tmp_path / "votes.parquet") == 0
    assert pq.read_table(tmp_path / "votes.parquet").num_rows == 0
