"""A folder of vote shards reads as one file of their records, in one process or on a cluster.

A 1,500-vote study-like file is split into four Parquet (and JSONL) shards; the merged columns
must equal the columns of the whole file, row by row and code by code, read here or by the
workers of a ``distributed.LocalCluster`` over TCP (started once for the module), and the
leaderboard of the folder (with and without ``--scheduler``) must equal that of the file.
Clashes across shards and a bad shard give one-line errors naming the shard.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from distributed import LocalCluster

from helpers.cli import run_cli as run_lamarena
from helpers.servers import unused_port
from helpers.study_votes import study_frame
from lamarena.cli.analyze import load_battles_with_feedback
from lamarena.cli.common import VoteFormat
from lamarena.errors import ConfigError, InvalidInputError, RecordError
from lamarena.settings import load_settings
from lamarena.store import shards
from lamarena.store.columnar import VoteColumns, read_vote_columns, vote_columns_from_records
from lamarena.store.columnar_store import read_store_columns
from lamarena.store.exporters import write_battle_records
from lamarena.store.importers import read_battle_records
from lamarena.store.records import BattleRecord, records_from_frame
from lamarena.store.shards import read_shard_frame, read_vote_shards
from lamarena.store.votes import import_votes, load_battles_frame

SPLITS = ((0, 200), (200, 650), (650, 1000), (1000, 1500))
"""Uneven shards: sessions and participants run across their edges."""


def _study_records() -> list[BattleRecord]:
    """1,500 study-like votes: participants (some without id), unequal probabilities, flags."""
    return records_from_frame(study_frame(1500))


@pytest.fixture(scope="module")
def records() -> list[BattleRecord]:
    return _study_records()


@pytest.fixture(scope="module")
def whole(tmp_path_factory: pytest.TempPathFactory, records: list[BattleRecord]) -> Path:
    path = tmp_path_factory.mktemp("whole") / "votes.jsonl"
    write_battle_records(records, path)
    return path


def _write_shards(folder: Path, parts: list[list[BattleRecord]], fmt: str) -> list[Path]:
    """Shards ``part-0.<fmt>`` ... written last first (the folder's order must not matter)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"part-{index}.{fmt}" for index in range(len(parts))]
    for path, part in reversed(list(zip(paths, parts, strict=True))):
        write_battle_records(part, path)
    return paths


@pytest.fixture(scope="module")
def parquet_folder(tmp_path_factory: pytest.TempPathFactory, records: list[BattleRecord]) -> Path:
    folder = tmp_path_factory.mktemp("parquet-shards")
    paths = _write_shards(folder, [records[a:b] for a, b in SPLITS], "parquet")
    # one shard with other column types (large strings): the merge must not care
    table = pq.read_table(paths[1])
    index = table.schema.get_field_index("battle_id")
    ids = table.column("battle_id").cast(pa.large_string())
    pq.write_table(table.set_column(index, pa.field("battle_id", pa.large_string()), ids), paths[1])
    (folder / "README.txt").write_text("not a shard")
    (folder / ".part-9.parquet").write_text("a writer's temporary file, skipped")
    return folder


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    with LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        protocol="tcp",
        host="127.0.0.1",
        dashboard_address=None,
    ) as local:
        yield local


def _rows(columns: VoteColumns) -> dict[str, list[Any]]:
    """Every vote decoded to names, and the codes and name tuples themselves."""
    models = np.array(columns.models, dtype=object)

    def named(codes: np.ndarray, names: tuple[str, ...]) -> list[str | None]:
        return [None if code < 0 else names[code] for code in codes.tolist()]

    return {
        "model_a": list(models[columns.model_a]),
        "model_b": list(models[columns.model_b]),
        "participant": named(columns.participant, columns.participants),
        "session": named(columns.session, columns.sessions),
        "battle_id": columns.battle_ids.to_pylist(),
        "outcome": columns.outcome.tolist(),
        "counted": columns.counted.tolist(),
        "probability": [None if math.isnan(p) else p for p in columns.probability.tolist()],
        "mode": columns.mode.tolist(),
        "n_turns": columns.n_turns.tolist(),
        "codes": [
            columns.model_a.tolist(),
            columns.model_b.tolist(),
            columns.participant.tolist(),
            columns.session.tolist(),
        ],
        "names": [columns.models, columns.participants, columns.sessions],
    }


def test_parquet_shards_merge_into_the_whole_files_columns(parquet_folder, whole, records):
    merged = read_vote_shards(parquet_folder, "parquet")
    expected = read_vote_columns(whole, "jsonl")
    assert len(merged) == len(records) == 1500
    assert _rows(merged) == _rows(expected)
    assert merged.fast and expected.fast
    # the shards really split sessions and participants: codes had to be renumbered
    first = read_vote_columns(parquet_folder / "part-1.parquet", "parquet")
    assert first.session[0] == 0 and merged.session[200] > 0
    assert merged.battle_ids.to_pylist() == [record.battle_id for record in records]


def test_jsonl_shards_merge_into_the_whole_files_columns(tmp_path, whole, records):
    _write_shards(tmp_path, [records[a:b] for a, b in SPLITS], "jsonl")
    merged = read_vote_shards(tmp_path, "jsonl")
    assert _rows(merged) == _rows(read_vote_columns(whole, "jsonl"))


def test_models_are_numbered_as_in_one_file(tmp_path, records):
    # one file numbers model_a's names first, then model_b's: not shard by shard
    pairs = [("m0", "m1"), ("m2", "m0"), ("m3", "m4")]
    parts = [
        [records[i].model_copy(update={"model_a": a, "model_b": b})]
        for i, (a, b) in enumerate(pairs)
    ]
    _write_shards(tmp_path / "shards", parts, "parquet")
    write_battle_records([part[0] for part in parts], tmp_path / "one.parquet")
    merged = read_vote_shards(tmp_path / "shards", "parquet")
    assert merged.models == ("m0", "m2", "m3", "m1", "m4")
    assert _rows(merged) == _rows(read_vote_columns(tmp_path / "one.parquet", "parquet"))


def test_the_columns_of_every_path_name_the_same_votes(engine, whole, records):
    fast = read_vote_columns(whole, "jsonl")
    slow = vote_columns_from_records(read_battle_records(whole, "jsonl"))
    assert fast.fast and not slow.fast
    assert _rows(fast) == _rows(slow)
    import_votes(engine, whole, "jsonl")
    stored = read_store_columns(engine, include_uncounted=True)
    frame = load_battles_frame(engine, include_uncounted=True)
    decoded = _rows(stored)
    assert decoded["battle_id"] == frame["battle_id"].tolist()
    assert decoded["session"] == [None if s != s else s for s in frame["session_id"]]
    assert sorted(decoded["battle_id"]) == sorted(record.battle_id for record in records)


def test_take_keeps_names_and_ids_with_their_votes(whole):
    columns = read_vote_columns(whole, "jsonl")
    mask = (np.arange(len(columns)) % 3 == 1) & columns.counted
    kept = columns.take(mask)
    everything = _rows(columns)
    for name in ("model_a", "participant", "session", "battle_id", "outcome"):
        assert _rows(kept)[name] == [v for v, m in zip(everything[name], mask, strict=True) if m]
    assert kept.session.max() + 1 == len(kept.sessions) < len(columns.sessions)
    assert len(set(kept.participants)) == len(kept.participants)


def test_a_folder_is_read_on_the_cluster_as_in_one_process(cluster, parquet_folder):
    here = read_vote_shards(parquet_folder, "parquet")
    there = read_vote_shards(parquet_folder, "parquet", scheduler=cluster.scheduler_address)
    assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
    assert _rows(there) == _rows(here)
    assert there.fast


run_cli = partial(run_lamarena, timeout_s=180)


def _leaderboard(votes: Path, fmt: str, *extra: str, cwd: Path) -> dict[str, Any]:
    options = ("--from", fmt, "--json", "--bootstrap", "200", "--seed", "3", *extra)
    result = run_cli("leaderboard", "--votes", votes, *options, cwd=cwd)
    assert result.returncode == 0, result.stderr
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def test_the_leaderboard_of_a_folder_on_the_cluster_is_the_files(
    cluster, parquet_folder, whole, tmp_path
):
    spread = _leaderboard(
        parquet_folder, "parquet", "--scheduler", cluster.scheduler_address, cwd=tmp_path
    )
    local = _leaderboard(parquet_folder, "parquet", cwd=tmp_path)
    single = _leaderboard(whole, "jsonl", cwd=tmp_path)
    assert spread == local == single
    assert spread["n_battles"] == sum(record.counted for record in _study_records())


def test_the_analysis_frame_of_a_folder_on_the_cluster_is_the_files(cluster, parquet_folder, whole):
    settings = load_settings()
    expected = load_battles_with_feedback(settings, whole, VoteFormat.JSONL)
    there = load_battles_with_feedback(
        settings, parquet_folder, VoteFormat.PARQUET, scheduler=cluster.scheduler_address
    )
    assert there.columns.tolist() == expected.columns.tolist()
    assert there.equals(expected)
    full = read_shard_frame(parquet_folder, "parquet")
    assert len(full) == 1500 and not full["counted"].all()


def _one_line(error: pytest.ExceptionInfo[InvalidInputError]) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_a_battle_id_used_by_two_shards_names_both(tmp_path, records, fmt):
    parts = [records[a:b] for a, b in SPLITS]
    reused = parts[0][5].battle_id
    parts[2][7] = parts[2][7].model_copy(update={"battle_id": reused})
    paths = _write_shards(tmp_path, parts, fmt)
    if fmt == "jsonl":  # blank lines: the record is named by its line, as the loader does
        paths[2].write_text("\n\n" + paths[2].read_text())
    label = "10" if fmt == "jsonl" else "8"
    with pytest.raises(RecordError) as error:
        read_vote_shards(tmp_path, fmt)
    assert _one_line(error) == (
        f"{paths[2]}: record {label}: field 'battle_id': battle id {reused!r} is already used "
        f"by record 6 of {paths[0]}"
    )
    with pytest.raises(RecordError) as again:
        read_shard_frame(tmp_path, fmt)
    assert str(again.value) == str(error.value)


def test_a_session_split_between_participants_across_shards_names_both(tmp_path, records):
    parts = [records[a:b] for a, b in SPLITS]
    parts[1][3] = parts[1][3].model_copy(
        update={"session_id": "shared-session", "participant_id": None}
    )
    parts[3][40] = parts[3][40].model_copy(
        update={"session_id": "shared-session", "participant_id": "someone-else"}
    )
    paths = _write_shards(tmp_path, parts, "parquet")
    expected = (
        f"{paths[3]}: record 41: field 'participant_id': is 'someone-else', but session "
        f"'shared-session' has no participant (record 4 of {paths[1]}); every battle of a "
        "session needs the same participant_id"
    )
    with pytest.raises(RecordError) as error:
        read_vote_shards(tmp_path, "parquet")
    assert _one_line(error) == expected
    with pytest.raises(RecordError) as again:
        read_shard_frame(tmp_path, "parquet")
    assert str(again.value) == expected


def test_the_first_clash_in_shard_order_is_named(tmp_path, records):
    parts = [records[a:b] for a, b in SPLITS]
    parts[3][2] = parts[3][2].model_copy(update={"battle_id": parts[0][0].battle_id})
    parts[2][9] = parts[2][9].model_copy(
        update={"session_id": parts[1][0].session_id, "participant_id": "intruder"}
    )
    paths = _write_shards(tmp_path, parts, "parquet")
    with pytest.raises(RecordError) as error:
        read_vote_shards(tmp_path, "parquet")
    assert str(error.value).startswith(f"{paths[2]}: record 10: field 'participant_id': ")


def _break_one_row(path: Path, row: int, **changes: Any) -> None:
    table = pq.read_table(path)
    rows = table.to_pylist()
    rows[row].update(changes)
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), path)


def test_a_bad_record_in_one_shard_gives_that_shards_error(tmp_path, records, cluster):
    parts = [records[a:b] for a, b in SPLITS]
    paths = _write_shards(tmp_path, parts, "parquet")
    _break_one_row(paths[2], 11, winner="draw")
    _break_one_row(paths[3], 2, model_b=parts[3][2].model_a)  # a later bad shard: not named
    with pytest.raises(RecordError) as own:
        read_vote_columns(paths[2], "parquet")
    assert str(own.value).startswith(f"{paths[2]}: record 12: field 'winner'")
    with pytest.raises(RecordError) as here:
        read_vote_shards(tmp_path, "parquet")
    assert _one_line(here) == str(own.value)
    with pytest.raises(RecordError) as there:
        read_vote_shards(tmp_path, "parquet", scheduler=cluster.scheduler_address)
    assert str(there.value) == str(own.value)
    assert (there.value.source, there.value.field) == (str(paths[2]), "winner")


def test_a_shard_that_is_not_parquet_gives_its_own_error(tmp_path, records, cluster):
    paths = _write_shards(tmp_path, [records[:10], records[10:20]], "parquet")
    paths[1].write_bytes(b"not parquet at all")
    with pytest.raises(InvalidInputError) as own:
        read_battle_records(paths[1], "parquet")
    with pytest.raises(InvalidInputError) as there:
        read_vote_shards(tmp_path, "parquet", scheduler=cluster.scheduler_address)
    assert str(there.value) == str(own.value) and str(paths[1]) in str(own.value)


def test_folders_without_shards_are_refused_with_a_way_out(tmp_path):
    with pytest.raises(InvalidInputError, match="no such folder of vote shards"):
        read_vote_shards(tmp_path / "absent")
    with pytest.raises(InvalidInputError, match=r"no \*\.parquet shard in this folder; write"):
        read_vote_shards(tmp_path)
    (tmp_path / "votes.jsonl").write_text("")
    with pytest.raises(InvalidInputError, match=r"it holds \.jsonl files.*give --from"):
        read_vote_shards(tmp_path, "parquet")
    with pytest.raises(InvalidInputError, match="not a folder"):
        read_vote_shards(tmp_path / "votes.jsonl", "jsonl")
    with pytest.raises(InvalidInputError, match="jsonl or parquet files, not fastchat"):
        read_vote_shards(tmp_path, "fastchat")


def test_an_unreachable_scheduler_is_a_config_error(parquet_folder, monkeypatch):
    monkeypatch.setattr(shards, "CONNECT_TIMEOUT_S", 1.0)
    with pytest.raises(ConfigError, match="cannot reach the Dask scheduler"):
        read_vote_shards(parquet_folder, scheduler=f"tcp://127.0.0.1:{unused_port()}")
