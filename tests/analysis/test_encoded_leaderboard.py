"""Leaderboards of votes loaded as integer columns equal those of the per-battle DataFrame.

The columnar paths (a JSONL or Parquet file through ``store.columnar``, the database through one
lean ``SELECT``) must give the same document, to the seed, as the record loader's DataFrame for
every option a leaderboard takes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from helpers.study_votes import study_frame
from lamarena.analysis.encoded import encode_columns, encode_counts, encode_frame
from lamarena.analysis.ranking.leaderboard import build_leaderboard
from lamarena.errors import InvalidInputError
from lamarena.simulation.battles import simulate_battles
from lamarena.store.columnar import VoteColumns, read_vote_columns
from lamarena.store.columnar_store import read_store_columns
from lamarena.store.exporters import write_battle_records
from lamarena.store.importers import read_battle_records
from lamarena.store.records import records_from_frame, records_to_frame
from lamarena.store.votes import import_votes, load_battles_frame

OPTIONS: list[dict[str, Any]] = [
    {},
    {"cluster": "none"},
    {"cluster": "session"},
    {"ci": "analytic"},
    {"ci": "analytic", "cluster": "none"},
    {"weights": "ipw"},
    {"weights": "ipw", "cluster": "none"},
    {"ties": "davidson"},
    {"anchor": "m1", "holm_head_to_head": True},
]


def _votes(tmp_path: Path) -> Path:
    """A study-like file: participants (some without an id), unequal pair probabilities, flags."""
    path = tmp_path / "votes.jsonl"
    write_battle_records(records_from_frame(study_frame(700)), path)
    return path


def _columns_encoded(columns: VoteColumns) -> Any:
    kept = columns.take(columns.counted)
    return encode_columns(kept)


@pytest.mark.parametrize("options", OPTIONS, ids=[str(o) for o in OPTIONS])
def test_file_columns_rank_like_the_records(tmp_path, options):
    path = _votes(tmp_path)
    frame = records_to_frame(read_battle_records(path, "jsonl"))
    frame = frame[frame["counted"]].reset_index(drop=True)
    settings = {"n_resamples": 300, "seed": 4, **options}
    expected = build_leaderboard(frame, **settings).to_dict()
    assert (
        build_leaderboard(_columns_encoded(read_vote_columns(path, "jsonl")), **settings).to_dict()
        == expected
    )
    parquet = tmp_path / "votes.parquet"
    write_battle_records(read_battle_records(path, "jsonl"), parquet)
    assert (
        build_leaderboard(
            _columns_encoded(read_vote_columns(parquet, "parquet")), **settings
        ).to_dict()
        == expected
    )


def test_database_columns_rank_like_the_frame(engine, tmp_path):
    import_votes(engine, _votes(tmp_path), "jsonl")
    frame = load_battles_frame(engine)
    columns = read_store_columns(engine)
    assert len(columns) == len(frame)
    for options in ({}, {"ci": "analytic"}, {"weights": "ipw"}):
        settings = {"n_resamples": 200, "seed": 9, **options}
        assert (
            build_leaderboard(_columns_encoded(columns), **settings).to_dict()
            == build_leaderboard(frame, **settings).to_dict()
        )
    everything = read_store_columns(engine, include_uncounted=True)
    assert len(everything) > len(columns) and not everything.counted.all()


def test_counts_rank_like_the_battles_they_count():
    frame = simulate_battles(
        {"a": 1090.0, "b": 1000.0, "c": 910.0, "d": 1040.0}, 400, seed=2, votes_per_participant=10
    ).drop(columns="sampling_probability")  # counts keep no probability
    encoded = encode_frame(frame)
    # aggregate per (participant, model_a, model_b, outcome), clusters in order of first vote
    keys = pd.DataFrame(
        {
            "cluster": "p:" + frame["participant_id"].astype(str),
            "a": frame["model_a"],
            "b": frame["model_b"],
            "outcome": encoded.outcome,
        }
    )
    grouped = keys.groupby(["cluster", "a", "b", "outcome"], sort=False).size().reset_index()
    counts = encode_counts(
        model_a=grouped["a"].tolist(),
        model_b=grouped["b"].tolist(),
        outcome=grouped["outcome"].to_numpy(np.int8),
        count=grouped[0].to_numpy(np.int64),
        cluster_key=grouped["cluster"].tolist(),
        mode=np.zeros(len(grouped), np.int8),
        n_turns=np.ones(len(grouped), np.int64),
    )
    assert counts.n_battles == len(frame) and counts.a.size < len(frame)
    for options in ({}, {"cluster": "none"}, {"ci": "analytic"}, {"ties": "davidson"}):
        settings = {"n_resamples": 300, "seed": 1, **options}
        assert (
            build_leaderboard(counts, **settings).to_dict()
            == build_leaderboard(frame, **settings).to_dict()
        )
    with pytest.raises(InvalidInputError, match="counted by participant"):
        build_leaderboard(counts, cluster="session")
    with pytest.raises(InvalidInputError, match="style control needs"):
        build_leaderboard(counts, control="length")
