"""Battles carry their pair's chance when drawn: through the store, the files and the frame."""

import json

import pytest

from lamarena.errors import RecordError
from lamarena.simulation import parse_strengths, simulate_battles
from lamarena.store import records_from_frame, write_battle_records
from lamarena.store.importers import read_battle_records
from lamarena.store.votes import export_votes, import_votes, load_battles_frame


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_sampling_probability_round_trips_through_both_formats(databases, tmp_path, suffix):
    battles = simulate_battles(parse_strengths("4"), 60, seed=2, sampling="active")
    written = tmp_path / "simulated.jsonl"
    write_battle_records(records_from_frame(battles), written)
    first, second = databases.engine(), databases.engine()
    import_votes(first, written, "jsonl")
    export_votes(first, tmp_path / f"one{suffix}")
    import_votes(second, tmp_path / f"one{suffix}", suffix.removeprefix("."))
    again = read_battle_records(tmp_path / f"one{suffix}", suffix.removeprefix("."))
    expected = dict(zip(
        [record.battle_id for record in read_battle_records(written, "jsonl")],
        battles["sampling_probability"],
        strict=True,
    ))  # fmt: skip
    assert {record.battle_id: record.sampling_probability for record in again} == expected
    frame = load_battles_frame(second)
    assert dict(zip(frame["battle_id"], frame["sampling_probability"], strict=True)) == expected


def test_a_file_without_probabilities_imports_with_none(engine, tmp_path):
    battles = simulate_battles(parse_strengths("3"), 5, seed=1).drop(columns="sampling_probability")
    path = tmp_path / "old.jsonl"
    write_battle_records(records_from_frame(battles), path)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    for line in lines:
        del line["sampling_probability"]  # as written before the field existed
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    import_votes(engine, path, "jsonl")
    assert load_battles_frame(engine)["sampling_probability"].isna().all()


@pytest.mark.parametrize("value", [0.0, 1.5, -0.1])
def test_a_probability_outside_zero_one_is_refused(tmp_path, value):
    path = tmp_path / "bad.jsonl"
    battles = simulate_battles(parse_strengths("3"), 1, seed=1)
    write_battle_records(records_from_frame(battles), path)
    line = json.loads(path.read_text())
    line["sampling_probability"] = value
    path.write_text(json.dumps(line) + "\n")
    with pytest.raises(RecordError, match="sampling_probability"):
        read_battle_records(path, "jsonl")
