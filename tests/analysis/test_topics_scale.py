"""Topics at scale: a seeded sample clustered, the rest assigned, agreement with a full clustering.

The simulation's truth is set: queries drawn from the study's planted topic templates
(:func:`lamarena.simulation.simulate_queries`) with one to three noise words each (filler an ASR
transcript carries, shared by every topic) put at random places, so nearly every transcript is
distinct and has to be embedded and assigned on its own.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import adjusted_rand_score

from lamarena.analysis.text import embeddings
from lamarena.analysis.text.topics import TopicsResult, find_topics
from lamarena.analysis.text.topics_scale import (
    SamplingAgreement,
    find_topics_at_scale,
    sampling_agreement,
)
from lamarena.errors import InsufficientData, InvalidInputError
from lamarena.report.numbers import StudyOptions, _topics
from lamarena.simulation import parse_strengths, simulate_battles, simulate_queries

N_STUDY = 3000
TRUTH_ARI = 0.8
"""Against the planted topics: the bar the full clustering of the study simulation meets
(``test_topics.ARI_TARGET``); sampling 1,000 of 3,000 must not cost the recovery."""
AGREEMENT_ARI = 0.9
AGREEMENT_NMI = 0.9
"""Against the full clustering of 2,000: at most about one transcript in twenty placed
differently (an ARI of 0.9 on five topics); measured 0.99 and 0.98 with MiniLM."""
SUBTOPIC_NMI = 0.8
"""Sub-topics are cut from smaller sets and vary more; their information must mostly agree."""

NOISE = [
    "really",
    "actually",
    "basically",
    "just",
    "like",
    "today",
    "please",
    "quickly",
    "honestly",
    "maybe",
    "right",
    "now",
    "again",
    "so",
    "um",
    "you",
    "know",
    "kind",
    "of",
]


def noisy_queries(n: int, seed: int) -> pd.DataFrame:
    """``n`` planted queries (``topic``, ``subtopic``) with one to three noise words each."""
    queries = simulate_queries(n, seed=seed)
    rng = np.random.default_rng(seed + 1)
    texts = []
    for text in queries["query_transcript"]:
        words = text.split()
        for _ in range(int(rng.integers(1, 4))):
            words.insert(int(rng.integers(0, len(words) + 1)), NOISE[rng.integers(len(NOISE))])
        texts.append(" ".join(words))
    queries["query_transcript"] = texts
    return queries


def hashed(texts: Sequence[str]) -> np.ndarray:
    """A tiny deterministic embedder for logic tests: hashed word counts."""
    out = np.zeros((len(texts), 64), dtype=np.float32)
    for row, text in enumerate(texts):
        for word in text.lower().split():
            out[row, sum(map(ord, word)) % 64] += 1.0
    return out


class Spy:
    """An embedder that records the size of every call."""

    def __init__(self, inner=hashed) -> None:
        self.inner = inner
        self.calls: list[int] = []
        self.texts: list[str] = []

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(len(texts))
        self.texts.extend(texts)
        return self.inner(texts)


class Memo:
    """The packaged MiniLM with every text embedded once across the tests of this module."""

    def __init__(self) -> None:
        self.inner = embeddings.sentence_embedder()
        self.cache: dict[str, np.ndarray] = {}

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        missing = [text for text in dict.fromkeys(texts) if text not in self.cache]
        if missing:
            self.cache.update(zip(missing, self.inner(missing), strict=True))
        return np.stack([self.cache[text] for text in texts])


@pytest.fixture(scope="module")
def minilm() -> Memo:
    return Memo()


@pytest.fixture(scope="module")
def study(minilm: Memo) -> tuple[pd.DataFrame, TopicsResult]:
    queries = noisy_queries(N_STUDY, seed=0)
    return queries, find_topics_at_scale(queries["query_transcript"], embedder=minilm, seed=0)


def test_sampled_topics_recover_the_planted_topics(study) -> None:
    queries, result = study
    assert queries["query_transcript"].nunique() > 0.99 * N_STUDY  # the noise makes them distinct
    ari = adjusted_rand_score(queries["topic"], result.topic)
    assert ari >= TRUTH_ARI, f"adjusted Rand index {ari:.3f} against the planted topics"
    biggest = result.topics[0]
    members = queries["topic"][result.topic == biggest.id]
    assert members.value_counts(normalize=True).index[0] == "knowledge_expansion"


def test_a_sampled_tree_counts_every_transcript_and_says_it_was_sampled(study) -> None:
    queries, result = study
    document = result.to_dict()
    assert document["sampled"] is True
    assert document["sample_size"] == 1000 and document["n_transcripts"] == N_STUDY
    assert document["n_assigned"] == N_STUDY - 1000 and document["seed"] == 0
    assert "sample of 1000 of 3000" in document["method"]
    assert result.n_queries == N_STUDY and result.n_missing == 0
    assert result.n_distinct == queries["query_transcript"].nunique()
    assert result.topic.notna().all() and result.subtopic.notna().all()
    counts = [topic.count for topic in result.topics]
    assert sum(counts) == N_STUDY and counts == sorted(counts, reverse=True)
    assert sum(topic.share for topic in result.topics) == pytest.approx(1.0)
    assert [topic.id for topic in result.topics] == [str(i + 1) for i in range(len(counts))]
    for topic in result.topics:
        assert topic.count == int((result.topic == topic.id).sum())
        if topic.subtopics:
            sub_counts = [sub.count for sub in topic.subtopics]
            assert sum(sub_counts) == topic.count and sub_counts == sorted(sub_counts)[::-1]
            for number, sub in enumerate(topic.subtopics, start=1):
                assert sub.id == f"{topic.id}.{number}" and sub.parent == topic.id
                assert sub.count == int((result.subtopic == sub.id).sum())
        else:
            assert (result.subtopic[result.topic == topic.id] == topic.id).all()
    for topic_id, sub_id in zip(result.topic, result.subtopic, strict=True):
        assert sub_id == topic_id or sub_id.startswith(f"{topic_id}.")


def test_sampled_labels_agree_with_a_full_clustering(study, minilm: Memo) -> None:
    queries, _ = study
    agreement = sampling_agreement(queries["query_transcript"], embedder=minilm, seed=0)
    assert agreement.n_transcripts == 2000 and agreement.sample_size == 1000
    assert agreement.topic_ari >= AGREEMENT_ARI, agreement
    assert agreement.topic_nmi >= AGREEMENT_NMI, agreement
    assert agreement.subtopic_nmi >= SUBTOPIC_NMI, agreement
    document = agreement.to_dict()
    assert document["topics"]["ari"] == agreement.topic_ari
    assert set(document) == {
        "n_transcripts",
        "sample_size",
        "seed",
        "topics",
        "subtopics",
        "method",
    }


def test_assignment_is_deterministic_for_a_seed() -> None:
    texts = noisy_queries(900, seed=3)["query_transcript"]
    first = find_topics_at_scale(texts, sample_size=300, embedder=hashed, seed=7)
    again = find_topics_at_scale(texts, sample_size=300, embedder=hashed, seed=7)
    assert first.topic.equals(again.topic) and first.subtopic.equals(again.subtopic)
    assert first.to_dict() == again.to_dict()


def test_at_or_below_the_sample_size_nothing_changes() -> None:
    texts = noisy_queries(300, seed=5)["query_transcript"]
    texts.iloc[[3, 40]] = None
    plain = find_topics(texts, embedder=hashed, seed=2)
    for sample_size in (300, 5000, None):
        same = find_topics_at_scale(texts, sample_size=sample_size, embedder=hashed, seed=2)
        assert same.to_dict() == plain.to_dict()
        assert "sampled" not in same.to_dict() and same.sampling is None
        assert same.topic.equals(plain.topic) and same.subtopic.equals(plain.subtopic)


def test_the_rest_is_embedded_in_chunks_each_text_once() -> None:
    texts = noisy_queries(1500, seed=1)["query_transcript"]
    texts = pd.concat([texts, texts.iloc[:200]], ignore_index=True)  # repeats: embedded once
    spy = Spy()
    result = find_topics_at_scale(texts, sample_size=300, chunk_size=64, embedder=spy, seed=0)
    sample_call, *chunks = spy.calls
    assert sample_call <= 300  # the sample's distinct texts, once (the clustering reuses them)
    assert chunks and max(chunks) == 64 and all(1 <= size <= 64 for size in chunks)
    assert len(spy.texts) == len(set(spy.texts)) == texts.nunique() == result.n_distinct
    assert result.n_queries == 1700
    # a text asked twice has one topic, whether it was in the sample or assigned
    for text, group in result.topic.groupby(texts):
        assert group.nunique() == 1, text


def test_rows_without_a_transcript_keep_no_topic_and_the_index() -> None:
    texts = noisy_queries(400, seed=2)["query_transcript"]
    texts.index = range(1000, 1400)
    texts.iloc[::10] = None
    result = find_topics_at_scale(texts, sample_size=100, embedder=hashed, seed=0)
    assert list(result.topic.index) == list(texts.index)
    assert result.topic.isna().sum() == 40 and result.n_missing == 40 and result.n_queries == 360
    assert result.to_dict()["n_transcripts"] == 360


def test_bad_options_and_a_bad_embedder_are_refused() -> None:
    texts = noisy_queries(200, seed=4)["query_transcript"]
    with pytest.raises(InvalidInputError, match="sample_size"):
        find_topics_at_scale(texts, sample_size=1, embedder=hashed)
    with pytest.raises(InvalidInputError, match="chunk_size"):
        find_topics_at_scale(texts, sample_size=50, chunk_size=0, embedder=hashed)

    def narrow_after_the_sample(batch: Sequence[str]) -> np.ndarray:
        return hashed(batch) if len(batch) > 40 else hashed(batch)[:, :8]

    with pytest.raises(InvalidInputError, match="embedder returned shape"):
        find_topics_at_scale(texts, sample_size=50, chunk_size=10, embedder=narrow_after_the_sample)
    with pytest.raises(InsufficientData):
        find_topics_at_scale([None, " "], sample_size=50, embedder=hashed)


def test_agreement_needs_more_transcripts_than_the_sample() -> None:
    texts = noisy_queries(200, seed=6)["query_transcript"]
    with pytest.raises(InsufficientData, match="no sampling to measure"):
        sampling_agreement(texts, sample_size=200, embedder=hashed)
    with pytest.raises(InsufficientData):
        sampling_agreement(texts, sample_size=100, max_transcripts=100, embedder=hashed)
    agreement = sampling_agreement(texts, sample_size=100, embedder=hashed, seed=1)
    assert isinstance(agreement, SamplingAgreement) and agreement.n_transcripts == 200
    assert -1.0 <= agreement.topic_ari <= 1.0 and 0.0 <= agreement.topic_nmi <= 1.0


def test_the_report_carries_the_sampling_and_the_agreement() -> None:
    battles = simulate_battles(parse_strengths("4"), 700, seed=2, study=True)
    options = StudyOptions(topic_resamples=20, topic_sample_size=300, topic_agreement_size=500)
    document = _topics(battles, options, hashed)
    assert document["sampled"] is True and document["sample_size"] == 300
    assert document["n_transcripts"] == document["n_queries"] == 700
    assert sum(board["n_battles"] for board in document["leaderboards"]) == 700
    agreement = document["agreement"]
    assert agreement["n_transcripts"] == 500 and agreement["sample_size"] == 300
    assert {"ari", "nmi", "k_full", "k_sampled"} <= set(agreement["topics"])
    unmeasured = StudyOptions(topic_resamples=20, topic_sample_size=300, topic_agreement_size=0)
    assert _topics(battles, unmeasured, hashed)["agreement"] is None
    whole = StudyOptions(topic_resamples=20, topic_sample_size=None)
    plain = _topics(battles, whole, hashed)
    assert "sampled" not in plain and "agreement" not in plain
