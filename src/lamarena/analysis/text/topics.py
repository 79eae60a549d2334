"""What people ask: topics of spoken queries, a two-level tree, and a leaderboard per topic.

The study (Li et al. 2025, "Analyses") found four main topics of arena queries (knowledge
expansion, advice seeking, chat, task execution) with sub-topics, by hierarchical clustering of
query embeddings. :func:`find_topics` does the same, offline and deterministically:

1. each distinct transcript is embedded once (all-MiniLM-L6-v2, :mod:`.embeddings`);
2. average-linkage agglomerative clustering on cosine distances (scikit-learn
   ``AgglomerativeClustering``) builds one tree over the distinct transcripts; it is cut into
   ``n_topics`` top-level topics, or into the number in ``topic_range`` with the best silhouette,
   clusters of under 2% of the queries folded into their nearest topic (average linkage, unlike
   Ward's, lets one topic hold half the queries, as knowledge expansion does in the study);
3. each topic's transcripts are clustered again, with Ward's linkage, into sub-topics: 2 to
   ``max_subtopics`` by silhouette measured against structureless reference data, or none when
   the topic shows no more structure than that reference (:func:`split_topic`);
4. each cluster is labelled by its most distinctive terms, class-based TF-IDF (c-TF-IDF,
   Grootendorst 2022) computed by hand over scikit-learn's ``CountVectorizer`` counts.

:func:`topic_leaderboards` then ranks the models within each topic (Bradley-Terry with intervals,
:func:`lamarena.analysis.ranking.leaderboard.build_leaderboard`), flagging topics with few battles.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy.sparse import csr_matrix
from sklearn.cluster import AgglomerativeClustering  # type: ignore[import-untyped]
from sklearn.feature_extraction.text import (  # type: ignore[import-untyped]
    ENGLISH_STOP_WORDS,
    CountVectorizer,
)
from sklearn.metrics import silhouette_score  # type: ignore[import-untyped]

from lamarena.analysis.ranking.leaderboard import LeaderboardResult, build_leaderboard
from lamarena.analysis.text.embeddings import DistinctTexts, Embedder, embed_distinct
from lamarena.errors import InsufficientData, InvalidInputError

__all__ = [
    "DEFAULT_TOPIC_RANGE",
    "Partition",
    "SubtopicChoice",
    "Topic",
    "TopicLeaderboard",
    "TopicsResult",
    "cluster_vectors",
    "distinctive_terms",
    "find_topics",
    "representative",
    "split_topic",
    "text_column",
    "topic_leaderboards",
]

DEFAULT_TOPIC_RANGE = (3, 8)
"""Candidate numbers of top-level topics ("a handful") when none is given."""

MIN_TOPIC_SHARE = 0.02
"""A top-level cluster with a smaller share of the queries is folded into its nearest topic."""

SILHOUETTE_TOLERANCE = 0.01
"""The fewest clusters whose silhouette is within this of the best win (parsimony: silhouettes
of neighbouring cuts often differ by less than their noise)."""

MIN_SUBTOPIC_EXCESS = 0.05
"""A topic is split into sub-topics only if some split's silhouette beats that of the same split
of structureless reference data by this much (and by two reference standard deviations)."""

REFERENCE_DRAWS = 5
"""Structureless reference data sets drawn per topic to calibrate its sub-topic silhouettes."""

_REFERENCE_POINTS = 400
"""Largest reference data set (a sample of the topic's points above it)."""

_EXAMPLES = 3
_TOKEN = r"(?u)\b[a-zA-Z][a-zA-Z'-]+\b"
_SPOKEN_FILLERS = frozenset(
    {"um", "uh", "erm", "hmm", "okay", "ok", "oh", "yeah", "well", "gonna", "wanna"}
)
"""Spoken fillers, left out of labels along with English stop words and their contractions."""


def _stop_words() -> list[str]:
    words = set(ENGLISH_STOP_WORDS) | _SPOKEN_FILLERS
    contractions = {
        f"{word}'{ending}"
        for word in ("i", "you", "we", "they", "he", "she", "it", "that", "what", "there", "let")
        for ending in ("m", "ve", "re", "s", "d", "ll")
    }
    negations = {
        f"{word}n't"
        for word in ("do", "does", "did", "is", "are", "was", "were", "have", "has", "could")
    }
    return sorted(words | contractions | negations | {"can't", "won't", "don't"})


def representative(
    vectors: NDArray[np.float32], count: int, *, redundant: float = 0.9
) -> list[int]:
    """Up to ``count`` rows nearest the centre of ``vectors``, skipping near-duplicates.

    Rows are taken by cosine similarity to the mean direction; one more similar than
    ``redundant`` to a row already taken (the same query with another opening) is passed over.

    Returns:
        Row indices, most central first.
    """
    centre = vectors.mean(axis=0)
    picked: list[int] = []
    for index in np.argsort(-(vectors @ centre), kind="stable"):
        row = int(index)
        if all(float(vectors[row] @ vectors[other]) < redundant for other in picked):
            picked.append(row)
        if len(picked) == count:
            break
    return picked


@dataclass(frozen=True, eq=False)
class Partition:
    """A flat clustering of points.

    Attributes:
        labels: cluster of every point, ``0 .. k - 1`` from the heaviest cluster down.
        k: number of clusters.
        silhouettes: silhouette score of each candidate ``k`` tried (empty if none was chosen).
    """

    labels: NDArray[np.int64]
    k: int
    silhouettes: dict[int, float] = field(default_factory=dict)


Linkage = Literal["average", "ward"]


def _tree(points: NDArray[np.float32], linkage: Linkage) -> NDArray[np.int64]:
    """The merges of the full agglomerative tree over ``points`` (scikit-learn ``children_``).

    ``average`` uses cosine distances, ``ward`` Euclidean ones (the same order on unit vectors).
    """
    options: dict[str, Any] = {"metric": "cosine"} if linkage == "average" else {}
    model = AgglomerativeClustering(
        n_clusters=None,
        distance_threshold=0.0,
        compute_full_tree=True,
        linkage=linkage,
        **options,
    ).fit(points)
    return np.asarray(model.children_, dtype=np.int64)


def _cut(children: NDArray[np.int64], size: int, k: int) -> NDArray[np.int64]:
    """Clusters left after the first ``size - k`` merges of a tree (its top ``k - 1`` undone).

    Average and Ward merges come in order of increasing height, so this is the cut into ``k``
    clusters (what ``AgglomerativeClustering(n_clusters=k)`` returns, without rebuilding the tree).
    """
    parent = np.arange(2 * size - 1)
    steps = max(size - k, 0)
    merged = children[:steps]
    parent[merged[:, 0]] = size + np.arange(steps)
    parent[merged[:, 1]] = size + np.arange(steps)
    while True:  # pointer doubling: every node ends at its root
        jumped = parent[parent]
        if np.array_equal(jumped, parent):
            break
        parent = jumped
    _, labels = np.unique(parent[:size], return_inverse=True)
    return labels.astype(np.int64).reshape(-1)


def _centroids(points: NDArray[np.float32], labels: NDArray[np.int64], k: int) -> NDArray[Any]:
    """Unit-length mean direction of each cluster."""
    centres = np.stack([points[labels == c].mean(axis=0) for c in range(k)])
    unit: NDArray[Any] = centres / np.maximum(np.linalg.norm(centres, axis=1, keepdims=True), 1e-12)
    return unit


def _absorb(
    points: NDArray[np.float32],
    labels: NDArray[np.int64],
    weights: NDArray[np.float64],
    min_share: float,
) -> NDArray[np.int64]:
    """Fold clusters lighter than ``min_share`` of the weight into the nearest heavier one.

    Average linkage leaves a few outlying queries as clusters of their own; they are not topics.
    """
    k = int(labels.max()) + 1
    totals = np.bincount(labels, weights=weights, minlength=k)
    kept = np.flatnonzero(totals >= min_share * totals.sum())
    if kept.size in (0, k):
        return labels
    centres = _centroids(points, labels, k)[kept]
    out = labels.copy()
    small = ~np.isin(labels, kept)
    out[small] = kept[np.argmax(points[small] @ centres.T, axis=1)]
    _, renumbered = np.unique(out, return_inverse=True)
    return renumbered.astype(np.int64).reshape(-1)


def _by_weight(labels: NDArray[np.int64], weights: NDArray[np.float64]) -> NDArray[np.int64]:
    """Renumber clusters from the heaviest down (ties: the one seen first)."""
    k = int(labels.max()) + 1 if labels.size else 0
    totals = np.bincount(labels, weights=weights, minlength=k)
    first = np.full(k, labels.size)
    np.minimum.at(first, labels, np.arange(labels.size))
    order = sorted(range(k), key=lambda c: (-totals[c], first[c]))
    rank = np.empty(k, dtype=np.int64)
    rank[order] = np.arange(k)
    return rank[labels]


def cluster_vectors(
    vectors: NDArray[np.float32],
    weights: NDArray[np.float64] | None = None,
    *,
    k: int | None = None,
    k_range: tuple[int, int] = DEFAULT_TOPIC_RANGE,
    linkage: Linkage = "average",
    min_share: float = 0.0,
    seed: int = 0,
    max_points: int = 4000,
) -> Partition:
    """Cut an agglomerative tree over unit ``vectors`` into ``k`` clusters or the best number.

    Without ``k`` the smallest number in ``k_range`` (inclusive) whose cut's cosine silhouette
    score (Rousseeuw 1987) is within :data:`SILHOUETTE_TOLERANCE` of the best wins. Clusters
    lighter than ``min_share`` of the total weight are folded into the nearest heavier cluster
    (by centroid) before the silhouette is taken. Above ``max_points`` points the tree is built
    over a seeded random sample and every other point joins the cluster with the nearest centroid
    (a tree needs quadratic memory).

    Args:
        vectors: ``(n, width)`` points (L2-normalised embeddings).
        weights: how many items each point stands for; default 1 each.
        k: the number of clusters, or None to choose it.
        k_range: candidate numbers when ``k`` is None.
        linkage: ``average`` (cosine; copes with clusters of very different sizes) or ``ward``
            (Euclidean; even-sized clusters).
        min_share: lightest cluster kept, as a share of the weight.
        seed: seed of the sample and of the silhouette estimate.
        max_points: largest tree built.

    Returns:
        The partition, clusters numbered from the heaviest down.

    Raises:
        InvalidInputError: no points, a ``k`` below 1, an empty ``k_range`` or a ``min_share``
            outside [0, 1).
    """
    size = int(vectors.shape[0])
    w = np.ones(size) if weights is None else np.asarray(weights, dtype=np.float64)
    if size == 0:
        raise InvalidInputError("no points to cluster")
    if k is not None and k < 1:
        raise InvalidInputError(f"the number of clusters must be at least 1, got {k}")
    if k is None and not 1 <= k_range[0] <= k_range[1]:
        raise InvalidInputError(f"cluster range {k_range} is empty; give (low, high), 1 <= low")
    if not 0.0 <= min_share < 1.0:
        raise InvalidInputError(f"min_share must be in [0, 1), got {min_share}")
    rng = np.random.default_rng(seed)
    chosen = np.arange(size)
    if size > max_points:
        chosen = np.sort(rng.choice(size, size=max_points, replace=False))
    points = vectors[chosen]
    n = int(points.shape[0])
    if n == 1 or k == 1:
        return Partition(labels=np.zeros(size, dtype=np.int64), k=1)
    children = _tree(points, linkage)
    scores: dict[int, float] = {}

    def cut(count: int) -> NDArray[np.int64]:
        return _absorb(points, _cut(children, n, count), w[chosen], min_share)

    if k is not None:
        labels = cut(min(k, n))
    else:
        candidates = [c for c in range(k_range[0], k_range[1] + 1) if 2 <= c < n]
        if not candidates:
            labels = cut(min(k_range[0], n))
        else:
            cuts = {c: cut(c) for c in candidates}
            sample = min(n, 3000)
            for c, labelled in cuts.items():
                if labelled.max() < 1:  # everything folded into one cluster
                    scores[c] = -1.0
                    continue
                scores[c] = float(
                    silhouette_score(
                        points, labelled, metric="cosine", sample_size=sample, random_state=seed
                    )
                )
            top = max(scores.values())
            best = min(c for c in candidates if scores[c] >= top - SILHOUETTE_TOLERANCE)
            labels = cuts[best]
    if size > n:
        labels = _nearest_centroid(vectors, chosen, labels)
    labels = _by_weight(labels, w)
    return Partition(labels=labels, k=int(labels.max()) + 1, silhouettes=scores)


def _nearest_centroid(
    vectors: NDArray[np.float32], chosen: NDArray[np.int64], labels: NDArray[np.int64]
) -> NDArray[np.int64]:
    """Every point's cluster: the nearest centroid of the clustered sample (by cosine)."""
    k = int(labels.max()) + 1
    centres = _centroids(vectors[chosen], labels, k)
    out = np.argmax(vectors @ centres.T, axis=1).astype(np.int64)
    out[chosen] = labels  # sampled points keep their tree cluster
    return np.asarray(out, dtype=np.int64)


@dataclass(frozen=True, eq=False)
class SubtopicChoice:
    """How many sub-topics a topic was split into, and the silhouette curve behind it.

    Attributes:
        k: sub-topics chosen (1: the topic was not split).
        max_k: the most that were allowed.
        silhouettes: cosine silhouette of the Ward cut into each candidate ``k``.
        reference: mean silhouette of the same cuts of structureless reference data.
        reference_sd: standard deviation of that over the :data:`REFERENCE_DRAWS` draws.
        reason: the rule's outcome in words.
    """

    k: int
    max_k: int
    silhouettes: dict[int, float]
    reference: dict[int, float]
    reference_sd: dict[int, float]
    reason: str

    @property
    def excess(self) -> dict[int, float]:
        """Silhouette above the reference's, per candidate ``k``."""
        return {k: v - self.reference[k] for k, v in self.silhouettes.items()}

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form: the chosen ``k`` and the curve, one entry per candidate ``k``."""
        excess = self.excess
        return {
            "k": self.k,
            "max_k": self.max_k,
            "at_cap": self.k > 1 and self.k == self.max_k,
            "rule": self.reason,
            "silhouette": [
                {
                    "k": k,
                    "silhouette": self.silhouettes[k],
                    "reference": self.reference[k],
                    "reference_sd": self.reference_sd[k],
                    "excess": excess[k],
                }
                for k in sorted(self.silhouettes)
            ],
        }


def _reference_silhouettes(
    points: NDArray[np.float32], max_k: int, seed: int
) -> tuple[dict[int, float], dict[int, float]]:
    """Mean and spread of the Ward-cut silhouettes of structureless data shaped like ``points``.

    Each draw is Gaussian with the points' mean and covariance (so as spread out and as
    elongated, but with no clusters), put back on the unit sphere, and clustered as they are.
    """
    rng = np.random.default_rng(seed)
    if points.shape[0] > _REFERENCE_POINTS:
        points = points[np.sort(rng.choice(points.shape[0], _REFERENCE_POINTS, replace=False))]
    size = int(points.shape[0])
    values = points.astype(np.float64)  # LAPACK's float32 SVD is ten times slower here
    centre = values.mean(axis=0)
    _, spread, axes = np.linalg.svd(values - centre, full_matrices=False)
    scale = spread / np.sqrt(max(size - 1, 1))
    curves: list[dict[int, float]] = []
    for _ in range(REFERENCE_DRAWS):
        drawn = rng.standard_normal((size, scale.size)) * scale @ axes + centre
        drawn /= np.maximum(np.linalg.norm(drawn, axis=1, keepdims=True), 1e-12)
        null = cluster_vectors(
            drawn.astype(np.float32), k_range=(2, max_k), linkage="ward", seed=seed
        )
        curves.append(null.silhouettes)
    ks = sorted(set.intersection(*(set(curve) for curve in curves)))
    mean = {k: float(np.mean([curve[k] for curve in curves])) for k in ks}
    sd = {k: float(np.std([curve[k] for curve in curves], ddof=1)) for k in ks}
    return mean, sd


def split_topic(
    vectors: NDArray[np.float32],
    weights: NDArray[np.float64] | None = None,
    *,
    max_k: int = 6,
    seed: int = 0,
    max_points: int = 4000,
) -> tuple[Partition, SubtopicChoice]:
    """Split one topic's points into sub-topics, or leave it whole.

    The Ward tree over the points is cut into every ``k`` from 2 to ``max_k`` and each cut's
    cosine silhouette is measured. A silhouette means little on its own: the silhouette of Ward
    cuts grows with ``k`` even for a featureless cloud, the more so the fewer the points and the
    more elongated the cloud. So the same cuts are made of :data:`REFERENCE_DRAWS` reference
    data sets with the topic's own mean and covariance but no clusters (the Gaussian null of
    SigClust, Liu et al. 2008; the reference idea of the gap statistic, Tibshirani et al. 2001),
    and each ``k`` is scored by its *excess* silhouette over the reference mean. The rule:

    1. the topic is split only if the best excess reaches :data:`MIN_SUBTOPIC_EXCESS` and two
       reference standard deviations (otherwise it has no structure beyond noise: one
       sub-topic, the topic itself);
    2. the smallest ``k`` whose excess is within one reference standard deviation (at least
       :data:`SILHOUETTE_TOLERANCE`) of the best wins (a one-standard-error rule: parsimony).

    Args:
        vectors: ``(n, width)`` unit points of one topic.
        weights: how many queries each point stands for.
        max_k: most sub-topics.
        seed: seed of the reference draws, samples and silhouette estimates.
        max_points: largest tree built (see :func:`cluster_vectors`).

    Returns:
        The partition (``k == 1`` when not split) and how it was chosen.
    """
    size = int(vectors.shape[0])
    if max_k < 2 or size < 4:
        whole = Partition(labels=np.zeros(size, dtype=np.int64), k=1)
        return whole, SubtopicChoice(1, max_k, {}, {}, {}, "too few queries to split")
    found = cluster_vectors(
        vectors, weights, k_range=(2, max_k), linkage="ward", seed=seed, max_points=max_points
    )
    reference, sd = _reference_silhouettes(vectors, max_k, seed)
    curve = {k: v for k, v in found.silhouettes.items() if k in reference}
    if not curve:
        whole = Partition(labels=np.zeros(size, dtype=np.int64), k=1)
        return whole, SubtopicChoice(1, max_k, {}, {}, {}, "too few queries to split")
    excess = {k: v - reference[k] for k, v in curve.items()}
    best = max(excess, key=lambda k: (excess[k], -k))
    bar = max(MIN_SUBTOPIC_EXCESS, 2.0 * sd[best])
    ref = {k: reference[k] for k in curve}
    spread = {k: sd[k] for k in curve}
    if excess[best] < bar:
        reason = (
            f"not split: best excess silhouette {excess[best]:.3f} (k={best}) is under "
            f"{bar:.3f}, the larger of {MIN_SUBTOPIC_EXCESS} and two reference SDs"
        )
        whole = Partition(labels=np.zeros(size, dtype=np.int64), k=1, silhouettes=curve)
        return whole, SubtopicChoice(1, max_k, curve, ref, spread, reason)
    slack = max(sd[best], SILHOUETTE_TOLERANCE)
    k = min(c for c in curve if excess[c] >= excess[best] - slack)
    reason = (
        f"split: best excess silhouette {excess[best]:.3f} at k={best}; smallest k within "
        f"{slack:.3f} (one reference SD) of it: {k}"
    )
    chosen = cluster_vectors(
        vectors, weights, k=k, linkage="ward", seed=seed, max_points=max_points
    )
    partition = Partition(labels=chosen.labels, k=chosen.k, silhouettes=curve)
    return partition, SubtopicChoice(chosen.k, max_k, curve, ref, spread, reason)


def distinctive_terms(
    texts: Sequence[str],
    counts: NDArray[np.int64],
    labels: NDArray[np.int64],
    k: int,
    *,
    n_terms: int = 6,
) -> list[tuple[str, ...]]:
    """The most distinctive terms of each cluster by class-based TF-IDF (c-TF-IDF).

    c-TF-IDF (Grootendorst 2022, BERTopic) treats each cluster as one document: the weight of
    term ``t`` in cluster ``c`` is ``tf(t, c) * log(1 + A / f(t))`` with ``tf`` the term's share
    of the cluster's words, ``f(t)`` its frequency over all clusters and ``A`` the average number
    of words per cluster. It is written here by hand over scikit-learn's ``CountVectorizer``
    (English stop words, their contractions and spoken fillers removed; words and two-word
    phrases). Equal weights put the longer phrase first, and a term overlapping a better one
    (``holes`` after ``black holes``) is skipped.

    Args:
        texts: distinct texts.
        counts: occurrences of each text (repeats weigh in).
        labels: cluster of each text, ``0 .. k - 1``.
        k: number of clusters.
        n_terms: terms per cluster.

    Returns:
        One tuple of terms per cluster, best first (empty when a cluster has no content words).
    """
    vectorizer = CountVectorizer(
        stop_words=_stop_words(), ngram_range=(1, 2), token_pattern=_TOKEN, lowercase=True
    )
    try:
        matrix = vectorizer.fit_transform(list(texts))
    except ValueError:  # only stop words: no vocabulary at all
        return [() for _ in range(k)]
    membership = csr_matrix(
        (counts.astype(np.float64), (labels, np.arange(len(texts)))), shape=(k, len(texts))
    )
    per_class = np.asarray((membership @ matrix).todense(), dtype=np.float64)
    words = per_class.sum(axis=1, keepdims=True)
    tf = per_class / np.where(words > 0, words, 1.0)
    frequency = per_class.sum(axis=0)
    average = per_class.sum() / max(k, 1)
    idf = np.log1p(average / np.where(frequency > 0, frequency, 1.0))
    weights = tf * idf
    vocabulary = np.asarray(vectorizer.get_feature_names_out(), dtype=object)
    lengths = np.array([term.count(" ") + 1 for term in vocabulary])
    out: list[tuple[str, ...]] = []
    for c in range(k):
        picked: list[str] = []
        for index in np.lexsort((-lengths, -weights[c])):  # by weight, then longer phrase first
            if len(picked) == n_terms or per_class[c, index] <= 0:
                break
            term = str(vocabulary[index])
            if any(_contains(term, other) or _contains(other, term) for other in picked):
                continue
            picked.append(term)
        out.append(tuple(picked))
    return out


def _contains(phrase: str, part: str) -> bool:
    return f" {part} " in f" {phrase} "


@dataclass(frozen=True)
class Topic:
    """One topic (or sub-topic) of the queries.

    Attributes:
        id: ``"1"``, ``"2"``, ... for topics by size; ``"1.1"``, ``"1.2"``, ... for sub-topics.
        label: its top terms, for people (``"facts, explain, history"``).
        terms: its most distinctive terms, best first (c-TF-IDF).
        count: queries in it (repeats included).
        share: its share of all queries with a transcript.
        examples: the distinct queries nearest its centre.
        parent: the topic a sub-topic belongs to; None for a topic.
        subtopics: its sub-topics, by size (empty when it was not split).
        choice: how its number of sub-topics was chosen; None for a sub-topic.
    """

    id: str
    label: str
    terms: tuple[str, ...]
    count: int
    share: float
    examples: tuple[str, ...]
    parent: str | None = None
    subtopics: tuple[Topic, ...] = ()
    choice: SubtopicChoice | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (sub-topics nested)."""
        out: dict[str, Any] = {
            "id": self.id,
            "label": self.label,
            "terms": list(self.terms),
            "count": self.count,
            "share": self.share,
            "examples": list(self.examples),
        }
        if self.parent is None:
            out["subtopics"] = [sub.to_dict() for sub in self.subtopics]
            out["subtopic_choice"] = None if self.choice is None else self.choice.to_dict()
        else:
            out["parent"] = self.parent
        return out


@dataclass(frozen=True, eq=False)
class TopicsResult:
    """The topic tree of a set of queries and every query's place in it.

    Attributes:
        topics: top-level topics by size, each with its sub-topics.
        topic: top-level topic id of every input row (None without a transcript), input index.
        subtopic: sub-topic id of every input row (the topic id when it has no sub-topics).
        n_queries: rows with a transcript.
        n_distinct: distinct transcripts (each embedded once).
        n_missing: rows without a transcript.
        silhouettes: silhouette of each number of topics tried (empty when it was given).
        seed: seed of the clustering.
        method: how the tree was made.
        sampling: None when every transcript was clustered; otherwise how the tree was found on a
            seeded sample and the rest assigned (``sampled``, ``sample_size``, ``n_transcripts``,
            ``chunk_size``; :func:`lamarena.analysis.text.topics_scale.find_topics_at_scale`).
    """

    topics: tuple[Topic, ...]
    topic: pd.Series
    subtopic: pd.Series
    n_queries: int
    n_distinct: int
    n_missing: int
    silhouettes: dict[int, float]
    seed: int
    method: str = (
        "all-MiniLM-L6-v2 embeddings; topics by average-linkage agglomerative clustering "
        "(cosine), sub-topics by Ward's; c-TF-IDF labels"
    )
    sampling: dict[str, Any] | None = None

    def find(self, topic_id: str) -> Topic:
        """The topic or sub-topic with this id.

        Raises:
            InvalidInputError: no such id.
        """
        for topic in self.topics:
            if topic.id == topic_id:
                return topic
            for sub in topic.subtopics:
                if sub.id == topic_id:
                    return sub
        raise InvalidInputError(f"no topic {topic_id!r}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe summary: counts, the tree with shares and labels, and the method.

        A sampled tree adds the keys of ``sampling`` (``sampled: true`` among them).
        """
        out: dict[str, Any] = {
            "n_queries": self.n_queries,
            "n_distinct": self.n_distinct,
            "n_missing": self.n_missing,
            "topics": [topic.to_dict() for topic in self.topics],
            "silhouettes": {str(k): v for k, v in sorted(self.silhouettes.items())},
            "silhouette": [{"k": k, "silhouette": v} for k, v in sorted(self.silhouettes.items())],
            "k": len(self.topics),
            "seed": self.seed,
            "method": self.method,
        }
        if self.sampling is not None:
            out.update(self.sampling)
        return out


def text_column(frame: pd.DataFrame, column: str) -> pd.Series:
    """A text column with every kind of missing or blank value as None (index kept).

    Raises:
        InvalidInputError: no such column.
    """
    if column not in frame.columns:
        raise InvalidInputError(f"battles have no {column!r} column")
    values = [
        value.strip() if isinstance(value, str) and value.strip() else None
        for value in frame[column].to_numpy(dtype=object)
    ]
    return pd.Series(values, index=frame.index, dtype=object, name=column)


def find_topics(
    transcripts: pd.Series | Sequence[str | None],
    *,
    n_topics: int | None = None,
    topic_range: tuple[int, int] = DEFAULT_TOPIC_RANGE,
    max_subtopics: int = 6,
    min_subtopic_size: int = 5,
    n_terms: int = 6,
    max_points: int = 4000,
    embedder: Embedder | None = None,
    seed: int = 0,
) -> TopicsResult:
    """Find a two-level tree of topics in query transcripts.

    Args:
        transcripts: one query per row (None, NaN or blank for a battle without a transcript);
            a Series keeps its index in the result.
        n_topics: number of top-level topics; None chooses it in ``topic_range`` by silhouette.
        topic_range: candidate numbers of topics.
        max_subtopics: most sub-topics per topic (how many: :func:`split_topic`).
        min_subtopic_size: fewest distinct queries per sub-topic a split aims for (a topic with
            fewer than twice as many is not split).
        n_terms: distinctive terms kept per cluster.
        max_points: largest Ward tree built (see :func:`cluster_vectors`).
        embedder: how to embed; None means the packaged all-MiniLM-L6-v2.
        seed: seed of sampling and silhouette estimates (the clustering itself is exact).

    Returns:
        The topic tree and each row's topic and sub-topic.

    Raises:
        InsufficientData: no row has a transcript.
        InvalidInputError: bad options.
        ConfigError: the embedding model cannot be loaded.
    """
    series = transcripts if isinstance(transcripts, pd.Series) else pd.Series(list(transcripts))
    clean = text_column(series.to_frame("query_transcript"), "query_transcript")
    present = clean.notna().to_numpy()
    if not present.any():
        raise InsufficientData(
            "no query transcripts to find topics in: the battles need a query_transcript (the "
            "arena stores one per battle; `lamarena simulate --study` makes some)"
        )
    if max_subtopics < 1 or min_subtopic_size < 1 or n_terms < 1:
        raise InvalidInputError(
            "max_subtopics, min_subtopic_size and n_terms must each be at least 1"
        )
    texts = [str(t) for t in clean[present]]
    distinct = embed_distinct(texts, embedder=embedder)
    counts = distinct.counts
    top = cluster_vectors(
        distinct.vectors,
        counts.astype(np.float64),
        k=n_topics,
        k_range=topic_range,
        linkage="average",
        min_share=MIN_TOPIC_SHARE,
        seed=seed,
        max_points=max_points,
    )
    sub_labels = np.zeros(len(distinct.texts), dtype=np.int64)
    sub_counts: list[int] = []
    choices: list[SubtopicChoice] = []
    for c in range(top.k):
        members = np.flatnonzero(top.labels == c)
        split, choice = split_topic(
            distinct.vectors[members],
            counts[members].astype(np.float64),
            max_k=min(max_subtopics, members.size // min_subtopic_size),
            seed=seed,
            max_points=max_points,
        )
        sub_labels[members] = sum(sub_counts) + split.labels
        sub_counts.append(split.k)
        choices.append(choice)
    n_sub = sum(sub_counts)
    top_terms = distinctive_terms(distinct.texts, counts, top.labels, top.k, n_terms=n_terms)
    sub_terms = distinctive_terms(distinct.texts, counts, sub_labels, n_sub, n_terms=n_terms)
    total = int(counts.sum())
    topics: list[Topic] = []
    for c in range(top.k):
        members = top.labels == c
        subs: list[Topic] = []
        first = sum(sub_counts[:c])
        if sub_counts[c] > 1:
            for j in range(sub_counts[c]):
                inside = sub_labels == first + j
                subs.append(
                    _topic(f"{c + 1}.{j + 1}", sub_terms[first + j], inside, distinct, total, c)
                )
        topic = _topic(str(c + 1), top_terms[c], members, distinct, total, None, subs)
        topics.append(replace(topic, choice=choices[c]))
    row_top = np.full(len(clean), None, dtype=object)
    row_sub = np.full(len(clean), None, dtype=object)
    row_top[present] = [str(label + 1) for label in top.labels[distinct.inverse]]
    sub_ids = _sub_ids(topics, sub_counts)
    row_sub[present] = [sub_ids[label] for label in sub_labels[distinct.inverse]]
    return TopicsResult(
        topics=tuple(topics),
        topic=pd.Series(row_top, index=clean.index, dtype=object, name="topic"),
        subtopic=pd.Series(row_sub, index=clean.index, dtype=object, name="subtopic"),
        n_queries=total,
        n_distinct=len(distinct.texts),
        n_missing=int((~present).sum()),
        silhouettes=dict(top.silhouettes),
        seed=seed,
    )


def _sub_ids(topics: Sequence[Topic], sub_counts: Sequence[int]) -> list[str]:
    """The id of every global sub-cluster: a sub-topic's id, or its topic's when unsplit."""
    ids: list[str] = []
    for topic, count in zip(topics, sub_counts, strict=True):
        ids.extend([sub.id for sub in topic.subtopics] if count > 1 else [topic.id])
    return ids


def _topic(
    topic_id: str,
    terms: tuple[str, ...],
    members: NDArray[np.bool_],
    distinct: DistinctTexts,
    total: int,
    parent: int | None,
    subtopics: Sequence[Topic] = (),
) -> Topic:
    """A :class:`Topic` over the distinct texts in ``members``."""
    vectors = distinct.vectors[members]
    texts = np.asarray(distinct.texts, dtype=object)[members]
    count = int(distinct.counts[members].sum())
    nearest = representative(vectors, _EXAMPLES)
    label = ", ".join(terms[:3]) if terms else f"topic {topic_id}"
    return Topic(
        id=topic_id,
        label=label,
        terms=terms,
        count=count,
        share=count / total if total else 0.0,
        examples=tuple(str(texts[i]) for i in nearest),
        parent=None if parent is None else str(parent + 1),
        subtopics=tuple(subtopics),
    )


@dataclass(frozen=True, eq=False)
class TopicLeaderboard:
    """The leaderboard of the battles of one topic.

    Attributes:
        topic: the topic id.
        label: its label.
        n_battles: battles whose query is in the topic.
        thin: fewer than ``thin_battles`` battles: read the ratings as provisional.
        leaderboard: the ratings, or None when the topic's battles cannot be ranked.
        note: why there is no leaderboard, or None.
    """

    topic: str
    label: str
    n_battles: int
    thin: bool
    leaderboard: LeaderboardResult | None
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form; ``leaderboard`` is the ``leaderboard --json`` document or None."""
        return {
            "topic": self.topic,
            "label": self.label,
            "n_battles": self.n_battles,
            "thin": self.thin,
            "note": self.note,
            "leaderboard": None if self.leaderboard is None else self.leaderboard.to_dict(),
        }


def topic_leaderboards(
    battles: pd.DataFrame,
    topics: TopicsResult,
    *,
    n_resamples: int = 1000,
    seed: int | None = 0,
    min_battles: int = 10,
    thin_battles: int = 100,
    confidence: float = 0.95,
) -> tuple[TopicLeaderboard, ...]:
    """A Bradley-Terry leaderboard within each top-level topic.

    Each topic's battles are ranked on their own (:func:`build_leaderboard`: bootstrap intervals,
    a model with fewer than ``min_battles`` battles in the topic, or no finite rating, is
    provisional). A topic with fewer than ``thin_battles`` battles is flagged ``thin``.

    Args:
        battles: the battles ``topics`` was found for (same index).
        topics: from :func:`find_topics` on ``battles["query_transcript"]``.
        n_resamples: bootstrap rounds per topic.
        seed: bootstrap seed.
        min_battles: per-model provisional threshold within a topic.
        thin_battles: fewest battles for a topic not to be flagged thin.
        confidence: interval coverage.

    Returns:
        One entry per topic, in the order of ``topics.topics``.

    Raises:
        InvalidInputError: ``topics`` does not index the same rows as ``battles``.
    """
    if not topics.topic.index.equals(battles.index):
        raise InvalidInputError(
            "the topics were found for other battles (their index differs); run find_topics on "
            "these battles' query_transcript"
        )
    out: list[TopicLeaderboard] = []
    for topic in topics.topics:
        inside = battles[(topics.topic == topic.id).to_numpy()]
        board: LeaderboardResult | None = None
        note = None
        try:
            board = build_leaderboard(
                inside,
                n_resamples=n_resamples,
                seed=seed,
                min_battles=min_battles,
                confidence=confidence,
            )
        except InsufficientData as exc:
            note = str(exc)
        out.append(
            TopicLeaderboard(
                topic=topic.id,
                label=topic.label,
                n_battles=len(inside),
                thin=len(inside) < thin_battles,
                leaderboard=board,
                note=note,
            )
        )
    return tuple(out)
