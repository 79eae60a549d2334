"""Metrics: scikit-learn and jiwer numbers, bootstrap intervals, random baselines."""

from __future__ import annotations

import jiwer
import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score

from lamarena.bench.scoring import metrics
from lamarena.bench.scoring.metrics import (
    accuracy,
    macro_f1,
    mean_score,
    metric_versions,
    normalise_transcript,
    random_baseline,
    word_error_rate,
)

ATOL = 1e-9


def test_macro_f1_by_hand_with_an_unparsed_answer() -> None:
    references = ["male", "male", "male", "female", "female", "female"]
    predictions = ["male", "male", "female", "female", None, "female"]
    f1_male = 2 * 2 / (3 + 2)  # tp 2, 3 true, 2 predicted
    f1_female = 2 * 2 / (3 + 3)  # tp 2, 3 true, 3 predicted
    result = macro_f1(references, predictions, n_resamples=200)
    assert result.score == pytest.approx(100 * (f1_male + f1_female) / 2, abs=ATOL)
    assert result.n == 6
    assert result.ci_low is not None and result.ci_high is not None
    assert result.ci_low <= result.score <= result.ci_high


def test_a_label_answered_but_never_true_is_a_class_with_f1_zero() -> None:
    # classes a, b (references) and c (answered, never true): F1 2/3, 1, 0
    result = macro_f1(["a", "a", "b"], ["a", "c", "b"], n_resamples=0)
    assert result.score == pytest.approx(100 * (2 / 3 + 1.0 + 0.0) / 3, abs=ATOL)
    assert result.ci_low is None
    # scikit-learn's default classes (labels in y_true or y_pred), as the study's harness used
    default = f1_score(["a", "a", "b"], ["a", "c", "b"], average="macro")
    assert result.score == pytest.approx(100 * default, abs=ATOL)


def test_an_unparsed_answer_is_wrong_but_forms_no_class() -> None:
    result = macro_f1(["a", "a", "b"], ["a", None, "b"], n_resamples=0)
    assert result.score == pytest.approx(100 * (2 / 3 + 1.0) / 2, abs=ATOL)


def test_a_three_option_set_averages_over_a_to_c_and_its_nominal_chance_is_a_third() -> None:
    result = macro_f1(["A", "B", "C"], ["A", "B", "B"], n_resamples=0)
    assert result.score == pytest.approx(100 * (1 + 2 / 3 + 0) / 3, abs=ATOL)
    assert metrics.nominal_baseline(3) == pytest.approx(100 / 3)


@pytest.mark.parametrize("seed", range(5))
def test_the_vectorised_bootstrap_statistics_equal_sklearn_on_resamples(seed: int) -> None:
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 4, size=(20, 30))
    guess = np.where(rng.random((20, 30)) < 0.3, -1, rng.integers(0, 4, size=(20, 30)))
    f1 = metrics._macro_f1_batch(4)(truth, guess, axis=-1)
    acc = metrics._accuracy_batch(truth, guess, axis=-1)
    for row in range(truth.shape[0]):
        expected = f1_score(truth[row], guess[row], labels=[0, 1, 2, 3], average="macro",
                            zero_division=0)  # fmt: skip
        assert f1[row] == pytest.approx(100 * expected, abs=ATOL)
        assert acc[row] == pytest.approx(100 * accuracy_score(truth[row], guess[row]), abs=ATOL)


def test_accuracy_counts_unparsed_as_wrong() -> None:
    assert accuracy(["a", "b", "a", "b"], ["a", None, "a", "a"], n_resamples=0).score == 50.0


def test_wer_is_jiwer_after_the_whisper_normaliser() -> None:
    references = ["Mr. Smith paid twenty-five dollars.", "Hello, world!"]
    hypotheses = ["mister smith paid $25", "hello word"]
    expected = jiwer.wer(
        [normalise_transcript(text) for text in references],
        [normalise_transcript(text) for text in hypotheses],
    )
    result = word_error_rate(references, hypotheses, n_resamples=100)
    assert result.score == pytest.approx(expected, abs=ATOL)
    assert 0 < result.score < 1
    assert normalise_transcript("Mr. Smith") == "mister smith"


def test_a_missing_transcript_counts_every_word_deleted() -> None:
    assert word_error_rate(["one two three"], [""], n_resamples=0).score == 1.0


def test_bootstrap_interval_is_seeded() -> None:
    values = [1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 0.0]
    first = mean_score(values, n_resamples=300, seed=7)
    assert first == mean_score(values, n_resamples=300, seed=7)
    assert first.score == 62.5
    assert first.ci_low is not None and first.ci_low < 62.5 < (first.ci_high or 0)


@pytest.mark.parametrize(
    ("labels", "expected"),
    [(["yes", "no"], 50.0), (["a", "b", "c", "d"], 25.0), (list("abcdefg"), 100 / 7),
     (list("abcde"), 20.0)],
)  # fmt: skip
def test_balanced_random_baselines_are_table_1s(labels: list[str], expected: float) -> None:
    references = labels * 3
    assert random_baseline(references, labels, "macro_f1") == pytest.approx(expected)
    assert random_baseline(references, labels, "accuracy") == pytest.approx(100 / len(labels))


def test_an_unbalanced_baseline_follows_the_label_distribution() -> None:
    references = ["yes"] * 9 + ["no"]
    f1_yes = 2 * 0.9 * 0.5 / (0.9 + 0.5)
    f1_no = 2 * 0.1 * 0.5 / (0.1 + 0.5)
    assert random_baseline(references, ["yes", "no"], "macro_f1") == pytest.approx(
        100 * (f1_yes + f1_no) / 2
    )


def test_the_baseline_matches_a_simulated_uniform_guesser_when_a_label_has_no_reference() -> None:
    # 150 a, 150 b, labels {a, b, c}: the guesser also answers c, a class with F1 0
    references = ["a"] * 150 + ["b"] * 150
    labels = ["a", "b", "c"]
    expected = random_baseline(references, labels, "macro_f1")
    f1 = 2 * 0.5 * (1 / 3) / (0.5 + 1 / 3)
    assert expected == pytest.approx(100 * 2 * f1 / 3)
    rng = np.random.default_rng(0)
    simulated = [
        macro_f1(references, list(rng.choice(labels, size=len(references))), n_resamples=0).score
        for _ in range(300)
    ]
    assert float(np.mean(simulated)) == pytest.approx(expected, abs=1.0)


def test_metric_versions_name_the_normaliser() -> None:
    versions = metric_versions()
    assert versions["whisper-normalizer"][0].isdigit()
    assert versions["scikit-learn"][0].isdigit()
