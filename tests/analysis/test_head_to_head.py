"""The study's paired bootstrap of each pair's own battles (issue 12, point 1).

Checked against an independent computation (resampling the battle rows themselves, in a loop of
its own), the normal approximation on many battles, the Talk Arena cell the statistician quoted
(0.618 over 17 battles, p 0.29), and a simulation under the null whose truth is set (a win rate
of one half: about 5% of pairs significant).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from analysis.builders import frame, outcome
from lamarena.analysis.ranking.head_to_head import head_to_head
from lamarena.errors import InvalidInputError


def _record(wins: int, ties: int, losses: int, a: str = "alpha", b: str = "beta") -> pd.DataFrame:
    rows = [(a, b, "model_a")] * wins + [(a, b, "tie")] * ties + [(a, b, "model_b")] * losses
    return frame(rows)


def _row_bootstrap(battles: pd.DataFrame, rounds: int, seed: int) -> tuple[float, float, float]:
    """Independent: resample battle rows, one round at a time; (p, ci_low, ci_high)."""
    scores = outcome(battles["winner"])
    observed = scores.mean()
    rng = np.random.default_rng(seed)
    rates = np.array([rng.choice(scores, size=scores.size).mean() for _ in range(rounds)])
    gap = np.abs(rates - observed) - abs(observed - 0.5)
    further, as_far = np.sum(gap > 1e-9), np.sum(np.abs(gap) <= 1e-9)
    low, high = np.quantile(rates, [0.025, 0.975])
    return min(1.0, (1 + further + as_far / 2) / (1 + rounds)), float(low), float(high)


def test_the_multinomial_bootstrap_equals_resampling_the_battles() -> None:
    battles = _record(wins=24, ties=4, losses=12)

    (row,) = head_to_head(battles, n_resamples=20_000, seed=1)
    p, low, high = _row_bootstrap(battles, rounds=20_000, seed=2)

    assert row.win_rate == pytest.approx(26 / 40)
    assert row.p_value == pytest.approx(p, abs=0.01)
    assert row.ci_low == pytest.approx(low, abs=0.0126)  # one battle's worth of 0.5 / 40
    assert row.ci_high == pytest.approx(high, abs=0.0126)


def test_on_many_battles_it_agrees_with_the_normal_approximation() -> None:
    battles = _record(wins=1_020, ties=80, losses=900)
    scores = outcome(battles["winner"])
    z = (scores.mean() - 0.5) / (scores.std() / np.sqrt(scores.size))

    (row,) = head_to_head(battles, n_resamples=20_000, seed=3)

    assert row.p_value == pytest.approx(2 * norm.sf(abs(z)), abs=0.01)


def test_the_talk_arena_cell_the_review_quoted_is_not_significant() -> None:
    (row,) = head_to_head(_record(wins=10, ties=1, losses=6), seed=0)

    assert row.battles == 17
    assert row.win_rate == pytest.approx(0.618, abs=0.001)
    assert 0.24 <= row.p_value <= 0.34  # the review's 0.29
    assert row.significant is False
    assert row.ci_low < 0.5 < row.ci_high


def test_under_the_null_about_five_percent_of_pairs_are_significant() -> None:
    # 300 pairs of 40 battles each, every battle a fair coin (ties 20%): truth is "no difference"
    rng = np.random.default_rng(7)
    rows = []
    for pair in range(300):
        a, b = f"m{pair:03d}a", f"m{pair:03d}b"
        winners = rng.choice(["model_a", "model_b", "tie"], size=40, p=[0.4, 0.4, 0.2])
        rows += [(a, b, str(winner)) for winner in winners]

    records = head_to_head(frame(rows), n_resamples=2_000, seed=0)

    assert len(records) == 300
    rate = np.mean([record.significant for record in records])
    assert 0.02 <= rate <= 0.10


def test_holm_adjusts_across_pairs_only_when_asked() -> None:
    battles = pd.concat(
        [
            _record(30, 0, 10, "a", "b"),  # clear
            _record(14, 0, 6, "a", "c"),  # borderline
            _record(10, 0, 10, "b", "c"),  # even
        ]
    )

    plain = {(r.model_a, r.model_b): r for r in head_to_head(battles, seed=0)}
    adjusted = {(r.model_a, r.model_b): r for r in head_to_head(battles, seed=0, holm=True)}

    assert all(r.p_holm >= r.p_value for r in plain.values())
    assert plain[("a", "b")].significant and adjusted[("a", "b")].significant
    assert plain[("b", "c")].win_rate == 0.5 and plain[("b", "c")].p_value > 0.9
    for key, record in adjusted.items():
        assert record.significant == (record.p_holm < 0.05)
        assert plain[key].significant == (plain[key].p_value < 0.05)


def test_the_record_does_not_depend_on_which_side_a_model_was_shown() -> None:
    battles = _record(wins=12, ties=3, losses=5)
    swapped = battles.rename(columns={"model_a": "model_b", "model_b": "model_a"})
    swapped["winner"] = swapped["winner"].map(
        {"model_a": "model_b", "model_b": "model_a", "tie": "tie"}
    )

    assert head_to_head(battles, seed=5) == head_to_head(swapped, seed=5)


@pytest.mark.parametrize("options", [{"n_resamples": 0}, {"alpha": 1.5}])
def test_bad_options_are_refused(options: dict[str, float]) -> None:
    with pytest.raises(InvalidInputError):
        head_to_head(_record(1, 0, 1), **options)  # type: ignore[arg-type]
