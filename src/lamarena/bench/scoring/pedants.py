"""The study's metric for open answers: PEDANTS answer equivalence from the ``qa-metrics`` package.

PEDANTS (the successor of CFMatch) is a learned classifier, not an LLM: scikit-learn models that
judge whether a candidate answer means the same as the reference, given the question. A sample
scores 1 when ``PEDANT.evaluate(reference, candidate, question)`` says it does, else 0; the
dataset's score is the mean, in percent.

The continuous score named ``cfmatch`` is the classifier's probability that the candidate is
correct, ``PEDANT.get_scores(references, candidate, question)``, the maximum over the
references: computed as DiVA-Eval's ``qa_eval.py`` computes CFMatch, but with PEDANTS'
classifier, since the installed qa-metrics no longer ships ``CFMatcher`` (DiVA-Eval pinned
0.2.16). A candidate containing the normalised reference scores 1.

The classifier's four files (:data:`PEDANTS_FILES`) come from ``settings.pedants_model_dir`` or,
when that is not set, from the package's own ``classifier`` folder, where
``qa_metrics.pedant.PEDANT()`` downloads them from GitHub on first use. lamarena never downloads
them itself: where they are missing, the metric is reported as unavailable with the reason, and
no other score is put in its place. ``PEDANT()`` is never called (it would try the network on
every construction); the files are loaded here with joblib and set on an instance, which the
package's own ``evaluate`` then uses. Importing ``qa_metrics`` asks nltk to download six corpora;
that import runs with ``nltk.download`` stubbed out, since the fast evaluation used here needs
none of them.

Loading the files unpickles them: point ``pedants_model_dir`` only at files you trust.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lamarena.errors import ConfigError

__all__ = [
    "PEDANTS_FILES",
    "PedantsScorer",
    "PedantsUnavailable",
    "load_pedants",
    "package_model_dir",
]

logger = logging.getLogger(__name__)

PEDANTS_FILES = (
    "lr_classifier.pkl",
    "tf-idf_vectorizer.pkl",
    "rule_classifier.pkl",
    "type_classifier.pkl",
)
"""The file names ``qa_metrics.pedant.PEDANT`` loads (its classifier, vectoriser, rule and type
models)."""

_FETCH_HINT = (
    "on a machine with internet access run `python -c 'from qa_metrics.pedant import PEDANT; "
    "PEDANT()'` (it saves them in qa_metrics/classifier), then copy that folder here and set "
    "LAMARENA_PEDANTS_MODEL_DIR to it"
)


@dataclass(frozen=True)
class PedantsUnavailable:
    """Why the PEDANTS metric cannot be computed here (shown to the user, kept in run.json)."""

    reason: str


def package_model_dir() -> Path | None:
    """Where ``qa-metrics`` keeps its downloaded model files, found without importing it."""
    spec = importlib.util.find_spec("qa_metrics")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "classifier"


def _no_download(*args: object, **kwargs: object) -> bool:
    return True


@functools.cache
def _pedant_class() -> Any:
    """``qa_metrics.pedant.PEDANT``, imported with nltk's downloader stubbed out."""
    import nltk  # type: ignore[import-untyped]

    original = nltk.download
    nltk.download = _no_download
    try:
        from qa_metrics.pedant import PEDANT  # type: ignore[import-untyped]
    finally:
        nltk.download = original
    return PEDANT


class PedantsScorer:
    """Answer equivalence by the PEDANTS classifier (see the module docstring)."""

    def __init__(self, pedant: Any, model_dir: Path) -> None:
        self._pedant = pedant
        self.model_dir = model_dir

    def judge(self, reference: str, candidate: str, question: str = "") -> float:
        """1.0 when ``candidate`` answers ``question`` as ``reference`` does, else 0.0.

        Raises:
            ConfigError: the model files do not fit this version of qa-metrics.
        """
        if not reference.strip() or not candidate.strip():
            return 0.0
        try:
            verdict = self._pedant.evaluate(reference, candidate, question)
        except (ValueError, AttributeError, IndexError, TypeError) as exc:
            raise ConfigError(
                f"the PEDANTS model files in {self.model_dir} do not fit the installed "
                f"qa-metrics ({type(exc).__name__}: {exc}); {_FETCH_HINT}"
            ) from exc
        return 1.0 if verdict else 0.0

    def confidence(self, references: str | list[str], candidate: str, question: str = "") -> float:
        """CFMatch: the probability that ``candidate`` is correct, the maximum over references.

        Raises:
            ConfigError: the model files do not fit this version of qa-metrics.
        """
        wanted = [references] if isinstance(references, str) else list(references)
        wanted = [reference for reference in wanted if reference.strip()]
        if not wanted or not candidate.strip():
            return 0.0
        try:
            scores = self._pedant.get_scores(wanted, candidate, question)
            values = [float(score) for found in scores.values() for score in found.values()]
        except (ValueError, AttributeError, IndexError, TypeError) as exc:
            raise ConfigError(
                f"the PEDANTS model files in {self.model_dir} do not fit the installed "
                f"qa-metrics ({type(exc).__name__}: {exc}); {_FETCH_HINT}"
            ) from exc
        return max(values)


def load_pedants(model_dir: Path | None) -> PedantsScorer | PedantsUnavailable:
    """The PEDANTS scorer from ``model_dir`` (or the package's folder), or why there is none.

    Args:
        model_dir: a folder holding :data:`PEDANTS_FILES`; None for the package's own folder.

    Returns:
        A ready scorer, or a :class:`PedantsUnavailable` saying what is missing and how to get it.
    """
    if importlib.util.find_spec("qa_metrics") is None:
        return PedantsUnavailable(
            "PEDANTS is unavailable: the qa-metrics package is not installed "
            "(pip install --no-deps qa-metrics)"
        )
    directory = model_dir if model_dir is not None else package_model_dir()
    if directory is None:
        return PedantsUnavailable("PEDANTS is unavailable: qa-metrics cannot be located")
    missing = [name for name in PEDANTS_FILES if not (directory / name).is_file()]
    if missing:
        return PedantsUnavailable(
            f"PEDANTS is unavailable: {directory} lacks {', '.join(missing)}; {_FETCH_HINT}"
        )
    import joblib  # type: ignore[import-untyped]

    pedant = _pedant_class().__new__(_pedant_class())
    pedant.fast_eval = True
    pedant.fast_model = False
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            pedant.model = joblib.load(directory / "lr_classifier.pkl")
            pedant.tokenizer = joblib.load(directory / "tf-idf_vectorizer.pkl")
            pedant.rule_model = joblib.load(directory / "rule_classifier.pkl")
            pedant.type_model = joblib.load(directory / "type_classifier.pkl")
    except Exception as exc:  # unpickling can fail in many ways; all mean "unusable files"
        return PedantsUnavailable(
            f"PEDANTS is unavailable: the files in {directory} cannot be loaded "
            f"({type(exc).__name__}: {exc})"
        )
    for warning in caught:
        logger.warning("loading PEDANTS from %s: %s", directory, warning.message)
    return PedantsScorer(pedant, directory)
