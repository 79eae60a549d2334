"""The study's metrics, with a bootstrap confidence interval over samples for every score.

- **macro-F1** and **accuracy** (classification) from scikit-learn, in percent. The classes
  averaged are the labels of the dataset's label set (a multiple-choice set: its option letters)
  that occur in its references or its parsed answers: scikit-learn's own default (the labels
  present in ``y_true`` or ``y_pred``), as the study's harness called it, without the
  "unparsed" pseudo-label. An unparsed or ambiguous answer is wrong (it costs the true class its
  recall) and forms no class; a label answered but never true is a class with F1 0; a label
  neither true nor answered does not enter the average. So a 3-option set averages over A-C,
  never over a D no row has.
- **WER** (ASR) with jiwer after OpenAI Whisper's English text normaliser (the
  ``whisper-normalizer`` package, whose version :func:`metric_versions` records), as a fraction:
  the corpus WER, total word errors over total reference words.
- **mean** of per-sample scores in [0, 1] (PEDANTS judgements, LLM-judge ratings), in percent.

Confidence intervals are percentile bootstrap intervals (``scipy.stats.bootstrap``, samples
resampled with replacement, paired across references and predictions, seeded). The statistic
inside the bootstrap is vectorised numpy that equals the scikit-learn or jiwer number on every
resample (a test checks it), so thousands of resamples take milliseconds.

The **random baseline** of a classification set is the expected score of a guesser that picks
uniformly among the labels, computed from the set's label distribution: with K labels and label
frequencies p_k, class k has expected precision p_k and recall 1/K, so its F1 is
2 p_k (1/K) / (p_k + 1/K), and macro-F1 is their sum over K (a label no reference has is a class
with F1 0: the guesser answers it): 1/K for balanced labels; accuracy is 1/K.
Table 1's **nominal** baseline is 1/K itself (50, 25, 14.3, 20; 33.3 for a 3-option set):
:func:`nominal_baseline`.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "BOOTSTRAP_RESAMPLES",
    "CONFIDENCE_LEVEL",
    "MetricResult",
    "accuracy",
    "macro_f1",
    "mean_score",
    "metric_versions",
    "nominal_baseline",
    "normalise_transcript",
    "random_baseline",
    "word_error_rate",
    "word_errors",
]

BOOTSTRAP_RESAMPLES = 1000
"""Default number of bootstrap resamples per score."""

CONFIDENCE_LEVEL = 0.95
"""Level of every confidence interval."""


@dataclass(frozen=True)
class MetricResult:
    """A score with its bootstrap confidence interval.

    Attributes:
        score: the point estimate (percent, or a fraction for WER).
        ci_low: the interval's lower end; None with fewer than two samples.
        ci_high: the interval's upper end; None with fewer than two samples.
        n: the number of samples.
    """

    score: float
    ci_low: float | None
    ci_high: float | None
    n: int


def metric_versions() -> dict[str, str]:
    """Versions of the packages the metrics come from (recorded in ``run.json``)."""
    versions: dict[str, str] = {}
    for package in ("scikit-learn", "jiwer", "whisper-normalizer", "scipy", "qa-metrics"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


@functools.cache
def _english_normaliser() -> Callable[[str], str]:
    from whisper_normalizer.english import (  # type: ignore[import-untyped]
        EnglishTextNormalizer,
    )

    normaliser: Callable[[str], str] = EnglishTextNormalizer()
    return normaliser


def normalise_transcript(text: str) -> str:
    """Whisper's English normaliser (spelling, numbers, punctuation, filler words)."""
    return _english_normaliser()(text)


def _bootstrap(
    statistic: Callable[..., NDArray[np.float64]],
    data: tuple[NDArray[Any], ...],
    *,
    n_resamples: int,
    seed: int,
) -> tuple[float | None, float | None]:
    """Percentile bootstrap interval of a vectorised, paired statistic."""
    n = data[0].shape[0]
    if n < 2 or n_resamples < 1:
        return None, None
    from scipy.stats import bootstrap

    result = bootstrap(
        data,
        statistic,
        paired=True,
        vectorized=True,
        n_resamples=n_resamples,
        confidence_level=CONFIDENCE_LEVEL,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    low, high = result.confidence_interval
    return float(low), float(high)


def _encode(
    references: Sequence[str], predictions: Sequence[str | None]
) -> tuple[NDArray[np.int64], NDArray[np.int64], int]:
    """Integer codes: labels in the references or answers are 0..K-1, unparsed (None) is -1."""
    present = set(references) | {label for label in predictions if label is not None}
    classes = {label: code for code, label in enumerate(sorted(present))}
    truth = np.array([classes[label] for label in references], dtype=np.int64)
    guess = np.array(
        [classes.get(label, -1) if label is not None else -1 for label in predictions],
        dtype=np.int64,
    )
    return truth, guess, len(classes)


def _macro_f1_batch(n_classes: int) -> Callable[..., NDArray[np.float64]]:
    def statistic(truth: NDArray[Any], guess: NDArray[Any], axis: int = -1) -> Any:
        scores = []
        for k in range(n_classes):
            is_true = truth == k
            is_guess = guess == k
            tp = np.sum(is_true & is_guess, axis=axis)
            denominator = np.sum(is_true, axis=axis) + np.sum(is_guess, axis=axis)
            with np.errstate(invalid="ignore", divide="ignore"):
                scores.append(np.where(denominator > 0, 2.0 * tp / denominator, 0.0))
        return 100.0 * np.mean(scores, axis=0)

    return statistic


def _accuracy_batch(truth: NDArray[Any], guess: NDArray[Any], axis: int = -1) -> Any:
    return 100.0 * np.mean(truth == guess, axis=axis)


def macro_f1(
    references: Sequence[str],
    predictions: Sequence[str | None],
    *,
    n_resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> MetricResult:
    """Macro-F1 in percent over the labels in ``references`` or ``predictions`` (scikit-learn).

    Args:
        references: the true labels.
        predictions: the parsed labels; None for an unparsed answer (always wrong).
        n_resamples: bootstrap resamples for the interval.
        seed: seed of the bootstrap.
    """
    from sklearn.metrics import f1_score  # type: ignore[import-untyped]

    truth, guess, n_classes = _encode(references, predictions)
    score = 100.0 * float(
        f1_score(truth, guess, labels=list(range(n_classes)), average="macro", zero_division=0)
    )
    low, high = _bootstrap(
        _macro_f1_batch(n_classes), (truth, guess), n_resamples=n_resamples, seed=seed
    )
    return MetricResult(score, low, high, len(references))


def accuracy(
    references: Sequence[str],
    predictions: Sequence[str | None],
    *,
    n_resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> MetricResult:
    """Accuracy in percent (scikit-learn); an unparsed answer (None) is wrong."""
    from sklearn.metrics import accuracy_score

    truth, guess, _ = _encode(references, predictions)
    score = 100.0 * float(accuracy_score(truth, guess))
    low, high = _bootstrap(_accuracy_batch, (truth, guess), n_resamples=n_resamples, seed=seed)
    return MetricResult(score, low, high, len(references))


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(word errors, reference words) of one transcript after Whisper's English normaliser."""
    import jiwer

    words = jiwer.process_words(normalise_transcript(reference), normalise_transcript(hypothesis))
    errors = words.substitutions + words.deletions + words.insertions
    return int(errors), int(words.substitutions + words.deletions + words.hits)


def _wer_batch(errors: NDArray[Any], lengths: NDArray[Any], axis: int = -1) -> Any:
    total = np.sum(lengths, axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, np.sum(errors, axis=axis) / total, 0.0)


def word_error_rate(
    references: Sequence[str],
    hypotheses: Sequence[str],
    *,
    n_resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> MetricResult:
    """Corpus WER as a fraction (jiwer after Whisper's English normaliser).

    A missing hypothesis (a failed call) should be passed as "": every reference word is then
    a deletion.
    """
    pairs = [word_errors(ref, hyp) for ref, hyp in zip(references, hypotheses, strict=True)]
    errors = np.array([e for e, _ in pairs], dtype=np.float64)
    lengths = np.array([n for _, n in pairs], dtype=np.float64)
    score = float(_wer_batch(errors, lengths))
    low, high = _bootstrap(_wer_batch, (errors, lengths), n_resamples=n_resamples, seed=seed)
    return MetricResult(score, low, high, len(pairs))


def _mean_batch(values: NDArray[Any], axis: int = -1) -> Any:
    return 100.0 * np.mean(values, axis=axis)


def mean_score(
    values: Sequence[float], *, n_resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0
) -> MetricResult:
    """The mean of per-sample scores in [0, 1], in percent."""
    array = np.asarray(values, dtype=np.float64)
    score = float(_mean_batch(array)) if array.size else 0.0
    low, high = _bootstrap(_mean_batch, (array,), n_resamples=n_resamples, seed=seed)
    return MetricResult(score, low, high, int(array.size))


def nominal_baseline(n_labels: int) -> float:
    """Table 1's random baseline: 100 / K for K labels (or options)."""
    return 100.0 / n_labels if n_labels > 0 else 0.0


def random_baseline(references: Sequence[str], labels: Sequence[str], metric: str) -> float:
    """Expected score (percent) of guessing uniformly among ``labels``, given the references.

    A uniform guesser answers every label (over a set of any size), so every label is a class of
    the macro-F1 (:func:`macro_f1`): one no reference has has F1 0, and the mean runs over all
    ``labels``.

    Args:
        references: the true labels of the evaluated samples.
        labels: the label set the guesser draws from (the option letters of a choice set).
        metric: ``macro_f1`` or ``accuracy``.
    """
    n_labels = len(labels)
    if not references or n_labels == 0:
        return 0.0
    if metric == "accuracy":
        return 100.0 / n_labels
    guess = 1.0 / n_labels
    counts = Counter(references)
    shares = [count / len(references) for count in counts.values()]
    f1s = [2 * share * guess / (share + guess) for share in shares]
    return 100.0 * float(sum(f1s)) / max(n_labels, len(counts))
