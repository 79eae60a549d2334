"""Topics of many queries: the tree of a seeded sample, every other query assigned to it.

:func:`lamarena.analysis.text.topics.find_topics` builds agglomerative trees over every distinct
transcript: quadratic in time and memory, and it holds every embedding at once. The study
clustered a sample of 1,000 queries. :func:`find_topics_at_scale` does the same when there are
more transcripts than ``sample_size``:

1. a seeded random sample of ``sample_size`` transcripts (rows, so a query asked often is drawn
   as often) is clustered exactly as :func:`find_topics` clusters any set: topics, sub-topics,
   c-TF-IDF labels and examples all come from the sample;
2. every other distinct transcript is embedded in chunks of ``chunk_size`` (no more than one
   chunk of embeddings is held at a time) and joins the topic whose centroid (the unit mean
   direction of the topic's sampled transcripts, in the same embedding space) is nearest by
   cosine, then the nearest sub-topic centroid of that topic; a transcript that also occurs in
   the sample keeps the sample's labels;
3. counts and shares are taken over all transcripts, and topics (and sub-topics within a topic)
   are numbered by their size over all of them.

With ``sample_size`` or fewer transcripts the result is :func:`find_topics`'s, unchanged.

:func:`sampling_agreement` measures what the sample costs: on a seeded subset small enough to
cluster fully (``max_transcripts``, 2,000 by default) it compares the sampled-then-assigned labels
with the labels of the full clustering of the same subset (adjusted Rand index, Hubert & Arabie
1985, and normalised mutual information, scikit-learn). Its cost is bounded by the subset: one
embedding of at most ``max_transcripts`` texts and two clusterings of that size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from sklearn.metrics import (  # type: ignore[import-untyped]
    adjusted_rand_score,
    normalized_mutual_info_score,
)

from lamarena.analysis.text.embeddings import Embedder, embed_distinct, sentence_embedder
from lamarena.analysis.text.topics import (
    DEFAULT_TOPIC_RANGE,
    Topic,
    TopicsResult,
    find_topics,
    text_column,
)
from lamarena.errors import InsufficientData, InvalidInputError

__all__ = [
    "DEFAULT_AGREEMENT_SIZE",
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_SAMPLE_SIZE",
    "SamplingAgreement",
    "find_topics_at_scale",
    "sampling_agreement",
]

DEFAULT_SAMPLE_SIZE = 1000
"""Transcripts clustered when there are more (the study sampled 1,000 queries)."""

DEFAULT_CHUNK_SIZE = 4096
"""Transcripts embedded and assigned at a time (about 6 MB of 384-wide float32 embeddings)."""

DEFAULT_AGREEMENT_SIZE = 2000
"""Largest subset clustered fully to measure the agreement of the sampled labels."""


@dataclass(frozen=True)
class _Options:
    """The options of :func:`find_topics` passed through unchanged."""

    n_topics: int | None
    topic_range: tuple[int, int]
    max_subtopics: int
    min_subtopic_size: int
    n_terms: int
    max_points: int

    def find(
        self, transcripts: pd.Series | Sequence[str | None], embedder: Embedder | None, seed: int
    ) -> TopicsResult:
        return find_topics(
            transcripts,
            n_topics=self.n_topics,
            topic_range=self.topic_range,
            max_subtopics=self.max_subtopics,
            min_subtopic_size=self.min_subtopic_size,
            n_terms=self.n_terms,
            max_points=self.max_points,
            embedder=embedder,
            seed=seed,
        )


def find_topics_at_scale(
    transcripts: pd.Series | Sequence[str | None],
    *,
    sample_size: int | None = DEFAULT_SAMPLE_SIZE,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    n_topics: int | None = None,
    topic_range: tuple[int, int] = DEFAULT_TOPIC_RANGE,
    max_subtopics: int = 6,
    min_subtopic_size: int = 5,
    n_terms: int = 6,
    max_points: int = 4000,
    embedder: Embedder | None = None,
    seed: int = 0,
) -> TopicsResult:
    """Find the topic tree of a seeded sample of the transcripts and assign the rest to it.

    Args:
        transcripts: one query per row (None, NaN or blank without a transcript); a Series
            keeps its index.
        sample_size: transcripts clustered; with this many or fewer (or None) every transcript
            is clustered (:func:`find_topics`, unchanged).
        chunk_size: transcripts embedded and assigned at a time.
        n_topics: as :func:`find_topics`.
        topic_range: as :func:`find_topics`.
        max_subtopics: as :func:`find_topics`.
        min_subtopic_size: as :func:`find_topics`.
        n_terms: as :func:`find_topics`.
        max_points: as :func:`find_topics`.
        embedder: how to embed; None means the packaged all-MiniLM-L6-v2.
        seed: seed of the sample and of the clustering's estimates.

    Returns:
        The tree with every row's topic and sub-topic; when sampled, ``sampling`` says so and
        counts and shares cover every transcript.

    Raises:
        InsufficientData: no row has a transcript.
        InvalidInputError: bad options, or an embedder returning the wrong rows.
        ConfigError: the embedding model cannot be loaded.
    """
    options = _Options(n_topics, topic_range, max_subtopics, min_subtopic_size, n_terms, max_points)
    if sample_size is not None and sample_size < 2:
        raise InvalidInputError(f"sample_size must be at least 2 (or None), got {sample_size}")
    if chunk_size < 1:
        raise InvalidInputError(f"chunk_size must be at least 1, got {chunk_size}")
    series = transcripts if isinstance(transcripts, pd.Series) else pd.Series(list(transcripts))
    clean = text_column(series.to_frame("query_transcript"), "query_transcript")
    rows = np.flatnonzero(clean.notna().to_numpy())
    if sample_size is None or rows.size <= sample_size:
        return options.find(transcripts, embedder, seed)
    embed = embedder if embedder is not None else sentence_embedder()
    rng = np.random.default_rng(seed)
    drawn = rows[np.sort(rng.choice(rows.size, size=sample_size, replace=False))]
    sample = clean.iloc[drawn]
    seen = embed_distinct([str(text) for text in sample], embedder=embed)
    found = options.find(sample, _lookup(seen.texts, seen.vectors, embed), seed)
    tree = _Tree.of(found)
    sample_top = np.array([tree.topic_index[t] for t in found.topic], dtype=np.int64)
    sample_leaf = np.array([tree.leaf_index[s] for s in found.subtopic], dtype=np.int64)
    known_top = np.zeros(len(seen.texts), dtype=np.int64)
    known_leaf = np.zeros(len(seen.texts), dtype=np.int64)
    known_top[seen.inverse] = sample_top
    known_leaf[seen.inverse] = sample_leaf
    top_centres = _unit_means(seen.vectors, known_top, len(tree.topics))
    leaf_centres = _unit_means(seen.vectors, known_leaf, len(tree.leaf_parent))

    codes, uniques = pd.factorize(np.asarray([str(t) for t in clean.iloc[rows]], dtype=object))
    distinct_top = np.zeros(len(uniques), dtype=np.int64)
    distinct_leaf = np.zeros(len(uniques), dtype=np.int64)
    position = {text: i for i, text in enumerate(seen.texts)}
    unknown: list[int] = []
    for i, text in enumerate(uniques):
        at = position.get(str(text))
        if at is None:
            unknown.append(i)
        else:
            distinct_top[i], distinct_leaf[i] = known_top[at], known_leaf[at]
    allowed = tree.leaf_parent[None, :] == np.arange(len(tree.topics))[:, None]
    for start in range(0, len(unknown), chunk_size):
        chunk = np.asarray(unknown[start : start + chunk_size], dtype=np.int64)
        vectors = _embed_chunk(embed, [str(uniques[i]) for i in chunk], top_centres.shape[1])
        top = np.argmax(vectors @ top_centres.T, axis=1)
        leaf_scores = vectors @ leaf_centres.T
        leaf_scores[~allowed[top]] = -np.inf  # a sub-topic of the chosen topic
        distinct_top[chunk] = top
        distinct_leaf[chunk] = np.argmax(leaf_scores, axis=1)
    row_top = distinct_top[codes]
    row_leaf = distinct_leaf[codes]
    topics, top_ids, leaf_ids = tree.renumbered(
        np.bincount(row_top, minlength=len(tree.topics)),
        np.bincount(row_leaf, minlength=len(tree.leaf_parent)),
    )
    topic = np.full(len(clean), None, dtype=object)
    subtopic = np.full(len(clean), None, dtype=object)
    topic[rows] = np.asarray(top_ids, dtype=object)[row_top]
    subtopic[rows] = np.asarray(leaf_ids, dtype=object)[row_leaf]
    return replace(
        found,
        topics=topics,
        topic=pd.Series(topic, index=clean.index, dtype=object, name="topic"),
        subtopic=pd.Series(subtopic, index=clean.index, dtype=object, name="subtopic"),
        n_queries=int(rows.size),
        n_distinct=len(uniques),
        n_missing=len(clean) - int(rows.size),
        method=(
            f"{found.method}; the tree of a seeded random sample of {sample_size} of "
            f"{rows.size} transcripts, every other transcript assigned to the nearest topic, "
            "then sub-topic, centroid (cosine); labels and examples from the sample"
        ),
        sampling={
            "sampled": True,
            "sample_size": sample_size,
            "n_transcripts": int(rows.size),
            "n_assigned": int(rows.size) - sample_size,
            "chunk_size": chunk_size,
        },
    )


@dataclass(frozen=True)
class _Tree:
    """A found tree flattened: topics in order and their leaves (sub-topics, or the topic)."""

    topics: tuple[Topic, ...]
    topic_index: dict[str, int]
    leaf_index: dict[str, int]
    leaf_parent: NDArray[np.int64]

    @classmethod
    def of(cls, found: TopicsResult) -> _Tree:
        leaves: list[str] = []
        parents: list[int] = []
        for t, topic in enumerate(found.topics):
            ids = [sub.id for sub in topic.subtopics] or [topic.id]
            leaves.extend(ids)
            parents.extend([t] * len(ids))
        return cls(
            topics=found.topics,
            topic_index={topic.id: t for t, topic in enumerate(found.topics)},
            leaf_index={leaf: i for i, leaf in enumerate(leaves)},
            leaf_parent=np.asarray(parents, dtype=np.int64),
        )

    def renumbered(
        self, top_counts: NDArray[np.int64], leaf_counts: NDArray[np.int64]
    ) -> tuple[tuple[Topic, ...], list[str], list[str]]:
        """Topics with counts over every transcript, numbered by them (ties: sample order).

        Returns:
            The topics, the new id of each topic index and of each leaf index.
        """
        total = int(top_counts.sum())
        top_ids = [""] * len(self.topics)
        leaf_ids = [""] * self.leaf_parent.size
        out: list[Topic] = []
        order = sorted(range(len(self.topics)), key=lambda t: (-top_counts[t], t))
        for rank, t in enumerate(order, start=1):
            topic = self.topics[t]
            top_ids[t] = str(rank)
            leaves = np.flatnonzero(self.leaf_parent == t)
            subs: list[Topic] = []
            if topic.subtopics:
                by_size = sorted(range(leaves.size), key=lambda j: (-leaf_counts[leaves[j]], j))
                for number, j in enumerate(by_size, start=1):
                    count = int(leaf_counts[leaves[j]])
                    leaf_ids[leaves[j]] = f"{rank}.{number}"
                    subs.append(
                        replace(
                            topic.subtopics[j],
                            id=f"{rank}.{number}",
                            parent=str(rank),
                            count=count,
                            share=count / total,
                        )
                    )
            else:
                leaf_ids[leaves[0]] = str(rank)
            count = int(top_counts[t])
            subtopics = tuple(subs)
            out.append(
                replace(topic, id=str(rank), count=count, share=count / total, subtopics=subtopics)
            )
        return tuple(out), top_ids, leaf_ids


def _unit_means(vectors: NDArray[np.float32], labels: NDArray[np.int64], k: int) -> NDArray[Any]:
    """Unit-length mean direction of each label's vectors (every label has some)."""
    sums = np.zeros((k, vectors.shape[1]), dtype=np.float64)
    np.add.at(sums, labels, vectors.astype(np.float64))
    norms = np.linalg.norm(sums, axis=1, keepdims=True)
    unit: NDArray[Any] = (sums / np.maximum(norms, 1e-12)).astype(np.float32)
    return unit


def _embed_chunk(embed: Embedder, texts: list[str], width: int) -> NDArray[np.float32]:
    """Unit embeddings of one chunk of texts, checked."""
    vectors = np.asarray(embed(texts), dtype=np.float32)
    if vectors.shape != (len(texts), width) or not np.isfinite(vectors).all():
        raise InvalidInputError(
            f"the embedder returned shape {vectors.shape} for {len(texts)} texts; expected "
            f"({len(texts)}, {width}) finite rows, as for the sample"
        )
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.where(norms > 0, norms, 1.0)).astype(np.float32)


def _lookup(texts: Sequence[str], vectors: NDArray[np.float32], fallback: Embedder) -> Embedder:
    """An embedder that answers from vectors already computed (``fallback`` for others)."""
    row = {text: i for i, text in enumerate(texts)}

    def embed(batch: Sequence[str]) -> NDArray[np.float32]:
        if all(text in row for text in batch):
            return vectors[[row[text] for text in batch]]
        return np.asarray(fallback(batch), dtype=np.float32)

    return embed


@dataclass(frozen=True)
class SamplingAgreement:
    """How far the sampled-then-assigned topics agree with a full clustering of the same set.

    Attributes:
        n_transcripts: transcripts compared (all clustered fully).
        sample_size: of which the sampled clustering clustered this many.
        seed: seed of the subset, the sample and both clusterings.
        topic_ari: adjusted Rand index of the two top-level labellings (1: the same partition,
            about 0: chance).
        topic_nmi: their normalised mutual information (arithmetic mean; 1: the same).
        subtopic_ari: adjusted Rand index of the sub-topic labellings.
        subtopic_nmi: their normalised mutual information.
        k_full: topics of the full clustering.
        k_sampled: topics of the sampled one.
    """

    n_transcripts: int
    sample_size: int
    seed: int
    topic_ari: float
    topic_nmi: float
    subtopic_ari: float
    subtopic_nmi: float
    k_full: int
    k_sampled: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "n_transcripts": self.n_transcripts,
            "sample_size": self.sample_size,
            "seed": self.seed,
            "topics": {
                "ari": self.topic_ari,
                "nmi": self.topic_nmi,
                "k_full": self.k_full,
                "k_sampled": self.k_sampled,
            },
            "subtopics": {"ari": self.subtopic_ari, "nmi": self.subtopic_nmi},
            "method": (
                "a seeded subset clustered fully and by its seeded sample with the rest assigned; "
                "adjusted Rand index and normalised mutual information of the two labellings"
            ),
        }


def sampling_agreement(
    transcripts: pd.Series | Sequence[str | None],
    *,
    sample_size: int = DEFAULT_SAMPLE_SIZE,
    max_transcripts: int = DEFAULT_AGREEMENT_SIZE,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    n_topics: int | None = None,
    topic_range: tuple[int, int] = DEFAULT_TOPIC_RANGE,
    max_subtopics: int = 6,
    min_subtopic_size: int = 5,
    n_terms: int = 6,
    max_points: int = 4000,
    embedder: Embedder | None = None,
    seed: int = 0,
) -> SamplingAgreement:
    """Compare the sampled clustering with a full one on a set small enough to cluster fully.

    A seeded subset of at most ``max_transcripts`` transcripts is embedded once; it is clustered
    fully (:func:`find_topics`) and by :func:`find_topics_at_scale` with ``sample_size``, both
    with the same options and seed, and the two labellings are compared.

    Args:
        transcripts: one query per row (None, NaN or blank without a transcript).
        sample_size: transcripts the sampled clustering clusters.
        max_transcripts: largest subset compared (its cost: one full clustering of it).
        chunk_size: as :func:`find_topics_at_scale`.
        n_topics: as :func:`find_topics`.
        topic_range: as :func:`find_topics`.
        max_subtopics: as :func:`find_topics`.
        min_subtopic_size: as :func:`find_topics`.
        n_terms: as :func:`find_topics`.
        max_points: as :func:`find_topics`.
        embedder: how to embed; None means the packaged all-MiniLM-L6-v2.
        seed: seed of the subset, the sample and the clusterings.

    Returns:
        The agreement.

    Raises:
        InsufficientData: the subset has ``sample_size`` transcripts or fewer (nothing would be
            sampled), or there are no transcripts.
        InvalidInputError: bad options.
    """
    options = _Options(n_topics, topic_range, max_subtopics, min_subtopic_size, n_terms, max_points)
    series = transcripts if isinstance(transcripts, pd.Series) else pd.Series(list(transcripts))
    clean = text_column(series.to_frame("query_transcript"), "query_transcript")
    rows = np.flatnonzero(clean.notna().to_numpy())
    if rows.size > max_transcripts:
        rng = np.random.default_rng(seed)
        rows = rows[np.sort(rng.choice(rows.size, size=max_transcripts, replace=False))]
    if rows.size <= sample_size:
        raise InsufficientData(
            f"{rows.size} transcripts to compare (at most {max_transcripts}), no more than the "
            f"sample of {sample_size}: there is no sampling to measure"
        )
    subset = clean.iloc[rows]
    embed = embedder if embedder is not None else sentence_embedder()
    seen = embed_distinct([str(text) for text in subset], embedder=embed)
    cached = _lookup(seen.texts, seen.vectors, embed)
    full = options.find(subset, cached, seed)
    sampled = find_topics_at_scale(
        subset,
        sample_size=sample_size,
        chunk_size=chunk_size,
        n_topics=n_topics,
        topic_range=topic_range,
        max_subtopics=max_subtopics,
        min_subtopic_size=min_subtopic_size,
        n_terms=n_terms,
        max_points=max_points,
        embedder=cached,
        seed=seed,
    )
    return SamplingAgreement(
        n_transcripts=int(rows.size),
        sample_size=sample_size,
        seed=seed,
        topic_ari=float(adjusted_rand_score(full.topic, sampled.topic)),
        topic_nmi=float(normalized_mutual_info_score(full.topic, sampled.topic)),
        subtopic_ari=float(adjusted_rand_score(full.subtopic, sampled.subtopic)),
        subtopic_nmi=float(normalized_mutual_info_score(full.subtopic, sampled.subtopic)),
        k_full=len(full.topics),
        k_sampled=len(sampled.topics),
    )
