"""What a dataset's score means, for comparing it with the study's Table 1 (kept in run.json).

Each dataset's entry says how its metric is computed here, where that could differ from the
study's or another harness's number: which classes macro-F1 averages over, Table 1's nominal
random baseline, how open answers are scored (PEDANTS verdicts, and the continuous CFMatch named
apart), and for ASR the text normaliser and what an empty transcript scores.
"""

from __future__ import annotations

from typing import Any

from lamarena.bench.data.spec import DatasetSpec, Metric
from lamarena.bench.scoring.metrics import metric_versions, nominal_baseline

__all__ = ["MACRO_F1_CLASSES", "comparability"]

MACRO_F1_CLASSES = (
    "the labels the dataset can take (its label set, or a multiple-choice set's option letters) "
    "that occur in its references or parsed answers, as scikit-learn's f1_score does by default; "
    "an unparsed answer is wrong and forms no class"
)
"""Which classes a macro-F1 averages over."""

_EMPTY_HYPOTHESIS = (
    "a failed or empty transcript counts every reference word as a deletion (WER 1 for the "
    "sample), the same count as AudioBench's, which replaces an empty hypothesis by the word "
    "'empty' (one substitution and the rest deletions)"
)
_NORMALISER = (
    "OpenAI Whisper's English normaliser (whisper-normalizer's EnglishTextNormalizer) on both "
    "sides, then jiwer; AudioBench also maps the digits 0-20 and the tens back to words and "
    "drops 'uh, um, er, ah', so its WER can differ slightly on numbers and fillers; corpus WER "
    "(all errors over all reference words), as AudioBench reports"
)


def comparability(spec: DatasetSpec) -> dict[str, Any]:
    """How ``spec``'s score is computed, for comparison with Table 1 (see the module docstring)."""
    entry: dict[str, Any] = {"metric": spec.metric.value}
    if spec.metric.is_classification:
        entry["classes"] = MACRO_F1_CLASSES if spec.metric is Metric.MACRO_F1 else "accuracy"
        if spec.labels is not None:
            entry["nominal_baseline"] = nominal_baseline(len(spec.labels))
        else:
            entry["nominal_baseline"] = "100/K for K options: baselines.json nominal_score"
        entry["baselines"] = (
            "baselines.json: nominal_score (Table 1's 1/K) and score (a uniform guesser given "
            "this set's label distribution)"
        )
    elif spec.metric is Metric.WER:
        versions = metric_versions()
        entry["normaliser"] = _NORMALISER
        entry["versions"] = {name: versions[name] for name in ("whisper-normalizer", "jiwer")}
        entry["empty_hypothesis"] = _EMPTY_HYPOTHESIS
        entry["unit"] = "fraction (Table 1's asr column)"
    elif spec.metric is Metric.PEDANTS:
        entry["pedants"] = "per sample 1 or 0 by PEDANT.evaluate(reference, answer, question)"
        entry["cfmatch"] = (
            "the continuous score named 'cfmatch' in scores.json: PEDANTS' probability that the "
            "answer is correct (qa-metrics' get_scores), the maximum over references, computed "
            "as DiVA-Eval's qa_eval.py computes CFMatch; its CFMatcher (qa-metrics 0.2.16) is a "
            "different classifier, which installed qa-metrics no longer ships"
        )
        entry["question"] = spec.question_column
        entry["llm_judge"] = "AudioBench's alternative, only with --judge, named apart"
    return entry
