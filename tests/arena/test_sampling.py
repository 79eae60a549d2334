"""Pair sampling: pure, seeded, two different models, random order; each draw says its chance."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import select

from helpers.fake_openai import FakeOpenAI
from lamarena.analysis.ranking.pair_design import PairTally, balanced_pair_probabilities
from lamarena.arena import ArenaOptions
from lamarena.arena.sampling import ActiveDesign, draw_pair, pair_key, pick_pair
from lamarena.errors import ConfigError
from lamarena.store.bulk import load_battle_records
from lamarena.store.db import make_sessionmaker
from lamarena.store.tables import Battle

MODELS = ["alpha", "beta", "gamma", "delta"]


@pytest.mark.parametrize("strategy", ["uniform", "balanced"])
def test_pick_pair_returns_two_different_known_models(strategy: str) -> None:
    rng = random.Random(1)
    for _ in range(200):
        model_a, model_b = pick_pair(MODELS, rng, strategy=strategy)  # type: ignore[arg-type]
        assert model_a != model_b and {model_a, model_b} <= set(MODELS)


def test_same_seed_gives_same_sequence() -> None:
    first = [pick_pair(MODELS, rng) for rng in [random.Random(7)] for _ in range(50)]
    second = [pick_pair(MODELS, rng) for rng in [random.Random(7)] for _ in range(50)]
    assert first == second


def test_uniform_covers_every_pair_in_both_orders() -> None:
    rng = random.Random(0)
    draws = Counter(pick_pair(["x", "y", "z"], rng) for _ in range(3000))
    assert len(draws) == 6
    assert min(draws.values()) > 3000 / 6 * 0.8


def test_balanced_favours_pairs_with_few_battles() -> None:
    rng = random.Random(0)
    counts = {pair_key("x", "y"): 100, pair_key("x", "z"): 100, pair_key("y", "z"): 0}
    draws = Counter(
        pair_key(*pick_pair(["x", "y", "z"], rng, strategy="balanced", pair_counts=counts))
        for _ in range(1000)
    )
    assert draws[pair_key("y", "z")] > 900


def test_fewer_than_two_models_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="at least two models"):
        pick_pair(["solo", "solo"], random.Random(0))


def test_draw_pair_says_the_chance_of_the_pair_it_drew() -> None:
    rng = random.Random(3)
    uniform = draw_pair(MODELS, rng)
    assert uniform.probability == pytest.approx(1 / 6)
    counts = {pair_key("alpha", "beta"): 3}
    balanced = draw_pair(MODELS, rng, strategy="balanced", pair_counts=counts)
    expected = balanced_pair_probabilities(MODELS, counts)
    assert balanced.probability == pytest.approx(
        expected[pair_key(balanced.model_a, balanced.model_b)]
    )
    design = {pair_key("alpha", "beta"): 0.9, pair_key("gamma", "delta"): 0.1}
    drawn = Counter(
        pair_key(*pick_pair(MODELS, rng, strategy="active", design=design)) for _ in range(2000)
    )
    assert set(drawn) == set(design)  # pairs the design leaves out are never drawn
    assert 0.85 < drawn[pair_key("alpha", "beta")] / 2000 < 0.95


def test_active_without_a_design_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="active sampling needs a design"):
        draw_pair(MODELS, random.Random(0), strategy="active")


def test_active_design_refits_only_every_so_many_battles_or_seconds() -> None:
    now = [0.0]
    reads: list[int] = []

    def tallies() -> dict[tuple[str, str], PairTally]:
        reads.append(1)
        return {pair_key("alpha", "beta"): PairTally(50, 25)}

    design = ActiveDesign(
        MODELS, floor=0.2, focus=2, refresh_battles=3, refresh_s=60, clock=lambda: now[0]
    )
    first = design.probabilities(tallies)
    assert sum(first.values()) == pytest.approx(1.0)
    for _ in range(2):
        assert design.probabilities(tallies) is first  # cached: no read
    assert len(reads) == 1
    design.probabilities(tallies)  # the fourth draw: three since the fit
    assert len(reads) == 2 and design.refreshes == 2
    now[0] = 61.0
    design.probabilities(tallies)  # a minute later
    assert len(reads) == 3


def test_served_active_arena_records_each_battles_pair_probability(
    harness_factory: Any, speech_wav: bytes
) -> None:
    fakes = {name: FakeOpenAI(deltas=(f"{name} says hi.",)) for name in ("alpha", "beta", "gamma")}
    harness = harness_factory(
        options=ArenaOptions(sampling="active", seed=0), fakes=fakes, sampling_refresh_battles=1
    )
    client = harness.client()
    ids = []
    for _ in range(3):
        created = client.post(
            "/api/battles", files={"audio": ("q.wav", speech_wav, "audio/wav")}, data={}
        )
        assert created.status_code == 201, created.text
        ids.append(created.json()["battle_id"])
        harness.wait_for_replies(ids[-1])
        vote = client.post(f"/api/battles/{ids[-1]}/vote", json={"winner": "model_a"})
        assert vote.status_code == 200, vote.text
    with harness.engine.connect() as connection:
        rows = connection.execute(
            select(Battle.id, Battle.sampling_probability).where(Battle.id.in_(ids))
        ).all()
    chances = {row.id: row.sampling_probability for row in rows}
    assert chances[ids[0]] == pytest.approx(1 / 3)  # no votes yet: every pair alike
    assert all(0.2 / 3 <= chance < 1 for chance in chances.values())
    with make_sessionmaker(harness.engine)() as session:
        exported = {record.battle_id: record for record in load_battle_records(session)}
    assert {key: exported[key].sampling_probability for key in ids} == chances
