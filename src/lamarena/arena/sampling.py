"""Which two models answer a battle, and in which order: pure functions of a seeded generator.

:func:`pick_pair` draws an unordered pair of two different models, then a random A/B order (so
neither side is biased towards a model). ``uniform`` gives every pair the same chance;
``balanced`` favours pairs with few battles so far (weight ``1 / (1 + n)``), which spreads votes
over every pair as arena leaderboards need for their Bradley-Terry fit to be connected.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Mapping, Sequence
from typing import Literal

from lamarena.errors import ConfigError

__all__ = ["PairCounts", "Strategy", "pair_key", "pick_pair"]

Strategy = Literal["uniform", "balanced"]

PairCounts = Mapping[tuple[str, str], int]
"""Battles so far per unordered pair, keyed by :func:`pair_key`."""


def pair_key(model_a: str, model_b: str) -> tuple[str, str]:
    """The key of an unordered pair (the two names sorted)."""
    first, second = sorted((model_a, model_b))
    return first, second


def pick_pair(
    models: Sequence[str],
    rng: random.Random,
    *,
    strategy: Strategy = "uniform",
    pair_counts: PairCounts | None = None,
) -> tuple[str, str]:
    """Pick two different models for a battle, in a random A/B order.

    Args:
        models: the names to choose from (duplicates count once).
        rng: the random generator (seed it for a reproducible sequence).
        strategy: ``uniform`` over pairs, or ``balanced`` towards pairs with few battles.
        pair_counts: battles so far per pair (``balanced`` only; missing pairs count 0).

    Returns:
        ``(model_a, model_b)``, two different names.

    Raises:
        ConfigError: fewer than two distinct models, or an unknown strategy.
    """
    names = sorted(set(models))
    if len(names) < 2:
        raise ConfigError(f"a battle needs at least two models; configured: {names}")
    pairs = list(itertools.combinations(names, 2))
    if strategy == "uniform":
        pair = rng.choice(pairs)
    elif strategy == "balanced":
        counts = pair_counts or {}
        weights = [1.0 / (1.0 + max(0, counts.get(pair, 0))) for pair in pairs]
        pair = rng.choices(pairs, weights=weights, k=1)[0]
    else:
        raise ConfigError(f"unknown sampling strategy {strategy!r}; use uniform or balanced")
    first, second = pair
    return (first, second) if rng.random() < 0.5 else (second, first)
