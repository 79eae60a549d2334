"""Pair sampling: pure, seeded, two different models, random order, balanced towards rare pairs."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from lamarena.arena.sampling import pair_key, pick_pair
from lamarena.errors import ConfigError

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
