"""Simulated battles: shape, reproducibility, and the probabilities they are drawn from."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lamarena.errors import InvalidInputError
from lamarena.simulation import TOPIC_SHARES, parse_strengths, simulate_battles

COLUMNS = [
    "model_a",
    "model_b",
    "winner",
    "chars_a",
    "chars_b",
    "ttft_a_s",
    "ttft_b_s",
    "total_a_s",
    "total_b_s",
    "sampling_probability",
]


def test_named_models_get_evenly_spaced_strengths_strongest_first() -> None:
    strengths = parse_strengths("strong, middle ,weak")
    assert list(strengths) == ["strong", "middle", "weak"]
    assert list(strengths.values()) == [1200.0, 1000.0, 800.0]


def test_counted_models_are_shuffled_by_seed_reproducibly() -> None:
    first = parse_strengths("8", seed=1)
    assert list(first) == [f"model-{i}" for i in range(1, 9)]
    assert sorted(first.values()) == pytest.approx(list(np.linspace(800, 1200, 8)))
    assert parse_strengths("8", seed=1) == first
    assert parse_strengths("8", seed=2) != first
    assert next(iter(parse_strengths("12", seed=0))) == "model-01"


@pytest.mark.parametrize("spec", ["1", "0", "a", "a,,b", "a,b,a", ""])
def test_bad_model_specs_are_rejected(spec: str) -> None:
    with pytest.raises(InvalidInputError):
        parse_strengths(spec)


def test_battles_have_the_documented_columns_and_never_self_pairs() -> None:
    battles = simulate_battles(parse_strengths("5"), 2000, seed=0, both_bad_rate=0.05)
    assert list(battles.columns) == COLUMNS
    assert (battles["model_a"] != battles["model_b"]).all()
    assert set(battles["winner"]) == {"model_a", "model_b", "tie", "both_bad"}
    assert (battles["chars_a"] >= 1).all()
    assert (battles["total_a_s"] > battles["ttft_a_s"]).all()
    # every ordered pair is about equally frequent
    pairs = battles.groupby(["model_a", "model_b"]).size()
    assert len(pairs) == 20
    assert pairs.min() > 0.6 * pairs.mean()


def test_same_seed_same_battles() -> None:
    strengths = parse_strengths("a,b,c")
    first = simulate_battles(strengths, 300, seed=9, study=True)
    assert first.equals(simulate_battles(strengths, 300, seed=9, study=True))
    assert not first.equals(simulate_battles(strengths, 300, seed=10, study=True))


def test_outcomes_follow_bradley_terry_with_ties_counting_half() -> None:
    battles = simulate_battles({"a": 1100.0, "b": 1000.0}, 40_000, seed=1, tie_rate=0.2)
    a_first = battles["model_a"] == "a"
    score_a = np.where(
        battles["winner"] == "tie",
        0.5,
        np.where(a_first, battles["winner"] == "model_a", battles["winner"] == "model_b"),
    )
    expected = 1 / (1 + 10 ** (-100 / 400))
    assert score_a.mean() == pytest.approx(expected, abs=0.01)
    tie_rate = (battles["winner"] == "tie").mean()
    assert tie_rate == pytest.approx(0.2 * 2 * (1 - expected), abs=0.01)


def test_equal_models_tie_at_the_given_rate() -> None:
    battles = simulate_battles({"a": 1000.0, "b": 1000.0}, 20_000, seed=2, tie_rate=0.3)
    assert (battles["winner"] == "tie").mean() == pytest.approx(0.3, abs=0.015)


def test_length_effect_favours_longer_replies() -> None:
    battles = simulate_battles({"a": 1000.0, "b": 1000.0}, 20_000, seed=3, length_effect=400.0)
    longer_a = battles["chars_a"] > battles["chars_b"]
    a_won = battles["winner"] == "model_a"
    assert a_won[longer_a].mean() > a_won[~longer_a].mean() + 0.05


def test_study_queries_follow_the_topic_shares() -> None:
    battles = simulate_battles(parse_strengths("4"), 20_000, seed=4, study=True)
    assert list(battles.columns) == [*COLUMNS, "topic", "query_transcript"]
    shares = battles["topic"].value_counts(normalize=True)
    for topic, share in TOPIC_SHARES.items():
        assert shares[topic] == pytest.approx(share, abs=0.015)
    queries = battles["query_transcript"]
    assert queries.map(lambda q: isinstance(q, str) and 5 < len(q) < 120).all()
    assert "{" not in "".join(queries.head(500))
    assert queries.nunique() > 100


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"tie_rate": -0.1}, "tie_rate"),
        ({"tie_rate": 0.7, "both_bad_rate": 0.4}, "at most 1"),
        ({"n_battles": -1}, "n_battles"),
        ({"votes_per_participant": 0}, "votes_per_participant"),
        ({"votes_per_participant": 10, "participant_sd": -1.0}, "participant_sd"),
    ],
)
def test_bad_simulation_settings_are_rejected(kwargs: dict, match: str) -> None:
    arguments = {"n_battles": 10, **kwargs}
    n_battles = arguments.pop("n_battles")
    with pytest.raises(InvalidInputError, match=match):
        simulate_battles({"a": 1000.0, "b": 900.0}, n_battles, **arguments)


def test_single_model_cannot_be_simulated() -> None:
    with pytest.raises(InvalidInputError, match="at least 2"):
        simulate_battles({"a": 1000.0}, 10)


def test_study_participants_vote_ten_times_on_one_balanced_pair_with_their_own_taste() -> None:
    strengths = {"a": 1100.0, "b": 1000.0, "c": 1000.0, "d": 900.0}
    battles = simulate_battles(
        strengths, 6_000, seed=4, votes_per_participant=10, participant_sd=0.8
    )

    people = battles.groupby("participant_id")
    assert people.ngroups == 600 and (people.size() == 10).all()
    assert (people["session_id"].nunique() == 1).all()
    pairs = people.apply(
        lambda votes: frozenset(set(votes["model_a"]) | set(votes["model_b"])), include_groups=False
    )
    assert (pairs.map(len) == 2).all()  # one pair each
    assert pairs.value_counts().tolist() == [100] * 6  # dealt in turn: balanced
    # sides are random per vote
    assert 0.4 < (battles["model_a"] < battles["model_b"]).mean() < 0.6
    # the taste shows: a person's share of wins for the pair's first model varies more than
    # ten fair draws would (binomial sd of a share of 10 is at most 0.16)
    first = battles[["model_a", "model_b"]].min(axis=1)
    first_won = np.where(battles["model_a"] == first, battles["winner"] == "model_a", False) | (
        np.where(battles["model_b"] == first, battles["winner"] == "model_b", False)
    )
    decisive = battles["winner"].isin(["model_a", "model_b"])
    equal = battles["participant_id"][
        battles[["model_a", "model_b"]].apply(frozenset, axis=1) == frozenset({"b", "c"})
    ].unique()
    shares = (
        pd.Series(first_won[decisive.to_numpy()], index=battles.index[decisive])
        .groupby(battles["participant_id"][decisive])
        .mean()
        .loc[lambda s: s.index.isin(equal)]
    )
    assert shares.std() > 0.2
    without = simulate_battles(strengths, 6_000, seed=4, votes_per_participant=10)
    assert "participant_id" in without.columns


def test_without_participants_nothing_changes() -> None:
    plain = simulate_battles({"a": 1000.0, "b": 900.0, "c": 800.0}, 500, seed=3)
    assert "participant_id" not in plain.columns
    assert list(plain.columns) == COLUMNS


def test_uniform_sampling_records_the_same_probability_for_every_battle() -> None:
    battles = simulate_battles(parse_strengths("5"), 300, seed=2)
    assert np.allclose(battles["sampling_probability"], 1 / 10)


@pytest.mark.parametrize("sampling", ["balanced", "active"])
def test_adaptive_sampling_records_each_draws_probability_and_is_reproducible(
    sampling: str,
) -> None:
    strengths = parse_strengths("6", seed=1)
    battles = simulate_battles(strengths, 1_500, seed=5, sampling=sampling)  # type: ignore[arg-type]
    again = simulate_battles(strengths, 1_500, seed=5, sampling=sampling)  # type: ignore[arg-type]
    pd.testing.assert_frame_equal(battles, again)
    chance = battles["sampling_probability"]
    assert chance.nunique() > 15  # refreshed as votes came in
    assert ((chance > 0) & (chance < 1)).all()
    assert (battles["model_a"] != battles["model_b"]).all()
    assert 0.4 < (battles["model_a"] < battles["model_b"]).mean() < 0.6


def test_active_sampling_puts_more_votes_on_the_top_pairs_than_uniform() -> None:
    strengths = parse_strengths("a,b,c,d,e,f")  # a strongest, 80 Elo apart
    counts = {}
    for sampling in ("uniform", "active"):
        battles = simulate_battles(strengths, 3_000, seed=6, sampling=sampling)  # type: ignore[arg-type]
        top = battles[["model_a", "model_b"]].isin(["a", "b", "c"]).all(axis=1)
        counts[sampling] = int(top.sum())
    assert counts["active"] > 1.3 * counts["uniform"]


def test_active_sampling_with_participants_draws_one_pair_per_participant() -> None:
    battles = simulate_battles(
        parse_strengths("5"),
        500,
        seed=7,
        votes_per_participant=10,
        participant_sd=0.8,
        sampling="active",
        refresh_every=20,
    )
    per_person = battles.groupby("participant_id").apply(
        lambda g: len(set(map(frozenset, zip(g["model_a"], g["model_b"], strict=True))))
    )
    assert (per_person == 1).all() and len(per_person) == 50
    assert (battles.groupby("participant_id")["sampling_probability"].nunique() == 1).all()


@pytest.mark.parametrize(
    ("kwargs", "message"), [({"sampling": "greedy"}, "sampling"), ({"refresh_every": 0}, "refresh")]
)
def test_bad_sampling_settings_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        simulate_battles(parse_strengths("3"), 10, **kwargs)  # type: ignore[arg-type]
