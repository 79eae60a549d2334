"""The columnar loader against the record loader: the same votes, the same errors, byte for byte.

Each case writes a file of valid records with one changed, in JSONL and (where Arrow can hold the
change) Parquet, and reads it both ways: either both loaders fail with the same one-line message,
or both succeed with the same votes.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lamarena.errors import InvalidInputError
from lamarena.store import columnar
from lamarena.store.columnar import read_vote_columns, vote_columns_from_records
from lamarena.store.exporters import write_battle_records
from lamarena.store.importers import read_battle_records
from lamarena.store.records import records_from_frame

MISSING = object()
"""Leave the key out."""

SHA = "ab" * 32


def _good(index: int) -> dict[str, Any]:
    """A full record as ``votes export`` writes it (every field, the first turn repeated)."""
    latency = {"ttft_s": 0.5, "total_s": 2.0, "chars": 120}
    turn = {
        "query_audio_sha256": None,
        "query_transcript": f"question {index}",
        "reply_a": "one",
        "reply_b": "two",
        "latency_a": latency,
        "latency_b": {"ttft_s": 0.25, "total_s": 1.5, "chars": 80},
        "error_a": None,
        "error_b": None,
        "reply_audio_a_sha256": None,
        "reply_audio_b_sha256": None,
        "notice_a": None,
        "notice_b": None,
    }
    return {
        "battle_id": f"battle-{index}",
        "created_at": f"2025-03-0{1 + index % 9}T10:00:0{index % 10}Z",
        "session_id": f"session-{index // 2}",
        "participant_id": f"person-{index // 2}",
        "model_a": ["alpha", "beta", "gamma"][index % 3],
        "model_b": ["beta", "gamma", "alpha"][index % 3],
        "winner": ["model_a", "model_b", "tie", "both_bad"][index % 4],
        **turn,
        "feedback_text": None,
        "audio_kept": False,
        "source": "arena",
        "counted": index % 5 != 4,
        "flags": ["self_identified"] if index % 5 == 4 else [],
        "equal_pace": False,
        "sampling_probability": 0.25,
        "turns": [turn],
        "mode": "text",
        "n_turns": 1,
    }


def _changed(field: str, value: Any) -> dict[str, Any]:
    record = _good(2)
    if value is MISSING:
        record.pop(field)
    else:
        record[field] = value
    return record


def _turn(**changes: Any) -> list[dict[str, Any]]:
    turn = dict(_good(2)["turns"][0])
    turn.update(changes)
    return [turn]


CHANGES: list[tuple[str, Any]] = [
    ("battle_id", ""),
    ("battle_id", " padded"),
    ("battle_id", "padded\u2003"),
    ("battle_id", "nul\x00"),
    ("battle_id", "x" * 129),
    ("battle_id", "x" * 128),
    ("battle_id", None),
    ("battle_id", MISSING),
    ("battle_id", 5),
    ("session_id", ""),
    ("session_id", "s\x1f"),
    ("session_id", None),
    ("participant_id", None),
    ("participant_id", "other-person"),
    ("model_a", "beta"),
    ("model_a", ""),
    ("model_a", "a" * 201),
    ("model_a", "a" * 200),
    ("model_a", " alpha"),
    ("model_a", None),
    ("model_a", MISSING),
    ("model_b", "gamma\n"),
    ("winner", "draw"),
    ("winner", "TIE"),
    ("winner", None),
    ("winner", MISSING),
    ("created_at", "2025-02-30T00:00:00Z"),
    ("created_at", "2024-02-29T23:59:59Z"),
    ("created_at", "2100-02-29T00:00:00Z"),
    ("created_at", "2025-01-01T00:00:00"),
    ("created_at", "2025-01-01"),
    ("created_at", "2025-01-01 10:00:00Z"),
    ("created_at", "2025-01-01T24:00:00Z"),
    ("created_at", "2025-01-01T23:59:60Z"),
    ("created_at", "2025-01-01T00:00:00.1234567Z"),
    ("created_at", "2025-01-01T00:00:00.5+05:30"),
    ("created_at", "2025-01-01T00:00:00-23:59"),
    ("created_at", "2025-01-01T00:00:00+24:00"),
    ("created_at", "0001-01-01T00:30:00+01:00"),
    ("created_at", "0001-01-01T00:30:00-01:00"),
    ("created_at", "9999-12-31T23:00:00-02:00"),
    ("created_at", None),
    ("created_at", MISSING),
    ("latency_a", {"ttft_s": -1.0, "total_s": 2.0, "chars": 3}),
    ("latency_a", {"ttft_s": 0.0, "total_s": -0.0, "chars": 0}),
    ("latency_a", {"ttft_s": 1.0, "total_s": 2.0, "chars": 2**31}),
    ("latency_a", {"ttft_s": 1.0, "total_s": 2.0, "chars": 2**31 - 1}),
    ("latency_a", {"ttft_s": 1.0, "total_s": 2.0, "chars": -1}),
    ("latency_a", {"ttft_s": 1.0, "total_s": 2.0, "chars": 1.5}),
    ("latency_a", {"ttft_s": 1.0, "total_s": 2.0, "chars": 7.0}),
    ("latency_a", {"ttft_s": None, "total_s": None, "chars": None}),
    ("latency_a", {"ttfb": 1.0}),
    ("latency_a", None),
    ("latency_b", {"ttft_s": 1.0, "total_s": 2.0, "chars": 3, "ttfab_s": 0.5, "audio_s": 4.0}),
    ("latency_b", {"ttft_s": 1.0, "total_s": 2.0, "chars": 3, "audio_s": -4.0}),
    ("audio_kept", None),
    ("audio_kept", True),
    ("audio_kept", MISSING),
    ("counted", None),
    ("counted", MISSING),
    ("counted", 1),
    ("source", ""),
    ("source", "s" * 33),
    ("source", None),
    ("source", MISSING),
    ("flags", ["Bad"]),
    ("flags", ["ok", "ok", "fine_2"]),
    ("flags", ["a" * 41]),
    ("flags", ["f" * 39 + str(i) for i in range(6)]),
    ("flags", ["f" * 39 + str(i) for i in range(5)]),
    ("flags", None),
    ("flags", MISSING),
    ("equal_pace", None),
    ("equal_pace", True),
    ("sampling_probability", 0.0),
    ("sampling_probability", 1.5),
    ("sampling_probability", 1),
    ("sampling_probability", None),
    ("sampling_probability", MISSING),
    ("mode", "audio"),
    ("mode", "speech"),
    ("mode", None),
    ("mode", MISSING),
    ("n_turns", 2),
    ("n_turns", None),
    ("n_turns", MISSING),
    ("turns", None),
    ("turns", []),
    ("turns", MISSING),
    ("turns", _turn(query_transcript="something else")),
    ("turns", _turn(query_transcript=None)),
    ("turns", _turn(latency_a={"ttft_s": 9.0, "total_s": 2.0, "chars": 120})),
    ("turns", _turn(notice_a="cut at 30 s")),
    ("turns", _turn(reply_audio_a_sha256="not hex")),
    ("turns", _turn() + _turn(query_transcript="and then?")),
    ("turns", _turn() * 51),
    ("reply_audio_a_sha256", "abc"),
    ("reply_audio_a_sha256", SHA.upper()),
    ("query_audio_sha256", "q" * 129),
    ("feedback_text", "nul \x00 inside"),
    ("feedback_text", "line\u2028separator"),
    ("winer", 1),
]


def _as_line(record: dict[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False)


def _outcome(read: Any) -> tuple[Any, ...]:
    try:
        columns = read()
    except InvalidInputError as exc:
        return ("error", type(exc).__name__, str(exc))
    names = np.array(columns.models, dtype=object)
    return (
        "ok",
        list(names[columns.model_a]),
        list(names[columns.model_b]),
        columns.outcome.tolist(),
        columns.counted.tolist(),
        columns.participant.tolist(),
        columns.session.tolist(),
        [None if math.isnan(p) else p for p in columns.probability.tolist()],
        columns.mode.tolist(),
        columns.n_turns.tolist(),
    )


def _both(path: Path, fmt: str) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    fast = _outcome(lambda: read_vote_columns(path, fmt))
    slow = _outcome(lambda: vote_columns_from_records(read_battle_records(path, fmt)))
    return fast, slow


@pytest.mark.parametrize(
    ("field", "value"), CHANGES, ids=[f"{f}-{i}" for i, (f, _) in enumerate(CHANGES)]
)
def test_jsonl_changes_read_alike(tmp_path, field, value):
    records = [_good(0), _good(1), _changed(field, value), _good(3), _good(4)]
    path = tmp_path / "votes.jsonl"
    path.write_text("\n".join(_as_line(record) for record in records) + "\n", "utf-8")
    fast, slow = _both(path, "jsonl")
    assert fast == slow


def _parquet_cases() -> list[tuple[str, Any]]:
    cases = []
    for field, value in CHANGES:
        rows = [_good(0), _good(1), _changed(field, value), _good(3)]
        try:
            pa.Table.from_pylist(rows)
        except (pa.ArrowException, OverflowError):
            continue  # Arrow cannot hold this change in one column; JSONL covers it
        cases.append((field, value))
    return cases


PARQUET_CASES = _parquet_cases()


@pytest.mark.parametrize(
    ("field", "value"), PARQUET_CASES, ids=[f"{f}-{i}" for i, (f, _) in enumerate(PARQUET_CASES)]
)
def test_parquet_changes_read_alike(tmp_path, field, value):
    rows = [_good(0), _good(1), _changed(field, value), _good(3)]
    path = tmp_path / "votes.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    fast, slow = _both(path, "parquet")
    assert fast == slow


def test_most_changes_are_errors_and_the_fast_path_reads_valid_files(tmp_path):
    # the corpus must exercise rejections, and a valid file must not fall back to records
    errors = 0
    for index, (field, value) in enumerate(CHANGES):
        path = tmp_path / f"v{index}.jsonl"
        records = [_good(0), _changed(field, value)]
        path.write_text("\n".join(_as_line(record) for record in records), "utf-8")
        errors += _outcome(lambda p=path: read_vote_columns(p, "jsonl"))[0] == "error"
    assert errors > 60
    good = tmp_path / "good.jsonl"
    good.write_text("\n".join(_as_line(_good(i)) for i in range(10)), "utf-8")
    assert read_vote_columns(good, "jsonl").fast
    table = pa.Table.from_pylist([_good(i) for i in range(10)])
    pq.write_table(table, tmp_path / "good.parquet")
    assert read_vote_columns(tmp_path / "good.parquet", "parquet").fast


GOOD_LINE = _as_line(_good(0))


@pytest.mark.parametrize(
    "content",
    [
        GOOD_LINE + "\n" + GOOD_LINE.replace('"tie"', '"model_a", ') + "\n",
        GOOD_LINE + "\n\n" + GOOD_LINE + "\n",  # a reused battle id
        _as_line(_good(0)) + "\n" + _as_line({**_good(1), "session_id": "session-0"}),
        "[1]\n",
        _as_line(_good(0))[:-1] + ', "winner": "tie"}\n',  # a key twice
        "\ufeff" + GOOD_LINE + "\r\n" + _as_line(_good(1)) + "\r\n",
        GOOD_LINE + "\n   \n\t\n" + _as_line(_good(1)),
        GOOD_LINE.replace('"question 0"', '"\\ud800"'),
        GOOD_LINE.replace('"one"', "NaN"),
        GOOD_LINE.replace('"sampling_probability": 0.25', '"sampling_probability": NaN'),
        GOOD_LINE.replace('"sampling_probability": 0.25', '"sampling_probability": 1e400'),
        _as_line(_good(0)) + "\n" + _as_line({**_good(1), "battle_id": 7}),
        "",
    ],
)
def test_whole_file_problems_read_alike(tmp_path, content):
    path = tmp_path / "votes.jsonl"
    path.write_text(content, "utf-8")
    fast, slow = _both(path, "jsonl")
    assert fast == slow


def test_bytes_that_are_not_utf8_read_alike(tmp_path):
    path = tmp_path / "votes.jsonl"
    path.write_bytes(
        GOOD_LINE.replace("question 0", "caf\udce9").encode("utf-8", "surrogateescape")
    )
    fast, slow = _both(path, "jsonl")
    assert fast == slow and fast[0] == "error" and "not UTF-8" in fast[2]


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_missing_files_read_alike(tmp_path, fmt):
    fast, slow = _both(tmp_path / f"absent.{fmt}", fmt)
    assert fast == slow and fast[0] == "error"


def test_an_export_reads_the_same_both_ways(tmp_path):
    import pandas as pd

    frame = pd.DataFrame(
        {
            "model_a": ["a", "b", "c", "a"] * 5,
            "model_b": ["b", "c", "a", "c"] * 5,
            "winner": ["model_a", "tie", "model_b", "both_bad"] * 5,
            "participant_id": [None, "p1", None, "p2"] * 5,
            "session_id": ["s0", "s1", "s2", "s3"] * 5,
            "sampling_probability": [0.5, 0.25, 1.0, 0.5] * 5,
        }
    )
    records = records_from_frame(frame)
    for suffix in (".jsonl", ".parquet"):
        path = tmp_path / f"export{suffix}"
        write_battle_records(records, path)
        fast, slow = _both(path, suffix[1:])
        assert fast[0] == "ok"
        assert fast == slow
        assert read_vote_columns(path, suffix[1:]).fast


@pytest.mark.parametrize("part_rows", [2, 3])
def test_checks_in_parts_mark_the_rows_the_whole_table_marks(tmp_path, monkeypatch, part_rows):
    # a big file's rows are checked in slices on several threads: every change, at a slice's
    # edge or inside one, in one chunk or across chunks, must be marked as on the whole table
    monkeypatch.setattr(columnar, "_PART_ROWS", part_rows)
    monkeypatch.setattr(columnar, "CPU_THREADS", 2)
    marked = 0
    for index, (field, value) in enumerate(CHANGES):
        records = [_good(0), _good(1), _changed(field, value), _good(3), _changed(field, value)]
        path = tmp_path / f"v{index}.jsonl"
        path.write_text("\n".join(_as_line(record) for record in records) + "\n", "utf-8")
        try:
            table = columnar._read_table(path, "jsonl")
            columnar._check_schema(table)
        except columnar._Unreadable:
            continue  # the record loader reads this file; nothing is checked in parts
        chunked = pa.concat_tables([table.slice(0, 3), table.slice(3)])
        whole = columnar._suspect_rows(table)
        for version in (table, chunked):
            assert columnar._suspect_in_parts(version).tolist() == whole.tolist(), (field, value)
        marked += bool(whole.any())
    assert marked > 60
