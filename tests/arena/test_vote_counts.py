"""Votes cast through the arena's API keep the vote counts, on both databases."""

from __future__ import annotations

from typing import Any

import httpx

from helpers.fake_openai import FakeOpenAI
from lamarena.store.vote_counts_check import check_counts
from lamarena.store.vote_counts_read import read_cluster_pair_counts, read_pair_counts

from .conftest import Harness

NAMES_ITSELF = ("As GPT-4o, an AI model", " developed by OpenAI,", " I say Paris.")
PLAIN = ("The capital", " of France", " is Paris!")


def _fakes(alpha: tuple[str, ...] = PLAIN) -> dict[str, FakeOpenAI]:
    return {
        "alpha": FakeOpenAI(deltas=alpha, first_token_delay_s=0.01, delta_delay_s=0.01),
        "beta": FakeOpenAI(deltas=PLAIN, first_token_delay_s=0.01, delta_delay_s=0.01),
    }


def _vote(harness: Harness, client: httpx.Client, audio: bytes, winner: str) -> dict[str, Any]:
    created = client.post(
        "/api/battles", files={"audio": ("question.wav", audio, "audio/wav")}, data={"pid": "p7"}
    )
    assert created.status_code == 201, created.text
    battle_id = created.json()["battle_id"]
    harness.wait_for_replies(battle_id)
    reveal = client.post(f"/api/battles/{battle_id}/vote", json={"winner": winner})
    assert reveal.status_code == 200, reveal.text
    body: dict[str, Any] = reveal.json()
    return body


def test_votes_through_the_api_are_counted_by_their_revealed_models(
    harness_factory: Any, speech_wav: bytes
) -> None:
    harness: Harness = harness_factory(fakes=_fakes())
    client = harness.client()
    expected = [0, 0, 0, 0]  # alpha's wins, beta's wins, ties, both bad
    for winner in ("model_a", "model_b", "model_a", "tie", "both_bad"):
        reveal = _vote(harness, client, speech_wav, winner)
        if winner in ("model_a", "model_b"):
            expected[0 if reveal[winner] == "alpha" else 1] += 1
        else:
            expected[2 if winner == "tie" else 3] += 1

    pairs = read_pair_counts(harness.engine)
    assert pairs[["mode", "n_turns", "model_first", "model_second"]].values.tolist() == [
        ["text", 1, "alpha", "beta"]
    ]
    assert pairs[["first_wins", "second_wins", "ties", "both_bad"]].values.tolist() == [expected]
    clusters = read_cluster_pair_counts(harness.engine)
    assert clusters["cluster"].tolist() == ["p:p7"]
    # one pair: each battle was drawn with probability 1, so each vote weighs 1
    row = clusters.iloc[0]
    assert (row["missing_probability"], row["min_probability"], row["max_probability"]) == (
        0,
        1.0,
        1.0,
    )
    assert [row[f"{name}_ipw"] for name in ("first_wins", "second_wins", "ties", "both_bad")] == (
        expected
    )
    assert check_counts(harness.engine).drift == []


def test_a_vote_on_a_battle_the_arena_flagged_is_not_counted(
    harness_factory: Any, speech_wav: bytes
) -> None:
    harness: Harness = harness_factory(fakes=_fakes(alpha=NAMES_ITSELF))
    reveal = _vote(harness, harness.client(), speech_wav, "model_a")
    assert reveal["counted"] is False
    assert read_pair_counts(harness.engine).empty
    assert read_cluster_pair_counts(harness.engine).empty
    assert check_counts(harness.engine).drift == []
