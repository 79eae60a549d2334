import math
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from lamarena.errors import InvalidInputError, RecordError
from lamarena.store.records import (
    FRAME_COLUMNS,
    BattleRecord,
    Latency,
    Winner,
    record_error_from_validation,
    records_from_frame,
    records_to_frame,
)

BASE = {
    "battle_id": "b1",
    "created_at": "2025-01-02T03:04:05.000006Z",
    "model_a": "gpt4o",
    "model_b": "qwen2",
    "winner": "model_a",
}


def _error(**changes) -> RecordError:
    fields = {**BASE, **changes}
    fields = {key: value for key, value in fields.items() if value is not ...}
    with pytest.raises(ValidationError) as info:
        BattleRecord.model_validate(fields)
    return record_error_from_validation("votes.jsonl", "7", info.value)


def test_minimal_record_has_documented_defaults():
    record = BattleRecord.model_validate(BASE)
    assert record.winner is Winner.MODEL_A
    assert record.created_at == datetime(2025, 1, 2, 3, 4, 5, 6, tzinfo=UTC)
    assert record.session_id is None and record.latency_a is None
    assert record.audio_kept is False and record.source == "arena"
    assert record.counted is True and record.flags == [] and record.equal_pace is False


def test_created_at_is_converted_to_utc():
    record = BattleRecord.model_validate({**BASE, "created_at": "2025-01-02T05:04:05+02:00"})
    assert record.created_at.tzinfo is UTC
    assert record.created_at.hour == 3


def test_empty_latency_becomes_none_and_partial_latency_is_kept():
    record = BattleRecord.model_validate(
        {**BASE, "latency_a": {}, "latency_b": {"ttft_s": None, "chars": 3}}
    )
    assert record.latency_a is None
    assert record.latency_b == Latency(chars=3)


@pytest.mark.parametrize(
    ("changes", "field", "problem"),
    [
        ({"model_b": "gpt4o"}, "model_b", "same model as model_a"),
        ({"model_a": ""}, "model_a", "at least 1 character"),
        ({"model_a": " gpt4o"}, "model_a", "white space"),
        ({"winner": "draw"}, "winner", "'draw': Input should be 'model_a'"),
        ({"winner": ...}, "winner", "is missing"),
        ({"created_at": "2025-01-02T03:04:05"}, "created_at", "timezone"),
        ({"latency_a": {"ttft_s": -1}}, "latency_a.ttft_s", "greater than or equal to 0"),
        ({"latency_a": {"total_s": float("nan")}}, "latency_a.total_s", "finite"),
        ({"latency_a": {"chars": 1.5}}, "latency_a.chars", "integer"),
        ({"latency_a": {"chars": 2**31}}, "latency_a.chars", "less than or equal to 2147483647"),
        ({"latency_b": {"chars": -1}}, "latency_b.chars", "greater than or equal to 0"),
        ({"latency_b": {"ttft_s": float("inf")}}, "latency_b.ttft_s", "finite"),
        ({"latency_b": {"total_s": -1e-300}}, "latency_b.total_s", "greater than or equal"),
        (
            {"created_at": "0001-01-01T00:00:00+01:00"},
            "created_at",
            "0001-01-01T00:00:00+01:00 is outside years 1 to 9999 once converted to UTC",
        ),
        ({"created_at": "9999-12-31T23:59:59-00:01"}, "created_at", "outside years 1 to 9999"),
        ({"winer": "tie"}, "winer", "is not a field of a battle record"),
        ({"participant_id": "p1"}, "participant_id", "needs a session_id"),
        ({"audio_kept": True}, "audio_kept", "needs a session_id"),
        ({"audio_kept": "yes"}, "audio_kept", "valid boolean"),
        ({"reply_a": "a\x00b"}, "reply_a", "NUL character"),
        ({"feedback_text": "\ud800"}, "feedback_text", "lone surrogate"),
        ({"battle_id": "x" * 129}, "battle_id", "at most 128"),
        ({"counted": "no"}, "counted", "valid boolean"),
        ({"counted": None}, "counted", "valid boolean"),
        ({"equal_pace": 1}, "equal_pace", "valid boolean"),
        ({"flags": "self_identified"}, "flags", "valid list"),
        ({"flags": ["Self"]}, "flags", "'Self' is not a short identifier"),
        ({"flags": ["a,b"]}, "flags", "'a,b' is not a short identifier"),
        ({"flags": [""]}, "flags", "'' is not a short identifier"),
        ({"flags": ["x" * 41]}, "flags", "is not a short identifier"),
        ({"flags": [f"flag_{n:035d}" for n in range(6)]}, "flags", "longer than 200"),
    ],
)
def test_invalid_records_give_one_line_errors_naming_the_field(changes, field, problem):
    error = _error(**changes)
    message = str(error)
    assert message.startswith(f"votes.jsonl: record 7: field '{field}': ")
    assert problem in message
    assert "\n" not in message
    assert error.field == field


def test_latency_bounds_fit_every_database():
    top = Latency(ttft_s=5e-324, total_s=1.7976931348623157e308, chars=2**31 - 1)
    assert top.chars == 2147483647
    zero = Latency(ttft_s=-0.0, total_s=0.0)
    assert math.copysign(1.0, zero.ttft_s) == 1.0  # SQLite cannot keep -0.0: store 0.0


def test_error_message_field_names_can_be_renamed():
    with pytest.raises(ValidationError) as info:
        BattleRecord.model_validate({**BASE, "latency_a": {"ttft_s": "slow"}})
    error = record_error_from_validation(
        "v.json", "k", info.value, field_names={"latency_a": "model_a_latency"}
    )
    assert error.field == "model_a_latency.ttft_s"


def test_flags_are_kept_sorted_and_unique():
    record = BattleRecord.model_validate(
        {**BASE, "flags": ["self_identified", "duplicate_audio", "self_identified"]}
    )
    assert record.flags == ["duplicate_audio", "self_identified"]
    assert BattleRecord.model_validate(record.model_dump()) == record


def _records() -> list[BattleRecord]:
    return [
        BattleRecord.model_validate(
            {
                **BASE,
                "latency_a": {"ttft_s": 0.5, "total_s": 1.5, "chars": 10},
                "query_transcript": "hello",
            }
        ),
        BattleRecord.model_validate(
            {
                **BASE,
                "battle_id": "b2",
                "winner": "both_bad",
                "latency_b": {"total_s": 2.0},
                "counted": False,
                "flags": ["self_identified"],
            }
        ),
    ]


def test_records_to_frame_has_documented_columns_and_nan_where_unknown():
    frame = records_to_frame(_records())
    assert tuple(frame.columns) == FRAME_COLUMNS
    assert frame["winner"].tolist() == ["model_a", "both_bad"]
    assert frame["chars_a"].tolist()[0] == 10.0 and np.isnan(frame["chars_a"].tolist()[1])
    assert np.isnan(frame.loc[0, "total_b_s"]) and frame.loc[1, "total_b_s"] == 2.0
    assert pd.isna(frame.loc[1, "query_transcript"])
    assert str(frame["created_at"].dtype) == "datetime64[us, UTC]"
    assert frame["ttft_a_s"].dtype == np.float64
    assert frame["counted"].tolist() == [True, False] and frame["counted"].dtype == np.bool_


def test_records_to_frame_of_nothing_has_the_columns_and_types():
    frame = records_to_frame([])
    assert tuple(frame.columns) == FRAME_COLUMNS and frame.empty
    assert str(frame["created_at"].dtype) == "datetime64[us, UTC]"
    assert frame["chars_b"].dtype == np.float64
    assert frame["counted"].dtype == np.bool_


def test_records_from_frame_round_trips_the_frame_columns():
    frame = records_to_frame(_records())
    again = records_to_frame(records_from_frame(frame))
    # records without a session get one generated (deterministic), every other column returns
    generated = frame["session_id"].isna()
    assert again.loc[generated, "session_id"].notna().all()
    assert (again.loc[~generated, "session_id"] == frame.loc[~generated, "session_id"]).all()
    pd.testing.assert_frame_equal(
        again.drop(columns="session_id"), frame.drop(columns="session_id")
    )


def test_records_from_frame_generates_deterministic_ids_times_and_sessions():
    frame = pd.DataFrame(
        {
            "model_a": ["a", "b", "c"],
            "model_b": ["b", "c", "a"],
            "winner": ["model_a", "tie", "model_b"],
            "chars_a": [np.int64(12), np.nan, 3.0],
            "ttft_a_s": [0.25, None, np.float64(1.5)],
        }
    )
    first = records_from_frame(frame, battles_per_session=2)
    second = records_from_frame(frame, battles_per_session=2)
    other = records_from_frame(frame, namespace="simulate-seed-2", battles_per_session=2)
    assert first == second
    assert {r.battle_id for r in first}.isdisjoint({r.battle_id for r in other})
    assert len({r.battle_id for r in first}) == 3
    assert first[0].session_id == first[1].session_id != first[2].session_id
    assert first[1].created_at - first[0].created_at == timedelta(seconds=30)
    assert first[0].created_at.tzinfo is not None
    assert first[0].latency_a == Latency(ttft_s=0.25, chars=12)
    assert first[1].latency_a is None
    assert all(r.source == "simulate" for r in first)


def test_records_from_frame_keeps_given_ids_and_times():
    start = datetime(2024, 6, 1, tzinfo=timezone(timedelta(hours=1)))
    frame = pd.DataFrame(
        {
            "battle_id": ["x1"],
            "created_at": [pd.Timestamp("2024-06-01T10:00:00Z")],
            "model_a": ["a"],
            "model_b": ["b"],
            "winner": [Winner.TIE],
        }
    )
    (record,) = records_from_frame(frame, start=start, source="arena")
    assert record.battle_id == "x1"
    assert record.created_at == datetime(2024, 6, 1, 10, tzinfo=UTC)
    assert record.source == "arena"


def test_records_from_frame_names_the_bad_row_and_field():
    frame = pd.DataFrame({"model_a": ["a", "b"], "model_b": ["b", "b"], "winner": ["tie", "tie"]})
    with pytest.raises(RecordError, match=r"record 2: field 'model_b': 'b' is the same model"):
        records_from_frame(frame)


def test_records_from_frame_needs_the_three_columns():
    with pytest.raises(InvalidInputError, match="missing column"):
        records_from_frame(pd.DataFrame({"model_a": ["a"], "model_b": ["b"]}))
