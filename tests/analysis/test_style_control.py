"""Style-controlled Bradley-Terry: recovers true strengths under a style bias, matches a GLM."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from analysis.builders import ELO_PER_LOGIT, outcome
from lamarena.analysis.ranking.bradley_terry import (
    bootstrap_bradley_terry_result,
    fit_bradley_terry,
    fit_bradley_terry_result,
)
from lamarena.errors import InvalidInputError
from lamarena.simulation import parse_strengths, simulate_battles

LENGTH_EFFECT_ELO = 300.0
LATENCY_EFFECT_ELO = 150.0


@pytest.fixture(scope="module")
def strengths() -> pd.Series:
    values = pd.Series(parse_strengths("8", seed=21))
    return values - values.mean() + 1000.0


@pytest.fixture(scope="module")
def biased(strengths: pd.Series) -> pd.DataFrame:
    return simulate_battles(
        strengths.to_dict(),
        20_000,
        seed=21,
        length_effect=LENGTH_EFFECT_ELO,
        latency_effect=LATENCY_EFFECT_ELO,
    )


def test_style_control_recovers_true_strengths_where_plain_bt_is_biased(
    strengths: pd.Series, biased: pd.DataFrame
) -> None:
    controlled = fit_bradley_terry_result(biased, control=("length", "latency"))
    plain = fit_bradley_terry_result(biased)
    z_controlled = (controlled.ratings - strengths) / controlled.intervals().se
    z_plain = (plain.ratings - strengths) / plain.intervals().se
    assert z_controlled.abs().max() < 3.5, z_controlled
    assert (z_controlled**2).mean() < 2.5  # about 1 when the intervals are right
    assert z_plain.abs().max() > 8.0, z_plain
    coefficients = controlled.style_intervals()
    assert coefficients.loc["length", "ci_low"] < LENGTH_EFFECT_ELO
    assert coefficients.loc["length", "ci_high"] > LENGTH_EFFECT_ELO
    # the latency feature is (ttft_a - ttft_b) / sum: a slower first token loses
    assert coefficients.loc["latency", "ci_low"] < -LATENCY_EFFECT_ELO
    assert coefficients.loc["latency", "ci_high"] > -LATENCY_EFFECT_ELO


def test_no_style_effect_gives_near_zero_coefficients_and_plain_ratings(
    strengths: pd.Series,
) -> None:
    battles = simulate_battles(strengths.to_dict(), 8000, seed=22)
    controlled = fit_bradley_terry_result(battles, control="length")
    ci = controlled.style_intervals(0.999)
    assert ci.loc["length", "ci_low"] < 0 < ci.loc["length", "ci_high"]
    plain = fit_bradley_terry(battles)
    gap = (controlled.ratings - plain[controlled.ratings.index]).abs()
    assert (gap < 3 * controlled.intervals().se).all()


def test_controlled_fit_matches_statsmodels_glm(biased: pd.DataFrame) -> None:
    sample = biased.iloc[:3000]
    result = fit_bradley_terry_result(sample, control=("length", "latency"))
    models = sorted(result.ratings.index)
    columns = []
    for name in models[1:]:
        columns.append(
            (sample["model_a"] == name).to_numpy(float)
            - (sample["model_b"] == name).to_numpy(float)
        )
    length = (sample["chars_a"] - sample["chars_b"]) / (sample["chars_a"] + sample["chars_b"])
    latency = (sample["ttft_a_s"] - sample["ttft_b_s"]) / (sample["ttft_a_s"] + sample["ttft_b_s"])
    design = np.column_stack([*columns, length, latency])
    glm = sm.GLM(outcome(sample["winner"]), design, family=sm.families.Binomial())
    fitted = glm.fit(tol=1e-12)
    theta = result.ratings[models].to_numpy() / ELO_PER_LOGIT
    np.testing.assert_allclose(theta[1:] - theta[0], fitted.params[:-2], atol=1e-7)
    np.testing.assert_allclose(
        result.style_coefficients.to_numpy() / ELO_PER_LOGIT, fitted.params[-2:], atol=1e-7
    )
    robust = glm.fit(tol=1e-12, cov_type="HC0").cov_params()[-2:, -2:]
    np.testing.assert_allclose(
        result.style_robust_covariance.to_numpy() / ELO_PER_LOGIT**2, robust, rtol=1e-6
    )


def test_controlled_bootstrap_agrees_with_the_sandwich(biased: pd.DataFrame) -> None:
    sample = biased.iloc[:5000]
    fit = fit_bradley_terry_result(sample, control="length")
    boot = bootstrap_bradley_terry_result(sample, rounds=400, seed=3, control="length", fit=fit)
    assert boot.unconverged == 0
    assert list(boot.style_samples.columns) == ["length"]
    se = fit.intervals().se
    np.testing.assert_allclose(boot.samples.std()[se.index], se, rtol=0.2)
    style_se = np.sqrt(fit.style_robust_covariance.loc["length", "length"])
    assert boot.style_samples["length"].std() == pytest.approx(style_se, rel=0.2)
    again = bootstrap_bradley_terry_result(
        sample.sample(frac=1.0, random_state=0), rounds=400, seed=3, control="length"
    )
    np.testing.assert_allclose(again.samples.to_numpy(), boot.samples.to_numpy(), atol=1e-8)


def test_missing_style_columns_are_named(biased: pd.DataFrame) -> None:
    with pytest.raises(InvalidInputError, match=r"chars_a and chars_b.*chars_b"):
        fit_bradley_terry_result(biased.drop(columns=["chars_b"]), control="length")


def test_rows_lacking_style_values_are_counted_and_named(biased: pd.DataFrame) -> None:
    broken = biased.iloc[:200].copy()
    broken.loc[[5, 17], "ttft_b_s"] = np.nan
    with pytest.raises(InvalidInputError) as info:
        fit_bradley_terry_result(broken, control=("length", "latency"))
    message = str(info.value)
    assert "ttft_b_s" in message
    assert "2 row(s)" in message
    assert "row 5" in message


def test_unknown_control_is_rejected(biased: pd.DataFrame) -> None:
    with pytest.raises(InvalidInputError, match="colour"):
        fit_bradley_terry_result(biased.iloc[:50], control=("colour",))


def test_style_controlled_sandwich_falls_back_to_model_based_for_a_model_that_only_tied() -> None:
    battles = simulate_battles(parse_strengths("4", seed=3), 800, seed=3)
    tied = battles[battles["model_a"] == "model-1"].head(12).copy()
    tied["model_a"] = "tied"  # 12 ties with the other models, style columns kept
    tied["winner"] = "tie"
    result = fit_bradley_terry_result(pd.concat([battles, tied]), control=("length",))
    assert result.reasons["tied"] == ("only_ties",)
    robust = result.intervals()["se"]
    model_based = result.intervals(robust=False)["se"]
    # the squared residuals (1/2 - p)^2 of its ties gave it a third of the model-based se
    assert robust["tied"] == pytest.approx(model_based["tied"], rel=0.05)


TTFAB_EFFECT_ELO = 200.0
AUDIO_EFFECT_ELO = 120.0


def _spoken_battles(strengths: pd.Series, n_battles: int, seed: int) -> pd.DataFrame:
    """Speech-out votes where a slower first audio byte loses and a longer reply wins.

    Each model has its own typical time to first audio (0.3-3 s) and reply duration (3-30 s),
    drawn independently of its strength, and each reply varies around them.
    """
    rng = np.random.default_rng(seed)
    names = strengths.index.to_numpy()
    ttfab_typical = rng.uniform(0.3, 3.0, size=len(names))
    audio_typical = rng.uniform(3.0, 30.0, size=len(names))
    a = rng.integers(0, len(names), size=n_battles)
    b = (a + rng.integers(1, len(names), size=n_battles)) % len(names)
    ttfab_a = ttfab_typical[a] * rng.lognormal(0.0, 0.4, size=n_battles)
    ttfab_b = ttfab_typical[b] * rng.lognormal(0.0, 0.4, size=n_battles)
    audio_a = audio_typical[a] * rng.lognormal(0.0, 0.4, size=n_battles)
    audio_b = audio_typical[b] * rng.lognormal(0.0, 0.4, size=n_battles)
    elo = (
        strengths.to_numpy()[a]
        - strengths.to_numpy()[b]
        - TTFAB_EFFECT_ELO * (ttfab_a - ttfab_b) / (ttfab_a + ttfab_b)
        + AUDIO_EFFECT_ELO * (audio_a - audio_b) / (audio_a + audio_b)
    )
    a_wins = rng.random(n_battles) < 1.0 / (1.0 + 10.0 ** (-elo / 400.0))
    return pd.DataFrame(
        {
            "model_a": names[a],
            "model_b": names[b],
            "winner": np.where(a_wins, "model_a", "model_b"),
            "mode": "speech",
            "ttfab_a_s": ttfab_a,
            "ttfab_b_s": ttfab_b,
            "audio_a_s": audio_a,
            "audio_b_s": audio_b,
        }
    )


def test_audio_style_controls_recover_a_known_time_to_first_audio_and_duration_effect(
    strengths: pd.Series,
) -> None:
    battles = _spoken_battles(strengths, 20_000, seed=31)
    controlled = fit_bradley_terry_result(battles, control="ttfab,audio")
    coefficients = controlled.style_intervals()
    z_ttfab = (coefficients.loc["ttfab", "rating"] + TTFAB_EFFECT_ELO) / coefficients.loc[
        "ttfab", "se"
    ]
    z_audio = (coefficients.loc["audio", "rating"] - AUDIO_EFFECT_ELO) / coefficients.loc[
        "audio", "se"
    ]
    assert abs(z_ttfab) < 3.5 and abs(z_audio) < 3.5, (z_ttfab, z_audio)
    assert coefficients.loc["ttfab", "ci_high"] < -100  # clearly found, with the right sign
    z_ratings = (controlled.ratings - strengths) / controlled.intervals().se
    assert z_ratings.abs().max() < 3.5, z_ratings
    plain = fit_bradley_terry_result(battles)
    assert ((plain.ratings - strengths) / plain.intervals().se).abs().max() > 5.0


def test_audio_controls_on_copied_columns_equal_the_latency_control(biased: pd.DataFrame) -> None:
    sample = biased.iloc[:4000].copy()
    sample["ttfab_a_s"], sample["ttfab_b_s"] = sample["ttft_a_s"], sample["ttft_b_s"]
    sample["audio_a_s"], sample["audio_b_s"] = sample["ttft_a_s"], sample["ttft_b_s"]
    latency = fit_bradley_terry_result(sample, control=("length", "latency"))
    for name in ("ttfab", "audio"):
        other = fit_bradley_terry_result(sample, control=("length", name))
        np.testing.assert_allclose(other.ratings, latency.ratings, rtol=0, atol=1e-9)
        np.testing.assert_allclose(
            other.style_coefficients.to_numpy(), latency.style_coefficients.to_numpy(), atol=1e-9
        )
        np.testing.assert_allclose(
            other.style_robust_covariance.to_numpy(),
            latency.style_robust_covariance.to_numpy(),
            atol=1e-9,
        )
        assert list(other.style_coefficients.index) == ["length", name]


def test_a_text_reply_has_no_audio_style_and_the_error_says_so(biased: pd.DataFrame) -> None:
    sample = biased.iloc[:300].copy()
    with pytest.raises(InvalidInputError, match=r"ttfab_a_s and ttfab_b_s.*lack ttfab_a_s"):
        fit_bradley_terry_result(sample, control="ttfab")  # an older frame: no such columns
    sample["audio_a_s"] = sample["ttft_a_s"] * 10
    sample["audio_b_s"] = sample["ttft_b_s"] * 10
    sample.loc[[3, 8, 40], "audio_b_s"] = np.nan  # three text replies among spoken ones
    with pytest.raises(InvalidInputError) as info:
        fit_bradley_terry_result(sample, control=("audio",))
    message = str(info.value)
    assert "'audio_b_s'" in message and "3 row(s)" in message and "row 3" in message
    assert "--mode speech" in message
    assert "--mode speech" not in _error(sample.assign(ttft_a_s=np.nan), "latency")


def _error(battles: pd.DataFrame, control: str) -> str:
    with pytest.raises(InvalidInputError) as info:
        fit_bradley_terry_result(battles, control=control)
    return str(info.value)
