"""Head-to-head records: each pair's own battles, with the study's paired bootstrap test.

The study starred a cell of its win-rate matrix when a paired bootstrap of that pair's battles
showed the win rate differs from one half (p < 0.05; ties and both-bad votes half a win each).
That tests the pair's own record, which is not what a test of two Bradley-Terry ratings asks (those
borrow strength from every other battle; see :mod:`lamarena.analysis.ranking.pairwise`).

Resampling a pair's ``n`` battles with replacement only changes how many of them are wins,
ties and losses, so each round draws those three counts from a multinomial distribution with the
observed shares (the same distribution as resampling the rows, in memory that does not grow with
``n``). The p-value is the centred bootstrap test (Hall & Wilson 1991): the share of rounds
whose win rate is further from the observed one than the observed one is from 1/2, rounds exactly
as far counting half (a mid-p: with few battles the win rate takes few values, and counting
those rounds whole or not at all moves p by 0.1 for 17 battles), with the usual +1 in numerator
and denominator so it is never 0. Intervals are percentile intervals.
No library computes this per pair from counts, hence the few lines here.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from lamarena.analysis.battles import PairCounts, count_pairs, validate_battles
from lamarena.analysis.ranking.pairwise import holm_adjust
from lamarena.errors import InvalidInputError
from lamarena.threads import CPU_THREADS

__all__ = ["HeadToHead", "head_to_head", "head_to_head_counts"]

_SAME = 1e-12
"""Win rates closer than this are the same value (they are multiples of 1 / (2 n))."""


@dataclass(frozen=True)
class HeadToHead:
    """One pair's record: ``model_a`` is the first by name.

    Attributes:
        model_a: the first model of the pair (sorted by name).
        model_b: the second.
        battles: battles between them.
        win_rate: share of them ``model_a`` won, ties and both-bad half.
        ci_low: lower end of the percentile bootstrap interval of ``win_rate``.
        ci_high: upper end.
        p_value: the paired bootstrap test of ``win_rate == 0.5`` (unadjusted).
        p_holm: ``p_value`` after Holm's correction over every pair.
        significant: ``p_holm`` (with ``holm``) or ``p_value`` below ``alpha``.
    """

    model_a: str
    model_b: str
    battles: int
    win_rate: float
    ci_low: float
    ci_high: float
    p_value: float
    p_holm: float
    significant: bool

    def to_dict(self) -> dict[str, Any]:
        """The JSON record (``leaderboard --json`` ``head_to_head``)."""
        return {
            "model_a": self.model_a,
            "model_b": self.model_b,
            "battles": self.battles,
            "win_rate": self.win_rate,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "p_value": self.p_value,
            "p_holm": self.p_holm,
            "significant": self.significant,
        }


def head_to_head(
    battles: pd.DataFrame,
    *,
    n_resamples: int = 10_000,
    seed: int | None = 0,
    alpha: float = 0.05,
    holm: bool = False,
) -> tuple[HeadToHead, ...]:
    """Every pair's head-to-head record with its paired bootstrap test.

    Args:
        battles: one row per battle (validated here).
        n_resamples: bootstrap rounds (the study's 10,000 by default); at least 1.
        seed: random seed.
        alpha: level of ``significant``.
        holm: decide ``significant`` on Holm-adjusted p-values (the study did not adjust).

    Returns:
        One record per pair that met, sorted by the pair's names.

    Raises:
        InvalidInputError: malformed battles or options.
    """
    _check_options(n_resamples, alpha)
    return head_to_head_counts(
        count_pairs(validate_battles(battles)),
        n_resamples=n_resamples,
        seed=seed,
        alpha=alpha,
        holm=holm,
    )


_PAIR_BLOCK = 256
"""Pairs tested per block of :func:`head_to_head_counts` (fewer pairs: one block, one stream)."""


def _check_options(n_resamples: int, alpha: float) -> None:
    if n_resamples < 1:
        raise InvalidInputError(f"n_resamples must be at least 1, got {n_resamples}")
    if not 0.0 < alpha < 1.0:
        raise InvalidInputError(f"alpha must be between 0 and 1, got {alpha}")


def head_to_head_counts(
    counts: PairCounts,
    *,
    n_resamples: int = 10_000,
    seed: int | None = 0,
    alpha: float = 0.05,
    holm: bool = False,
) -> tuple[HeadToHead, ...]:
    """:func:`head_to_head` of battles already counted per pair.

    Raises:
        InvalidInputError: malformed options.
    """
    _check_options(n_resamples, alpha)
    if counts.first.size == 0:
        return ()
    rng = np.random.default_rng(seed)
    n = counts.battles.astype(np.int64)
    shares = np.column_stack([counts.first_wins, counts.ties, counts.second_wins]) / n[:, None]
    observed = counts.first_score / n
    p_values = np.empty(n.size)
    low = np.empty(n.size)
    high = np.empty(n.size)

    def test_pairs(pairs: range, generator: np.random.Generator) -> None:
        for pair in pairs:
            drawn = generator.multinomial(n[pair], shares[pair], size=n_resamples)
            rates = (drawn[:, 0] + 0.5 * drawn[:, 1]) / n[pair]
            gap = np.abs(rates - observed[pair]) - abs(observed[pair] - 0.5)
            further = int(np.count_nonzero(gap > _SAME))
            as_far = int(np.count_nonzero(np.abs(gap) <= _SAME))
            p_values[pair] = min(1.0, (1 + further + 0.5 * as_far) / (1 + n_resamples))
            low[pair], high[pair] = np.quantile(rates, [alpha / 2, 1 - alpha / 2])

    # Pairs in blocks: the first block draws from ``rng`` itself, each later one from its own
    # child of it (fixed by the seed, whatever the threads), on every core.
    blocks = [
        range(start, min(start + _PAIR_BLOCK, n.size)) for start in range(0, n.size, _PAIR_BLOCK)
    ]
    generators = [rng, *rng.spawn(len(blocks) - 1)]
    if len(blocks) == 1:
        test_pairs(blocks[0], rng)
    else:
        with ThreadPoolExecutor(max_workers=min(len(blocks), CPU_THREADS)) as pool:
            list(pool.map(test_pairs, blocks, generators))
    p_holm = holm_adjust(p_values)
    decided = p_holm if holm else p_values
    return tuple(
        HeadToHead(
            model_a=counts.models[counts.first[pair]],
            model_b=counts.models[counts.second[pair]],
            battles=int(n[pair]),
            win_rate=float(observed[pair]),
            ci_low=float(low[pair]),
            ci_high=float(high[pair]),
            p_value=float(p_values[pair]),
            p_holm=float(p_holm[pair]),
            significant=bool(decided[pair] < alpha),
        )
        for pair in range(n.size)
    )
