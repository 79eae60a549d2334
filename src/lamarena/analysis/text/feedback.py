"""Why people voted: themes of the typed (or transcribed) reasons given with votes.

The study coded 100 reasons by hand into themes (level of detail 31%, helpfulness 24%,
appropriateness of language 12%, accuracy 11%, human-likeness 11%; Li et al. 2025, "Analyses").
:func:`find_feedback_themes` finds themes without hand coding, the way :mod:`.topics` finds
topics: each distinct reason is embedded once (all-MiniLM-L6-v2), the reasons are clustered by
average-linkage agglomerative clustering on cosine distances (the number of themes by
silhouette unless given), and each theme is labelled by its most distinctive terms (c-TF-IDF).
Counts are kept per theme and per winning model.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from lamarena.analysis.battles import validate_battles
from lamarena.analysis.text.embeddings import Embedder, embed_distinct, sentence_embedder
from lamarena.analysis.text.topics import (
    cluster_vectors,
    distinctive_terms,
    representative,
    text_column,
)
from lamarena.errors import InsufficientData, InvalidInputError

__all__ = [
    "DEFAULT_THEME_RANGE",
    "FeedbackResult",
    "Theme",
    "find_feedback_themes",
    "mask_sides",
    "winning_side",
]

DEFAULT_THEME_RANGE = (3, 8)
"""Candidate numbers of themes when none is given."""

MIN_THEME_SHARE = 0.02
"""A cluster with a smaller share of the reasons is folded into its nearest theme."""

_EXAMPLES = 3

_SIDES = re.compile(
    r"\b(?:(?:model|answer|response|reply|option|side|bot)\s+[ab12]"
    r"|the\s+(?:other|first|second|left|right)(?:\s+(?:one|answer|response|reply|model|bot))?)\b",
    re.IGNORECASE,
)
"""Mentions of a side ("Model A", "the other one"): they say who, not why, so they are masked."""


def mask_sides(text: str) -> str:
    """``text`` with mentions of a side replaced by ``it`` (for embedding, not for display).

    ``"Model A gave more detail than the other one"`` becomes ``"it gave more detail than it"``.
    """
    return " ".join(_SIDES.sub("it", text).split())


@dataclass(frozen=True)
class Theme:
    """One theme of the reasons.

    Attributes:
        id: ``"1"``, ``"2"``, ... by size.
        label: its top terms, for people.
        terms: its most distinctive terms, best first (c-TF-IDF).
        count: reasons in it.
        share: its share of all reasons.
        examples: the distinct reasons nearest its centre.
        by_winner: reasons per winning model (``tie`` and ``both_bad`` for those votes).
    """

    id: str
    label: str
    terms: tuple[str, ...]
    count: int
    share: float
    examples: tuple[str, ...]
    by_winner: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "id": self.id,
            "label": self.label,
            "terms": list(self.terms),
            "count": self.count,
            "share": self.share,
            "examples": list(self.examples),
            "by_winner": dict(self.by_winner),
        }


@dataclass(frozen=True, eq=False)
class FeedbackResult:
    """Themes of the vote reasons and each battle's theme.

    Attributes:
        themes: by size.
        theme: theme id of every battle (None without a reason), the battles' index.
        n_battles: battles given.
        n_feedback: battles with a reason.
        n_distinct: distinct reasons (each embedded once).
        silhouettes: silhouette of each number of themes tried (empty when it was given).
        seed: seed of the clustering.
        method: how the themes were made.
    """

    themes: tuple[Theme, ...]
    theme: pd.Series
    n_battles: int
    n_feedback: int
    n_distinct: int
    silhouettes: dict[int, float]
    seed: int
    method: str = "all-MiniLM-L6-v2 embeddings; average-linkage clustering; c-TF-IDF labels"

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe summary: counts, themes with shares, labels and per-winner counts."""
        return {
            "n_battles": self.n_battles,
            "n_feedback": self.n_feedback,
            "n_distinct": self.n_distinct,
            "themes": [theme.to_dict() for theme in self.themes],
            "silhouettes": {str(k): v for k, v in sorted(self.silhouettes.items())},
            "seed": self.seed,
            "method": self.method,
        }


def winning_side(battles: pd.DataFrame) -> pd.Series:
    """The winning model of each battle, or ``tie`` / ``both_bad`` (index kept).

    Raises:
        InvalidInputError: malformed battles.
    """
    clean = validate_battles(battles)
    winner = clean["winner"].to_numpy(dtype=object)
    names = np.where(
        winner == "model_a",
        clean["model_a"].to_numpy(dtype=object),
        np.where(winner == "model_b", clean["model_b"].to_numpy(dtype=object), winner),
    )
    return pd.Series(names, index=battles.index, dtype=object, name="winning")


def find_feedback_themes(
    battles: pd.DataFrame,
    *,
    column: str = "feedback_text",
    n_themes: int | None = None,
    theme_range: tuple[int, int] = DEFAULT_THEME_RANGE,
    n_terms: int = 6,
    max_points: int = 4000,
    embedder: Embedder | None = None,
    seed: int = 0,
) -> FeedbackResult:
    """Group the reasons given with votes into themes.

    Args:
        battles: one row per battle, with ``model_a, model_b, winner`` and the reason column.
        column: the column holding the typed or transcribed reason (None or blank: none given).
        n_themes: number of themes; None chooses it in ``theme_range`` by silhouette.
        theme_range: candidate numbers of themes.
        n_terms: distinctive terms kept per theme.
        max_points: largest clustering tree built (see :func:`.topics.cluster_vectors`).
        embedder: how to embed; None means the packaged all-MiniLM-L6-v2.
        seed: seed of sampling and silhouette estimates.

    Returns:
        The themes with counts per winning model, and each battle's theme.

    Raises:
        InsufficientData: no battle has a reason.
        InvalidInputError: malformed battles, no such column, or bad options.
        ConfigError: the embedding model cannot be loaded.
    """
    if n_terms < 1:
        raise InvalidInputError(f"n_terms must be at least 1, got {n_terms}")
    winning = winning_side(battles)
    reasons = text_column(battles, column)
    present = reasons.notna().to_numpy()
    if not present.any():
        raise InsufficientData(
            f"no vote reasons to group: no battle has a {column} (voters may type or say why; "
            "`lamarena simulate --study` makes some)"
        )
    embed = embedder if embedder is not None else sentence_embedder()

    def embed_masked(texts: Sequence[str]) -> NDArray[np.float32]:
        return embed([mask_sides(t) for t in texts])

    distinct = embed_distinct([str(t) for t in reasons[present]], embedder=embed_masked)
    counts = distinct.counts
    partition = cluster_vectors(
        distinct.vectors,
        counts.astype(np.float64),
        k=n_themes,
        k_range=theme_range,
        linkage="average",
        min_share=MIN_THEME_SHARE,
        seed=seed,
        max_points=max_points,
    )
    terms = distinctive_terms(
        [mask_sides(t) for t in distinct.texts],
        counts,
        partition.labels,
        partition.k,
        n_terms=n_terms,
    )
    row_theme = partition.labels[distinct.inverse]
    winners = winning.to_numpy(dtype=object)[present]
    total = int(counts.sum())
    texts = np.asarray(distinct.texts, dtype=object)
    themes: list[Theme] = []
    for c in range(partition.k):
        members = partition.labels == c
        vectors = distinct.vectors[members]
        nearest = representative(vectors, _EXAMPLES)
        count = int(counts[members].sum())
        by_winner = pd.Series(winners[row_theme == c]).value_counts()
        themes.append(
            Theme(
                id=str(c + 1),
                label=", ".join(terms[c][:3]) if terms[c] else f"theme {c + 1}",
                terms=terms[c],
                count=count,
                share=count / total,
                examples=tuple(str(t) for t in texts[members][nearest]),
                by_winner={str(k): int(v) for k, v in sorted(by_winner.items())},
            )
        )
    theme = np.full(len(battles), None, dtype=object)
    theme[present] = [str(label + 1) for label in row_theme]
    return FeedbackResult(
        themes=tuple(themes),
        theme=pd.Series(theme, index=battles.index, dtype=object, name="theme"),
        n_battles=len(battles),
        n_feedback=total,
        n_distinct=len(distinct.texts),
        silhouettes=dict(partition.silhouettes),
        seed=seed,
    )
