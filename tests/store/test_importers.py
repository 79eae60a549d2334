import json
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from lamarena.errors import InvalidInputError, RecordError
from lamarena.store.importers import read_battle_records
from lamarena.store.records import Latency, Winner, records_to_frame

DATA = Path(__file__).parent / "data"
IMPORTED_AT = datetime(2025, 2, 3, 4, 5, 6, tzinfo=UTC)


def test_talk_arena_votes_map_outcomes_latencies_and_reasons():
    records = read_battle_records(
        DATA / "talk_arena_votes.json", "talk-arena", imported_at=IMPORTED_AT
    )
    by_id = {record.battle_id: record for record in records}
    assert len(records) == 5
    assert [r.winner for r in records] == [
        Winner.MODEL_B,
        Winner.MODEL_A,
        Winner.TIE,
        Winner.MODEL_B,
        Winner.MODEL_A,
    ]
    first = by_id["6f1c2a9e-3b7d-4e21-9c55-1f0a7b2d9e10"]
    assert (first.model_a, first.model_b) == ("qwen2", "gpt4o")
    assert first.latency_a == Latency(
        ttft_s=0.6123400688171387, total_s=2.4051201343536377, chars=212
    )
    assert first.query_audio_sha256 == "9a41c2e7"  # xxh32 as given, not a sha256
    assert first.feedback_text is None
    assert by_id["c8a2f3d1-5e64-4b7a-a1c9-2e9f8d7b6a53"].feedback_text.startswith("Beide")
    assert by_id["a1e6c4f8-9b2d-4a37-8f15-6c0d2e9b4a71"].feedback_text == ""
    no_latency = by_id["4b9d7e2a-0c13-4f58-b6a4-8d1e3c2b7f06"]
    assert no_latency.latency_a is None and no_latency.latency_b is None
    assert all(r.created_at == IMPORTED_AT and r.source == "talk-arena" for r in records)


def test_talk_arena_latency_as_a_number_is_the_total_time(tmp_path):
    path = tmp_path / "votes.json"
    vote = {"model_a": "x", "model_b": "y", "outcome": 0, "model_a_latency": 3.5}
    path.write_text(json.dumps({"_default": {"1": vote}}))
    (record,) = read_battle_records(path, "talk-arena")
    assert record.latency_a == Latency(total_s=3.5)
    assert record.created_at.tzinfo is not None


def test_fastchat_battles_map_winners_times_and_conversations():
    records = read_battle_records(DATA / "fastchat_battles.json", "fastchat")
    assert [r.winner for r in records] == [
        Winner.MODEL_A,
        Winner.MODEL_B,
        Winner.TIE,
        Winner.BOTH_BAD,
    ]
    simple, released, second_turn, both_bad = records
    assert simple.created_at == datetime.fromtimestamp(1682351591.1322, UTC)
    assert simple.query_transcript is None and simple.latency_a is None
    assert simple.participant_id == "arena_user_1"
    assert simple.session_id == "fastchat:arena_user_1"
    assert released.battle_id == "58210e39b3fd4441a2bd4a518bb44c2d"
    assert released.query_transcript == "What is the difference between OpenCL and CUDA?"
    assert released.reply_b == "OpenCL is an open standard; CUDA is NVIDIA's own platform."
    assert second_turn.battle_id == "2564acd09e3942fd97657d05282d4389-turn2"
    # a vote after two turns is a two-turn battle, each reply with its own length
    assert second_turn.n_turns == 2
    first_reply = "It is possible that they wanted a small ceremony."
    assert second_turn.latency_a == Latency(chars=len(first_reply))
    assert [t.query_transcript for t in second_turn.turns] == [
        "Why did my parent not invite me to their wedding?",
        "And now?",
    ]
    assert [t.reply_a for t in second_turn.turns] == [first_reply, "Talk to them."]
    assert [t.reply_b for t in second_turn.turns] == ["I don't know.", "Ask them why."]
    # the frame's length is what the person read: every reply of the side (FastChat's sum)
    frame = records_to_frame(records).set_index("battle_id")
    assert frame.loc[second_turn.battle_id, "chars_a"] == len(first_reply) + len("Talk to them.")
    assert frame.loc[second_turn.battle_id, "n_turns"] == 2
    assert simple.n_turns == 1 and pd.isna(frame.loc[simple.battle_id, "chars_a"])
    assert both_bad.reply_b == "" and both_bad.latency_b == Latency(chars=0)
    assert all(r.source == "fastchat" for r in records)
    # ids without question_id are derived from content: reading again gives the same ids
    again = read_battle_records(DATA / "fastchat_battles.json", "fastchat")
    assert [r.battle_id for r in again] == [r.battle_id for r in records]


def test_fastchat_json_lines_variant_is_read(tmp_path):
    battles = json.loads((DATA / "fastchat_battles.json").read_text())
    path = tmp_path / "battles.jsonl"
    path.write_text("\n".join(json.dumps(b) for b in battles) + "\n")
    records = read_battle_records(path, "fastchat")
    assert records == read_battle_records(DATA / "fastchat_battles.json", "fastchat")


def test_our_jsonl_keeps_every_field_and_ignores_blank_lines():
    records = read_battle_records(DATA / "battles.jsonl", "jsonl")
    assert len(records) == 4
    first = records[0]
    assert first.reply_a.endswith("Line two\u2028with a line separator.")
    assert first.reply_b == "" and first.error_a is None
    assert first.latency_a.ttft_s == 0.30000000000000004
    assert first.audio_kept is True
    assert records[1].created_at == datetime(2025, 3, 4, 10, 15, 30, tzinfo=UTC)
    assert records[3].source == "jsonl"  # a line without source says where it came from


def _write(tmp_path, name, content) -> Path:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content), "utf-8")
    return path


GOOD_TALK = {"model_a": "a", "model_b": "b", "outcome": 1}
GOOD_FASTCHAT = {"model_a": "a", "model_b": "b", "winner": "tie", "tstamp": 1700000000}
GOOD_LINE = json.dumps(
    {
        "battle_id": "x",
        "created_at": "2025-01-01T00:00:00Z",
        "model_a": "a",
        "model_b": "b",
        "winner": "tie",
    }
)


@pytest.mark.parametrize(
    ("name", "fmt", "content", "message"),
    [
        (
            "votes.json",
            "talk-arena",
            {"_default": {"1": GOOD_TALK, "17": {**GOOD_TALK, "outcome": 0.7}}},
            "votes.json: record 17: field 'outcome': 0.7 is not one of 0, 0.5, 1",
        ),
        (
            "votes.json",
            "talk-arena",
            {"_default": {"k": {**GOOD_TALK, "outcome": True}}},
            "record k: field 'outcome': True is not one of",
        ),
        (
            "votes.json",
            "talk-arena",
            {"_default": {"k": {"model_a": "a", "outcome": 0}}},
            "votes.json: record k: field 'model_b': is missing",
        ),
        (
            "votes.json",
            "talk-arena",
            {"_default": {"k": {**GOOD_TALK, "model_b": "a"}}},
            "record k: field 'model_b': 'a' is the same model as model_a",
        ),
        (
            "votes.json",
            "talk-arena",
            {"_default": {"k": {**GOOD_TALK, "why": 5}}},
            "record k: field 'why': 5: Input should be a valid string",
        ),
        (
            "votes.json",
            "talk-arena",
            {"_default": {"k": {**GOOD_TALK, "model_b_latency": {"total_time": -2}}}},
            "record k: field 'model_b_latency.total_time': -2: Input should be greater",
        ),
        (
            "votes.json",
            "talk-arena",
            {"_default": {"k": {**GOOD_TALK, "model_a_latency": {"ttft": 1}}}},
            "record k: field 'model_a_latency': unknown key 'ttft'",
        ),
        ("votes.json", "talk-arena", [GOOD_TALK], "not a Talk Arena TinyDB file"),
        (
            "votes.json",
            "talk-arena",
            '{"_default": {"a": {"outcome": 0}, "a": {"outcome": 1}}}',
            "key 'a' appears twice",
        ),
        (
            "battles.json",
            "fastchat",
            [GOOD_FASTCHAT, {**GOOD_FASTCHAT, "winner": "draw"}],
            "battles.json: record 2: field 'winner': 'draw' is not one of 'model_a', 'model_b', "
            "'tie', 'tie (bothbad)'",
        ),
        (
            "battles.json",
            "fastchat",
            [{k: v for k, v in GOOD_FASTCHAT.items() if k != "tstamp"}],
            "record 1: field 'tstamp': is missing",
        ),
        (
            "battles.json",
            "fastchat",
            [{**GOOD_FASTCHAT, "tstamp": "yesterday"}],
            "record 1: field 'tstamp': 'yesterday' is not a Unix time",
        ),
        (
            "battles.json",
            "fastchat",
            [{**GOOD_FASTCHAT, "question_id": "q1"}, {**GOOD_FASTCHAT, "question_id": "q1"}],
            "record 2 (q1): field 'question_id': battle id 'q1' is already used by record 1 (q1)",
        ),
        (
            "battles.json",
            "fastchat",
            [{**GOOD_FASTCHAT, "conversation_a": "hi"}],
            "record 1: field 'conversation_a': expected a list",
        ),
        ("battles.json", "fastchat", "[1, 2", "battles.json: invalid JSON at line 1, column 6"),
        (
            "v.jsonl",
            "jsonl",
            GOOD_LINE + "\n" + GOOD_LINE.replace('"tie"', '"model_a", ') + "\n",
            "v.jsonl: invalid JSON at line 2, column",
        ),
        (
            "v.jsonl",
            "jsonl",
            GOOD_LINE + "\n\n" + GOOD_LINE + "\n",
            "v.jsonl: record 3: field 'battle_id': battle id 'x' is already used by record 1",
        ),
        (
            "v.jsonl",
            "jsonl",
            GOOD_LINE + "\n" + GOOD_LINE.replace('"x"', '"y"').replace('"b"', '"a"'),
            "v.jsonl: record 2: field 'model_b': 'a' is the same model as model_a",
        ),
        ("v.jsonl", "jsonl", "[1]\n", "v.jsonl: record 1: field '(record)': expected an object"),
        (
            "v.jsonl",
            "jsonl",
            "\n".join(
                [
                    GOOD_LINE.replace('"x"', '"x", "session_id": "s1"'),
                    GOOD_LINE.replace('"x"', '"y", "session_id": "s1", "participant_id": "p1"'),
                ]
            ),
            "v.jsonl: record 2: field 'participant_id': is 'p1', but session 's1' has no "
            "participant (record 1); every battle of a session needs the same participant_id",
        ),
        (
            "v.jsonl",
            "jsonl",
            "\n".join(
                [
                    GOOD_LINE.replace('"x"', '"x", "session_id": "s1", "participant_id": "p1"'),
                    GOOD_LINE.replace('"x"', '"y", "session_id": "s1"'),
                    GOOD_LINE.replace('"x"', '"z", "session_id": "s1", "participant_id": "p2"'),
                ]
            ),
            "v.jsonl: record 2: field 'participant_id': is null, but session 's1' belongs to "
            "participant 'p1' (record 1)",
        ),
        (
            "v.jsonl",
            "jsonl",
            "\n".join(
                [
                    GOOD_LINE.replace('"x"', '"x", "session_id": "s1"'),
                    GOOD_LINE.replace('"x"', '"y", "session_id": "s1", "participant_id": "p1"'),
                    GOOD_LINE.replace('"x"', '"z", "session_id": "s1", "participant_id": "p2"'),
                ]
            ),
            "record 2: field 'participant_id': is 'p1', but session 's1' has no participant",
        ),
        (
            "v.jsonl",
            "jsonl",
            GOOD_LINE.replace('"tie"', '"tie", "winer": 1'),
            "record 1: field 'winer': is not a field of a battle record",
        ),
    ],
)
def test_bad_files_raise_one_line_errors_naming_file_record_and_field(
    tmp_path, name, fmt, content, message
):
    path = _write(tmp_path, name, content)
    with pytest.raises(InvalidInputError) as info:
        read_battle_records(path, fmt)
    text = str(info.value)
    assert message in text
    assert str(path) in text
    assert "\n" not in text


def test_record_errors_carry_the_record_and_field(tmp_path):
    path = _write(tmp_path, "votes.json", {"_default": {"17": {**GOOD_TALK, "outcome": 0.7}}})
    with pytest.raises(RecordError) as info:
        read_battle_records(path, "talk-arena")
    assert (info.value.record, info.value.field) == ("17", "outcome")


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda tmp: tmp / "missing.jsonl", "no such file"),
        (lambda tmp: tmp, "is a directory"),
        (lambda tmp: _bytes(tmp / "latin1.jsonl", b"\xff\xfe caf\xe9"), "not UTF-8 text"),
        (lambda tmp: _bytes(tmp / "x.parquet", b"not parquet"), "not a readable Parquet file"),
    ],
)
def test_unreadable_files_are_invalid_input(tmp_path, setup, message):
    path = setup(tmp_path)
    fmt = "parquet" if path.suffix == ".parquet" else "jsonl"
    with pytest.raises(InvalidInputError, match=message):
        read_battle_records(path, fmt)


def _bytes(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


def test_unknown_format_lists_the_formats(tmp_path):
    with pytest.raises(InvalidInputError, match="use one of talk-arena, fastchat, jsonl, parquet"):
        read_battle_records(tmp_path / "x", "csv")
