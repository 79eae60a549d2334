"""Every number of the study report, computed once into one JSON document (``numbers.json``).

:func:`compute_study` runs the analyses of the study (Li et al. 2025, "Analyses") over a set of
battles and a static score table and returns the document the figures are drawn from:

- ``leaderboard``: the ``leaderboard --json`` document (Bradley-Terry, bootstrap intervals,
  Holm-corrected pairwise tests), and ``win_rates``: the head-to-head matrix with those tests;
- ``leaderboard_by_turns``: with conversations in the votes, a leaderboard per conversation depth
  (1, 2, 3+ turns; None when every vote came after one turn);
- ``leaderboard_by_mode``: with votes on text replies and on spoken replies, a leaderboard per
  reply mode (text-out, speech-out; None when the votes are all of one mode);
- ``topics``: the two-level topic tree of the query transcripts with a leaderboard per topic
  (beyond ``topic_sample_size`` transcripts, the tree of a seeded sample with the rest assigned:
  ``sampled``, ``sample_size``, ``n_transcripts`` and ``agreement`` with a full clustering);
- ``kendall_tau``: Kendall tau (and the rank distance) of each benchmark against the ratings;
- ``regression``: the mixed-effects regression of votes on benchmark differences;
- ``pca``: principal components of the model x benchmark scores;
- ``feedback``: themes of the vote reasons, with counts per winning model.

A section the data cannot support (no transcripts, no reasons, too few shared models) is None,
and ``notes`` says why; nothing is made up.

Text-out and speech-out votes are never pooled (their ratings measure different things). When the
votes hold both, every section but ``leaderboard_by_mode`` analyses the text-out votes (the
study's setting): ``mode`` names the mode analysed, ``battles_by_mode`` counts each, and
``notes["mode"]`` says so; the speech-out ratings are in ``leaderboard_by_mode``. With votes of
one mode only, that mode is analysed.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from lamarena.analysis.battles import validate_battles, win_rate_matrix
from lamarena.analysis.gap import (
    StaticTable,
    kendall_tau_table,
    regress_votes_on_benchmarks,
    static_pca,
)
from lamarena.analysis.gap.vote_regression import REGRESSION_MODELS, RegressionModel
from lamarena.analysis.ranking.grouped import leaderboards_by_depth, leaderboards_by_mode
from lamarena.analysis.ranking.leaderboard import build_leaderboard
from lamarena.analysis.ranking.modes import MODES, mode_counts, select_mode
from lamarena.analysis.text.embeddings import Embedder
from lamarena.analysis.text.feedback import find_feedback_themes
from lamarena.analysis.text.topics import topic_leaderboards
from lamarena.analysis.text.topics_scale import find_topics_at_scale, sampling_agreement
from lamarena.errors import InsufficientData, InvalidInputError

__all__ = ["SECTIONS", "StudyOptions", "compute_study", "json_safe"]

logger = logging.getLogger(__name__)

SECTIONS = ("leaderboard", "topics", "kendall_tau", "regression", "pca", "feedback")
"""The analyses of ``numbers.json`` (each present, None where the data cannot support it)."""

T = TypeVar("T")


@dataclass(frozen=True)
class StudyOptions:
    """Settings of :func:`compute_study`.

    Attributes:
        n_resamples: bootstrap rounds of the overall leaderboard (the study used 10,000).
        topic_resamples: bootstrap rounds of each per-topic leaderboard.
        tau_rounds: bootstrap rounds of the Kendall tau intervals.
        seed: seed of every bootstrap and clustering.
        min_battles: fewer battles than this make a model provisional.
        confidence: coverage of every interval.
        n_topics: number of top-level topics; None chooses it by silhouette.
        vif_threshold: variance inflation factor screening of the regression (the study's 10).
        cluster: votes that belong together in the leaderboard's intervals and tests (``auto``,
            ``participant``, ``session``, ``none``; see :mod:`lamarena.analysis.ranking.clusters`).
        regression_model: the regression's primary fit, ``logistic`` (the study's logistic
            mixed model) or ``linear`` (see :func:`regress_votes_on_benchmarks`).
        permutations: most score assignments for the regression's permutation p-values.
        topic_sample_size: with more query transcripts than this, the topics are those of a
            seeded sample of this many, every other transcript assigned to the nearest one
            (:func:`lamarena.analysis.text.topics_scale.find_topics_at_scale`); None: never.
        topic_agreement_size: when the topics were sampled, a seeded subset of at most this many
            transcripts is also clustered fully and ``topics.agreement`` compares the two
            labellings (its cost: one full clustering of the subset); 0, or no more than the
            sample size: not measured (``agreement`` None).
    """

    n_resamples: int = 10_000
    topic_resamples: int = 1_000
    tau_rounds: int = 1_000
    seed: int = 0
    min_battles: int = 10
    confidence: float = 0.95
    n_topics: int | None = None
    vif_threshold: float = 10.0
    cluster: str = "auto"
    regression_model: str = "logistic"
    permutations: int = 1000
    topic_sample_size: int | None = 1000
    topic_agreement_size: int = 2000


def json_safe(value: Any) -> Any:
    """``value`` with numpy scalars as Python numbers and NaN or infinities as None."""
    if isinstance(value, Mapping):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    if isinstance(value, np.ndarray):
        return [json_safe(item) for item in value.tolist()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _optional(
    section: str, notes: dict[str, str], timings: dict[str, float], run: Callable[[], T]
) -> T | None:
    """Run one analysis; InsufficientData becomes a note and None (the section is left out)."""
    start = time.perf_counter()
    try:
        return run()
    except InsufficientData as exc:
        notes[section] = str(exc)
        logger.info("report: no %s section: %s", section, exc)
        return None
    finally:
        timings[section] = round(time.perf_counter() - start, 3)


def compute_study(
    battles: pd.DataFrame,
    static: StaticTable,
    *,
    options: StudyOptions | None = None,
    embedder: Embedder | None = None,
    static_source: str | None = None,
) -> dict[str, Any]:
    """Compute every number of the report.

    Args:
        battles: one row per battle: ``model_a, model_b, winner`` and, when available,
            ``query_transcript`` (topics) and ``feedback_text`` (reasons).
        static: the static scores (:func:`lamarena.report.static_input.load_static_input`).
        options: settings; defaults as :class:`StudyOptions`.
        embedder: text embedder for topics and reasons; None means the packaged MiniLM.
        static_source: where the static scores came from, for the record.

    Returns:
        A JSON-safe document with the keys of :data:`SECTIONS` plus ``n_battles`` (the battles
        analysed), ``mode`` and ``battles_by_mode``, ``leaderboard_by_turns``,
        ``leaderboard_by_mode``, ``win_rates``, ``static``, ``settings``, ``notes`` (why a section
        is None, and which votes were set apart) and ``timings_s``.

    Raises:
        InsufficientData: no battles at all.
        InvalidInputError: malformed battles or options, or no static model in the votes.
        ConfigError: the embedding model is needed and cannot be loaded.
    """
    opts = options or StudyOptions()
    regression_model = _regression_model(opts.regression_model)
    if opts.permutations < 0:
        raise InvalidInputError(f"permutations must be 0 or more, got {opts.permutations}")
    every = validate_battles(battles)
    counts = mode_counts(every)
    notes: dict[str, str] = {}
    mode = next((name for name in MODES if counts[name]), "text")
    clean = every
    if sum(1 for name in MODES if counts[name]) > 1:
        clean = select_mode(every, mode)
        notes["mode"] = (
            f"the votes hold {counts['text']} text-out and {counts['speech']} speech-out battles, "
            "whose ratings are not comparable: every section ranks the text-out votes, and "
            "leaderboard_by_mode ranks each mode on its own votes"
        )
    static_summary = _static_summary(static, clean, static_source)
    timings: dict[str, float] = {}
    start = time.perf_counter()
    board = build_leaderboard(
        clean,
        n_resamples=opts.n_resamples,
        seed=opts.seed,
        min_battles=opts.min_battles,
        confidence=opts.confidence,
        cluster=opts.cluster,
    ).to_dict()
    timings["leaderboard"] = round(time.perf_counter() - start, 3)
    document: dict[str, Any] = {
        "n_battles": len(clean),
        "mode": mode,
        "battles_by_mode": counts,
        "leaderboard": board,
        "leaderboard_by_turns": _by_turns(clean, opts),
        "leaderboard_by_mode": _by_mode(every, counts, opts),
        "win_rates": _win_rates(clean, board),
        "topics": _optional("topics", notes, timings, lambda: _topics(clean, opts, embedder)),
        "kendall_tau": _optional(
            "kendall_tau", notes, timings, lambda: _kendall_tau(clean, static, opts)
        ),
        "regression": _optional(
            "regression",
            notes,
            timings,
            lambda: regress_votes_on_benchmarks(
                clean,
                static,
                vif_threshold=opts.vif_threshold,
                model=regression_model,
                permutations=opts.permutations,
                seed=opts.seed,
            ).to_dict(),
        ),
        "pca": _optional("pca", notes, timings, lambda: _pca(static)),
        "feedback": _optional("feedback", notes, timings, lambda: _feedback(clean, opts, embedder)),
        "static": static_summary,
        "settings": asdict(opts),
    }
    if document["kendall_tau"] is None:
        document["kendall_tau"] = []
    document["notes"] = notes
    document["timings_s"] = timings
    return dict(json_safe(document))


def _group_options(opts: StudyOptions) -> dict[str, Any]:
    """The options of each grouped leaderboard: those of the overall one."""
    return {
        "n_resamples": opts.n_resamples,
        "seed": opts.seed,
        "min_battles": opts.min_battles,
        "confidence": opts.confidence,
        "cluster": opts.cluster,
    }


def _by_turns(battles: pd.DataFrame, opts: StudyOptions) -> dict[str, Any] | None:
    """The leaderboard per conversation depth, when some votes came after several turns."""
    if "n_turns" not in battles or not (pd.to_numeric(battles["n_turns"]) > 1).any():
        return None
    return leaderboards_by_depth(battles, **_group_options(opts))


def _by_mode(
    battles: pd.DataFrame, counts: Mapping[str, int], opts: StudyOptions
) -> dict[str, Any] | None:
    """The leaderboard per reply mode, when the votes hold both text-out and speech-out ones."""
    if sum(1 for name in MODES if counts[name]) < 2:
        return None
    return leaderboards_by_mode(battles, **_group_options(opts))


def _regression_model(name: str) -> RegressionModel:
    """The regression model named by the options.

    Raises:
        InvalidInputError: an unknown name.
    """
    if name == "logistic":
        return "logistic"
    if name == "linear":
        return "linear"
    raise InvalidInputError(
        f"regression model must be one of {', '.join(REGRESSION_MODELS)}, got {name!r}"
    )


def _win_rates(battles: pd.DataFrame, board: Mapping[str, Any]) -> dict[str, Any]:
    """The head-to-head matrix in leaderboard order, starred by each pair's own test.

    The stars are the study's: the paired bootstrap of the pair's battles (``head_to_head``),
    not the test of the two ratings' difference (``pairwise``, kept as ``p_ratings_holm``).
    """
    matrix = win_rate_matrix(battles)
    order = [row["model"] for row in board["models"] if row["model"] in matrix.index]
    matrix = matrix.loc[order, order]
    significant = pd.DataFrame(False, index=order, columns=order)
    p_value = pd.DataFrame(np.nan, index=order, columns=order)
    p_ratings = pd.DataFrame(np.nan, index=order, columns=order)
    for record in board.get("head_to_head") or []:
        a, b = record["model_a"], record["model_b"]
        if a in significant.index and b in significant.index:
            significant.loc[a, b] = significant.loc[b, a] = bool(record["significant"])
            p_value.loc[a, b] = p_value.loc[b, a] = record["p_value"]
    for pair in board.get("pairwise") or []:
        a, b = pair["model_a"], pair["model_b"]
        if a in p_ratings.index and b in p_ratings.index:
            p_ratings.loc[a, b] = p_ratings.loc[b, a] = pair["p_holm"]
    return {
        "models": order,
        "matrix": matrix.to_numpy().tolist(),
        "significant": significant.to_numpy().tolist(),
        "p_value": p_value.to_numpy().tolist(),
        "p_ratings_holm": p_ratings.to_numpy().tolist(),
        "meaning": "matrix[i][j]: share of battles model i won against model j (ties half)",
        "stars": (board.get("tests") or {}).get("head_to_head", "paired bootstrap"),
    }


def _topics(battles: pd.DataFrame, opts: StudyOptions, embedder: Embedder | None) -> dict[str, Any]:
    if "query_transcript" not in battles.columns:
        raise InsufficientData("the battles have no query_transcript column")
    topics = find_topics_at_scale(
        battles["query_transcript"],
        sample_size=opts.topic_sample_size,
        n_topics=opts.n_topics,
        embedder=embedder,
        seed=opts.seed,
    )
    boards = topic_leaderboards(
        battles,
        topics,
        n_resamples=opts.topic_resamples,
        seed=opts.seed,
        min_battles=opts.min_battles,
        confidence=opts.confidence,
    )
    document = {**topics.to_dict(), "leaderboards": [board.to_dict() for board in boards]}
    if topics.sampling is not None:
        document["agreement"] = _topic_agreement(battles, opts, embedder)
    return document


def _topic_agreement(
    battles: pd.DataFrame, opts: StudyOptions, embedder: Embedder | None
) -> dict[str, Any] | None:
    """The sampled topics against a full clustering of a subset (None: not measured)."""
    size = opts.topic_sample_size
    if size is None or opts.topic_agreement_size <= size:
        return None
    return sampling_agreement(
        battles["query_transcript"],
        sample_size=size,
        max_transcripts=opts.topic_agreement_size,
        n_topics=opts.n_topics,
        embedder=embedder,
        seed=opts.seed,
    ).to_dict()


def _kendall_tau(
    battles: pd.DataFrame, static: StaticTable, opts: StudyOptions
) -> list[dict[str, Any]]:
    table = kendall_tau_table(
        battles, static, rounds=opts.tau_rounds, seed=opts.seed, confidence=opts.confidence
    )
    rows: list[dict[str, Any]] = json_safe(table.to_dict(orient="records"))
    return rows


def _pca(static: StaticTable) -> dict[str, Any]:
    """PCA of standardised scores (the figure), with the PCA of raw (centred) scores beside it.

    The two can disagree: raw scores weigh each benchmark by its own spread (a WER fraction
    next to percentages barely counts), so how many components "explain 95%" depends on the
    choice, and the report shows both.
    """
    document = static_pca(static).to_dict()
    document["raw"] = static_pca(static, standardise=False).to_dict()
    return document


def _feedback(
    battles: pd.DataFrame, opts: StudyOptions, embedder: Embedder | None
) -> dict[str, Any]:
    if "feedback_text" not in battles.columns:
        raise InsufficientData("the battles have no feedback_text column")
    return find_feedback_themes(battles, embedder=embedder, seed=opts.seed).to_dict()


def _static_summary(
    static: StaticTable, battles: pd.DataFrame, source: str | None
) -> dict[str, Any]:
    """What the static table holds, and which of its models the votes share."""
    voted = set(battles["model_a"]) | set(battles["model_b"])
    shared = [model for model in static.models if model in voted]
    if not shared:
        raise InvalidInputError(
            f"no model of the static table ({', '.join(static.models)}) is in the votes "
            f"({', '.join(sorted(voted))}); name the models the same way in both"
        )
    return {
        "source": source,
        "models": list(static.models),
        "benchmarks": list(static.benchmarks),
        "lower_is_better": sorted(static.lower_is_better),
        "shared_models": shared,
        "scores": {
            model: [json_safe(float(v)) for v in row]
            for model, row in zip(static.models, static.scores.to_numpy(), strict=True)
        },
    }
