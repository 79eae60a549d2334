"""Which two models answer a battle, and in which order: pure functions of a seeded generator.

:func:`draw_pair` draws an unordered pair of two different models from a design of
:mod:`lamarena.analysis.ranking.pair_design`, then a random A/B order (so neither side is biased
towards
a model), and says what chance the pair had: the battle records it, so an adaptive design can be
undone by inverse-probability weights. ``uniform`` gives every pair the same chance;
``balanced`` favours pairs with few battles so far (weight ``1 / (1 + n)``), which spreads votes
over every pair as arena leaderboards need for their Bradley-Terry fit to be connected;
``active`` puts votes where they sharpen the top of the ranking, with an exposure floor for
every pair. The active design needs a quick fit of the votes, so :class:`ActiveDesign` caches it
and refreshes it only every so many battles or seconds: between refreshes a draw reads nothing.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from lamarena.analysis.ranking.pair_design import (
    Pair,
    PairTally,
    active_pair_probabilities,
    all_pairs,
    balanced_pair_probabilities,
    uniform_pair_probabilities,
)
from lamarena.errors import ConfigError, InvalidInputError

__all__ = [
    "ActiveDesign",
    "PairCounts",
    "PairDraw",
    "Strategy",
    "draw_pair",
    "pair_key",
    "pick_pair",
]

Strategy = Literal["uniform", "balanced", "active"]

PairCounts = Mapping[tuple[str, str], int]
"""Battles so far per unordered pair, keyed by :func:`pair_key`."""


def pair_key(model_a: str, model_b: str) -> tuple[str, str]:
    """The key of an unordered pair (the two names sorted)."""
    first, second = sorted((model_a, model_b))
    return first, second


@dataclass(frozen=True)
class PairDraw:
    """The two models of a battle, in A/B order, and the chance their unordered pair had."""

    model_a: str
    model_b: str
    probability: float


def draw_pair(
    models: Sequence[str],
    rng: random.Random,
    *,
    strategy: Strategy = "uniform",
    pair_counts: PairCounts | None = None,
    design: Mapping[Pair, float] | None = None,
) -> PairDraw:
    """Draw two different models for a battle, in a random A/B order.

    Args:
        models: the names to choose from (duplicates count once).
        rng: the random generator (seed it for a reproducible sequence).
        strategy: ``uniform`` over pairs, ``balanced`` towards pairs with few battles, or
            ``active`` from ``design``.
        pair_counts: battles so far per pair (``balanced`` only; missing pairs count 0).
        design: the probability of each pair (``active``: from :class:`ActiveDesign`); pairs
            missing from it are never drawn.

    Returns:
        The pair in A/B order and its probability.

    Raises:
        ConfigError: fewer than two distinct models, an unknown strategy, or ``active`` without
            a design that gives some pair of these models a chance.
    """
    try:
        pairs = all_pairs(models)
    except InvalidInputError as exc:
        raise ConfigError(str(exc)) from exc
    if strategy == "uniform":
        chances = uniform_pair_probabilities(models)
    elif strategy == "balanced":
        chances = balanced_pair_probabilities(models, pair_counts or {})
    elif strategy == "active":
        chances = {pair: float(design.get(pair, 0.0)) for pair in pairs} if design else {}
        if sum(chances.values()) <= 0:
            raise ConfigError("active sampling needs a design over these models")
    else:
        raise ConfigError(
            f"unknown sampling strategy {strategy!r}; use uniform, balanced or active"
        )
    weights = [chances[pair] for pair in pairs]
    if strategy == "uniform":
        pair = rng.choice(pairs)
    else:
        pair = rng.choices(pairs, weights=weights, k=1)[0]
    first, second = pair
    probability = chances[pair] / sum(weights)
    if rng.random() < 0.5:
        return PairDraw(first, second, probability)
    return PairDraw(second, first, probability)


def pick_pair(
    models: Sequence[str],
    rng: random.Random,
    *,
    strategy: Strategy = "uniform",
    pair_counts: PairCounts | None = None,
    design: Mapping[Pair, float] | None = None,
) -> tuple[str, str]:
    """``(model_a, model_b)`` of :func:`draw_pair` (same arguments, same draws)."""
    drawn = draw_pair(models, rng, strategy=strategy, pair_counts=pair_counts, design=design)
    return drawn.model_a, drawn.model_b


class ActiveDesign:
    """The active design of one arena process, refreshed every so many draws or seconds.

    Thread-safe. A refresh reads the vote tallies (through the callable given to
    :meth:`probabilities`) and fits the design; every other draw reuses the cached one, so the
    cost per battle stays bounded however many votes the store holds.
    """

    def __init__(
        self,
        models: Sequence[str],
        *,
        floor: float,
        focus: int,
        refresh_battles: int,
        refresh_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.models = sorted(set(models))
        self.floor = floor
        self.focus = focus
        self.refresh_battles = max(1, refresh_battles)
        self.refresh_s = refresh_s
        self._clock = clock
        self._lock = threading.Lock()
        self._design: dict[Pair, float] | None = None
        self._draws = 0
        self._refreshed_at = 0.0
        self.refreshes = 0
        """How many times the design was fitted (for tests and logs)."""

    def probabilities(
        self, read_tallies: Callable[[], Mapping[Pair, PairTally]]
    ) -> dict[Pair, float]:
        """The design for the next draw, refitted from ``read_tallies()`` when it is stale.

        Stale: never fitted, or ``refresh_battles`` draws or ``refresh_s`` seconds since the last
        fit.
        """
        with self._lock:
            now = self._clock()
            design = self._design
            if (
                design is None
                or self._draws >= self.refresh_battles
                or now - self._refreshed_at >= self.refresh_s
            ):
                design = active_pair_probabilities(
                    self.models, read_tallies(), floor=self.floor, focus=self.focus
                )
                self._design = design
                self._draws = 0
                self._refreshed_at = now
                self.refreshes += 1
            self._draws += 1
            return design
