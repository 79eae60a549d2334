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
from lamarena.store.hashing import session_hash, store_salt
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


def _salt(engine) -> str:
    with make_sessionmaker(engine).begin() as session:
        return store_salt(session)


def _as_exported(records, engine):
    """The records as ``engine``'s store exports them: arena sessions as salted hashes."""
    salt = _salt(engine)
    return [
        record.model_copy(update={"session_id": session_hash(salt, record.session_id)})
        if record.source == "arena" and record.session_id is not None
        else record
        for record in records
    ]


def test_jsonl_round_trip_keeps_every_field(databases, tmp_path):
    original = read_battle_records(SAMPLE, "jsonl")
    first, second = databases.engine(), databases.engine()

    assert import_votes(first, SAMPLE, "jsonl") == 4
    assert export_votes(first, tmp_path / "one.jsonl") == 4
    assert import_votes(second, tmp_path / "one.jsonl", "jsonl") == 4
    assert export_votes(second, tmp_path / "two.jsonl") == 4

    assert (tmp_path / "one.jsonl").read_bytes() == (tmp_path / "two.jsonl").read_bytes()
    assert _by_id(load_battle_records(second)) == _by_id(_as_exported(original, first))
    lines = (tmp_path / "one.jsonl").read_text("utf-8").split("\n")
    assert lines[-1] == ""  # every line ends with a newline, U+2028 inside a string is no break
    exported = [json.loads(line) for line in lines[:-1]]
    first_battle = next(e for e in exported if e["battle_id"].endswith("0001"))
    assert first_battle["created_at"] == "2025-03-04T10:15:30.123456Z"
    assert first_battle["reply_b"] == "" and first_battle["error_a"] is None
    assert first_battle["latency_b"] == {"ttft_s": 1e-07, "total_s": None, "chars": 0}
    assert "東京" in first_battle["query_transcript"]
    assert list(first_battle) == [*BattleRecord.model_fields, *BattleRecord.model_computed_fields]
    assert first_battle["n_turns"] == 1 and len(first_battle["turns"]) == 1


def test_parquet_round_trip_keeps_every_field(databases, tmp_path):
    first, second = databases.engine(), databases.engine()
    import_votes(first, SAMPLE, "jsonl")
    assert export_votes(first, tmp_path / "one.parquet") == 4
    assert import_votes(second, tmp_path / "one.parquet", "parquet") == 4
    export_votes(first, tmp_path / "one.jsonl")
    export_votes(second, tmp_path / "two.jsonl")

    assert (tmp_path / "one.jsonl").read_bytes() == (tmp_path / "two.jsonl").read_bytes()
    expected = _as_exported(read_battle_records(SAMPLE, "jsonl"), first)
    assert _by_id(load_battle_records(second)) == _by_id(expected)
    table = pq.read_table(tmp_path / "one.parquet")
    assert table.schema.equals(PARQUET_SCHEMA)
    assert table.schema.names == [*BattleRecord.model_fields, *BattleRecord.model_computed_fields]


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
        "record n1: field 'participant_id': is 'someone-else', but in the database session "
        "'s-0001' belongs to participant '5f8e1c2a9b3d4e6f7a8b9c0d'; nothing was imported",
        id="jsonl-session-of-another-participant",
    ),
    pytest.param(
        "v.jsonl",
        "jsonl",
        _lines({**GOOD, "battle_id": "n1", "session_id": "s-0001"}),
        "record n1: field 'participant_id': is null, but in the database session 's-0001' "
        "belongs to participant '5f8e1c2a9b3d4e6f7a8b9c0d'",
        id="jsonl-no-participant-for-a-session-that-has-one",
    ),
    pytest.param(
        "v.jsonl",
        "jsonl",
        _lines({**GOOD, "battle_id": "n1", "session_id": "s-0002", "participant_id": "p-new"}),
        "record n1: field 'participant_id': is 'p-new', but in the database session 's-0002' "
        "has no participant",
        id="jsonl-participant-for-a-session-without-one",
    ),
    pytest.param(
        "v.jsonl",
        "jsonl",
        _lines(
            {**GOOD, "battle_id": "n1", "session_id": "s9", "participant_id": "p1"},
            {**GOOD, "battle_id": "n2", "session_id": "s9", "participant_id": "p2"},
        ),
        "record 2: field 'participant_id': is 'p2', but session 's9' belongs to participant "
        "'p1' (record 1)",
        id="jsonl-two-participants-in-one-session",
    ),
    pytest.param(
        "v.jsonl",
        "jsonl",
        _lines(
            {**GOOD, "battle_id": "n1", "session_id": "s9"},
            {**GOOD, "battle_id": "n2", "session_id": "s9", "participant_id": "p1"},
        ),
        "record 2: field 'participant_id': is 'p1', but session 's9' has no participant (record 1)",
        id="jsonl-null-then-participant-in-one-session",
    ),
    pytest.param(
        "v.jsonl",
        "jsonl",
        _lines(
            {**GOOD, "battle_id": "n1", "session_id": "s9", "participant_id": "p1"},
            {**GOOD, "battle_id": "n2", "session_id": "s9", "participant_id": None},
        ),
        "record 2: field 'participant_id': is null, but session 's9' belongs to participant "
        "'p1' (record 1)",
        id="jsonl-participant-then-null-in-one-session",
    ),
    pytest.param(
        "v.jsonl",
        "jsonl",
        _lines(
            {**GOOD, "battle_id": "n1"},
            {**GOOD, "battle_id": "n2", "latency_b": {"chars": 2**40}},
        ),
        "record 2: field 'latency_b.chars': 1099511627776: Input should be less than or equal "
        "to 2147483647",
        id="jsonl-chars-beyond-32-bits",
    ),
    pytest.param(
        "votes.json",
        "talk-arena",
        json.dumps(
            {
                "_default": {
                    "g1": {"model_a": "a", "model_b": "b", "outcome": 0},
                    "g2": {
                        "model_a": "a",
                        "model_b": "b",
                        "outcome": 0,
                        "model_a_latency": {"response_length": 2**63},
                    },
                }
            }
        ),
        "record g2: field 'model_a_latency.response_length': 9223372036854775808: Input should "
        "be less than or equal to 2147483647",
        id="talk-arena-length-beyond-64-bits",
    ),
    pytest.param(
        "v.jsonl",
        "jsonl",
        _lines({**GOOD, "battle_id": "n1", "created_at": "0001-01-01T00:30:00+01:00"}),
        "record 1: field 'created_at': 0001-01-01T00:30:00+01:00 is outside years 1 to 9999",
        id="jsonl-time-before-year-1-in-utc",
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


EXTREMES = [
    {
        **GOOD,
        "battle_id": "first",
        "created_at": "0001-01-01T00:00:00Z",
        "latency_a": {"ttft_s": 5e-324, "total_s": 1.7976931348623157e308, "chars": 2**31 - 1},
        "latency_b": {"ttft_s": -0.0, "total_s": 0.0, "chars": 0},
    },
    {**GOOD, "battle_id": "last", "created_at": "9999-12-31T23:59:59.999999Z"},
]


@pytest.mark.parametrize("server_time_zone", ["Etc/GMT-14", "Etc/GMT+12"])
def test_extreme_values_round_trip_on_every_database(databases, tmp_path, server_time_zone):
    # The same file imports and exports unchanged on SQLite and on PostgreSQL, whatever the
    # server's time zone (year 9999 at UTC+14 or year 1 at UTC-12 would leave years 1-9999).
    engine = databases.engine()
    if databases.kind == "postgresql":
        with engine.begin() as connection:
            connection.exec_driver_sql(
                f"ALTER DATABASE \"{engine.url.database}\" SET timezone TO '{server_time_zone}'"
            )
        engine.dispose()
    path = tmp_path / "extremes.jsonl"
    path.write_text(_lines(*EXTREMES), "utf-8")
    expected = read_battle_records(path, "jsonl")

    assert import_votes(engine, path, "jsonl") == 2
    assert export_votes(engine, tmp_path / "out.jsonl") == 2

    assert load_battle_records(engine) == expected
    exported = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert exported[0]["created_at"] == "0001-01-01T00:00:00Z"
    assert exported[0]["latency_a"] == {
        "ttft_s": 5e-324,
        "total_s": 1.7976931348623157e308,
        "chars": 2147483647,
    }
    assert exported[0]["latency_b"] == {"ttft_s": 0.0, "total_s": 0.0, "chars": 0}
    assert "-0.0" not in (tmp_path / "out.jsonl").read_text()
    assert exported[1]["created_at"] == "9999-12-31T23:59:59.999999Z"
    assert len(load_battles_frame(engine)) == 2


SHARED_SESSIONS = [
    {**GOOD, "battle_id": "p1-1", "session_id": "s1", "participant_id": "prolific-1"},
    {**GOOD, "battle_id": "none-1", "session_id": "s2", "participant_id": None},
    {**GOOD, "battle_id": "p1-2", "session_id": "s1", "participant_id": "prolific-1"},
    {**GOOD, "battle_id": "p2-1", "session_id": "s3", "participant_id": "prolific-2"},
    {**GOOD, "battle_id": "p1-3", "session_id": "s4", "participant_id": "prolific-1"},
    {**GOOD, "battle_id": "none-2", "session_id": "s2"},
    {**GOOD, "battle_id": "p2-2", "session_id": "s3", "participant_id": "prolific-2"},
    {**GOOD, "battle_id": "nobody"},
]


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_participants_of_shared_sessions_round_trip(databases, tmp_path, suffix):
    path = tmp_path / "in.jsonl"
    path.write_text(_lines(*SHARED_SESSIONS), "utf-8")
    expected = _by_id(read_battle_records(path, "jsonl"))
    first, second = databases.engine(), databases.engine()

    assert import_votes(first, path, "jsonl") == 8
    assert export_votes(first, tmp_path / f"one{suffix}") == 8
    assert import_votes(second, tmp_path / f"one{suffix}", suffix.lstrip(".")) == 8

    assert _by_id(load_battle_records(first)) == expected
    assert _by_id(load_battle_records(second)) == expected
    owners = {r.battle_id: r.participant_id for r in load_battle_records(second)}
    assert owners == {
        "p1-1": "prolific-1",
        "p1-2": "prolific-1",
        "p1-3": "prolific-1",
        "p2-1": "prolific-2",
        "p2-2": "prolific-2",
        "none-1": None,
        "none-2": None,
        "nobody": None,
    }
    counts = _counts(second)
    assert (counts["participants"], counts["sessions"], counts["battles"]) == (2, 4, 8)


def test_more_battles_of_a_stored_session_keep_its_participant(engine, tmp_path):
    import_votes(engine, SAMPLE, "jsonl")
    path = tmp_path / "more.jsonl"
    path.write_text(
        _lines(
            {
                **GOOD,
                "battle_id": "n1",
                "session_id": "s-0001",
                "participant_id": "5f8e1c2a9b3d4e6f7a8b9c0d",
            },
            {**GOOD, "battle_id": "n2", "session_id": "s-0002"},
        ),
        "utf-8",
    )
    assert import_votes(engine, path, "jsonl") == 2
    owners = {r.battle_id: r.participant_id for r in load_battle_records(engine)}
    assert owners["n1"] == "5f8e1c2a9b3d4e6f7a8b9c0d" and owners["n2"] is None
    assert owners["b7c1e0de-0001-4a3b-9d1e-000000000003"] is None  # s-0002 left as it was
    counts = _counts(engine)
    assert (counts["participants"], counts["sessions"], counts["battles"]) == (1, 2, 6)


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
