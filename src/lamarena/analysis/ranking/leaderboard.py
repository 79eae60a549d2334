"""The leaderboard: ratings with intervals, provisional models apart, and every pairwise test.

:func:`build_leaderboard` is what ``lamarena leaderboard`` and ``GET /api/leaderboard`` print
(DESIGN.md "Ratings"): Bradley-Terry ratings on the Elo scale (Bradley & Terry 1952; Chiang et al.
2024), bootstrap percentile or analytic (sandwich) intervals, empirical win rates, and Wald tests
of every rated pair with Holm's correction. Votes drawn with unequal pair probabilities (``serve
--sampling active|balanced``) are fitted with inverse-probability weights, so the ratings target
what a uniform design would (see :mod:`lamarena.analysis.ranking.pair_design`). Text-out and
speech-out votes are never pooled: a leaderboard ranks the battles of one reply mode (see
:mod:`lamarena.analysis.ranking.modes`).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, SupportsFloat, cast

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy import sparse

from lamarena.analysis.battles import PairCounts, rated_pairs
from lamarena.analysis.encoded import EncodedBattles, encode_frame
from lamarena.analysis.jsonable import json_float
from lamarena.analysis.ranking.bootstrap import resample_pairs
from lamarena.analysis.ranking.bradley_terry import (
    DEFAULT_MIN_BATTLES,
    PROVISIONAL_REASONS,
    BradleyTerryResult,
    bootstrap_bradley_terry_result,
    bootstrap_encoded_result,
    fit_bradley_terry_result,
    fit_counts_result,
    pair_bootstrap_result,
    pairwise_tests,
    wald_intervals,
)
from lamarena.analysis.ranking.bt_solver import ELO_CENTER, ELO_SCALE
from lamarena.analysis.ranking.clusters import (
    Clusters,
    encoded_cells,
    encoded_cluster_cells,
    encoded_clusters,
    robust_covariance_from_cells,
)
from lamarena.analysis.ranking.davidson import davidson_ratings, fit_davidson
from lamarena.analysis.ranking.head_to_head import HeadToHead, head_to_head_counts
from lamarena.analysis.ranking.modes import encoded_one_mode
from lamarena.analysis.ranking.pair_design import (
    WeightedPairFit,
    fit_weighted_pairs,
    ipw_weights,
)
from lamarena.analysis.ranking.style_control import parse_control
from lamarena.errors import InsufficientData, InvalidInputError

__all__ = [
    "LeaderboardResult",
    "ModelRow",
    "PairRow",
    "StyleRow",
    "build_leaderboard",
]

logger = logging.getLogger(__name__)

_NO_BATTLES = (
    "no battles to rank yet: vote in the arena (lamarena serve) or import votes "
    "(lamarena votes import FILE --from FORMAT), then build the leaderboard again"
)


HEAD_TO_HEAD_RESAMPLES = 10_000
"""Rounds of the head-to-head test when the ratings' intervals are analytic (the study's)."""

PROBABILITY_COLUMN = "sampling_probability"
"""The battles' column with the probability their pair had when drawn."""

Weights = Literal["auto", "ipw", "none"]
"""How battles are weighted: ``ipw`` (inverse sampling probability), ``none``, or ``auto``."""


@dataclass(frozen=True)
class ModelRow:
    """One model of the leaderboard (Elo; None where there is no finite value).

    Attributes:
        model: its name.
        rating: Elo rating, None when its maximum-likelihood rating does not exist.
        ci_low: lower interval bound, None when absent or unbounded.
        ci_high: upper interval bound, None when absent or unbounded.
        battles: battles it took part in.
        win_rate: (wins + ties / 2) / battles, both-bad votes counting as ties.
        provisional: reported apart (see ``reasons``).
        reasons: codes from :data:`lamarena.analysis.ranking.bradley_terry.PROVISIONAL_REASONS`.
    """

    model: str
    rating: float | None
    ci_low: float | None
    ci_high: float | None
    battles: int
    win_rate: float
    provisional: bool
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class PairRow:
    """The test of one pair of rated models, the higher-rated first.

    Attributes:
        model_a: the higher-rated model.
        model_b: the other.
        diff: rating difference (Elo), at least 0.
        se: its standard error.
        p_value: two-sided Wald p-value.
        p_holm: Holm-adjusted p-value over the pairs of firmly rated models; NaN (JSON null)
            for a pair with a provisional model, which is outside the family.
        significant: ``p_holm`` below 1 - confidence.
        win_rate_a: share of their battles A won (ties half), None if they never met.
        battles: battles between them.
    """

    model_a: str
    model_b: str
    diff: float
    se: float
    p_value: float
    p_holm: float
    significant: bool
    win_rate_a: float | None
    battles: int


@dataclass(frozen=True)
class StyleRow:
    """One style coefficient (Elo points per unit of the normalised difference).

    Attributes:
        control: ``length``, ``latency``, ``ttfab`` or ``audio``.
        coefficient: Elo points gained by the reply with the whole (+1) difference.
        ci_low: lower interval bound.
        ci_high: upper interval bound.
    """

    control: str
    coefficient: float
    ci_low: float | None
    ci_high: float | None


@dataclass(frozen=True)
class LeaderboardResult:
    """The leaderboard and the settings that produced it.

    Attributes:
        n_battles: every battle given.
        models: rated non-provisional models by rating, then provisional ones.
        pairwise: tests of every pair of rated models.
        style: style coefficients (empty without control).
        method: ``bradley_terry_mle`` or ``bradley_terry_style_control``.
        ci: ``bootstrap`` or ``analytic``.
        confidence: interval coverage (and 1 - the tests' family-wise alpha).
        n_resamples: bootstrap rounds (0 for analytic intervals).
        seed: bootstrap seed.
        min_battles: provisional threshold.
        control: style controls.
        n_used: battles between rated models.
        centred_on: the models whose ratings average 1000 (the rated non-provisional ones).
        head_to_head: every pair's own record with the study's paired bootstrap test.
        head_to_head_resamples: its bootstrap rounds.
        head_to_head_holm: whether its ``significant`` is Holm-adjusted across pairs.
        cluster_by: the clusters the intervals and tests account for (``none``: battles).
        n_clusters: how many (participants, sessions, or battles).
        tie_parameter: with Davidson ties, ``{"nu", "ci_low", "ci_high", "p_tie_if_equal"}``.
        weights: ``ipw`` (ratings and intervals weighted by inverse sampling probabilities) or
            ``none``.
        missing_probability: battles without a recorded sampling probability.
        effective_battles: with ``ipw``, ``(sum w)^2 / sum w^2`` over the rated battles.
        weights_note: why ``auto`` did not weight a design that is not uniform, if so.
        mode: the reply mode of the battles ranked (``text`` or ``speech``).
    """

    n_battles: int
    models: tuple[ModelRow, ...]
    pairwise: tuple[PairRow, ...]
    style: tuple[StyleRow, ...]
    method: str
    ci: str
    confidence: float
    n_resamples: int
    seed: int | None
    min_battles: int
    control: tuple[str, ...]
    n_used: int
    centred_on: tuple[str, ...] = ()
    head_to_head: tuple[HeadToHead, ...] = ()
    head_to_head_resamples: int = 0
    head_to_head_holm: bool = False
    cluster_by: str = "none"
    n_clusters: int = 0
    tie_parameter: dict[str, float] | None = None
    weights: str = "none"
    missing_probability: int = 0
    effective_battles: float | None = None
    weights_note: str | None = None
    mode: str = "text"

    def to_dict(self) -> dict[str, Any]:
        """The DESIGN.md ``leaderboard --json`` document; JSON-safe (no NaN, no numpy types).

        Returns:
            ``{"n_battles", "models": [{"model", "rating", "ci_low", "ci_high", "battles",
            "win_rate", "provisional", "provisional_reasons"}], "pairwise": [{"model_a",
            "model_b", "diff", "se", "p_value", "p_holm", "significant", "win_rate_a",
            "battles"}], "head_to_head": [{"model_a", "model_b", "battles", "win_rate",
            "ci_low", "ci_high", "p_value", "p_holm", "significant"}], ...}`` (``pairwise`` tests
            the rating difference, ``head_to_head`` the pair's own record; ``tests`` says so)
            plus the settings (``method, ci, confidence, n_resamples, seed,
            min_battles, controls, n_used, scale, centred_on, weights, mode``), ``weighting``
            (``{"missing_probability", "effective_battles", "note"}``) and
            ``style_coefficients``.
        """
        return {
            "n_battles": self.n_battles,
            "models": [
                {
                    "model": row.model,
                    "rating": json_float(row.rating),
                    "ci_low": json_float(row.ci_low),
                    "ci_high": json_float(row.ci_high),
                    "battles": row.battles,
                    "win_rate": json_float(row.win_rate),
                    "provisional": row.provisional,
                    "provisional_reasons": [PROVISIONAL_REASONS[code] for code in row.reasons],
                }
                for row in self.models
            ],
            "pairwise": [
                {
                    "model_a": pair.model_a,
                    "model_b": pair.model_b,
                    "diff": json_float(pair.diff),
                    "se": json_float(pair.se),
                    "p_value": json_float(pair.p_value),
                    "p_holm": json_float(pair.p_holm),
                    "significant": pair.significant,
                    "win_rate_a": json_float(pair.win_rate_a),
                    "battles": pair.battles,
                }
                for pair in self.pairwise
            ],
            "head_to_head": [record.to_dict() for record in self.head_to_head],
            "tests": {
                "pairwise": "Wald test of the rating difference (bootstrap or sandwich "
                "covariance), Holm-adjusted over the pairs of firmly rated models (a pair with a "
                "provisional model: p_holm null, never significant)",
                "head_to_head": "paired bootstrap of the pair's own battles (ties and both-bad "
                f"half), {self.head_to_head_resamples} rounds, "
                + ("Holm-adjusted over the pairs" if self.head_to_head_holm else "unadjusted")
                + "; the win-rate matrix stars from it",
            },
            "style_coefficients": {
                row.control: {
                    "elo_per_unit": json_float(row.coefficient),
                    "ci_low": json_float(row.ci_low),
                    "ci_high": json_float(row.ci_high),
                }
                for row in self.style
            },
            "method": self.method,
            "ci": self.ci,
            "confidence": self.confidence,
            "n_resamples": self.n_resamples,
            "seed": self.seed,
            "min_battles": self.min_battles,
            "controls": list(self.control),
            "n_used": self.n_used,
            "scale": "elo: P(a beats b) = 1 / (1 + 10^((r_b - r_a) / 400)); centred_on mean 1000"
            + (" (one model: pinned at 1000)" if len(self.centred_on) == 1 else ""),
            "centred_on": list(self.centred_on),
            "cluster": {"by": self.cluster_by, "n_clusters": self.n_clusters},
            "ties": "davidson" if self.tie_parameter is not None else "half",
            "tie_parameter": self.tie_parameter,
            "weights": self.weights,
            "weighting": {
                "missing_probability": self.missing_probability,
                "effective_battles": json_float(self.effective_battles),
                "note": self.weights_note,
            },
            "mode": self.mode,
        }


def build_leaderboard(
    battles: pd.DataFrame | EncodedBattles,
    *,
    n_resamples: int = 10_000,
    seed: int | None = 0,
    min_battles: int = DEFAULT_MIN_BATTLES,
    control: Sequence[str] | str = (),
    ci: Literal["bootstrap", "analytic"] = "bootstrap",
    confidence: float = 0.95,
    holm_head_to_head: bool = False,
    cluster: str = "auto",
    anchor: str | None = None,
    ties: str = "half",
    weights: Weights = "auto",
) -> LeaderboardResult:
    """Rank the models of a set of battles.

    Ratings are Bradley-Terry maximum-likelihood estimates on the Elo scale (Bradley & Terry
    1952; Chiang et al. 2024; ties and both-bad half a win each way), style-controlled with
    ``control``. Intervals are bootstrap percentiles over ``n_resamples`` rounds (as the study,
    10,000 by default) or, with ``ci="analytic"`` or ``n_resamples=0``, Wald intervals from the
    sandwich covariance. Pairwise Wald tests use the bootstrap (or sandwich) covariance and Holm's
    correction at level ``1 - confidence``. A rated model with no decisive battle (only ties and
    both-bad votes) is provisional (``only_ties``): half wins cannot show how much its results
    vary, so the sandwich uses the model-based variance for its battles, and with the bootstrap
    its interval and its tests take the wider of the bootstrap and that analytic variance.

    Args:
        battles: one row per battle (see :func:`lamarena.analysis.battles.validate_battles`).
        n_resamples: bootstrap rounds.
        seed: bootstrap seed.
        min_battles: models with fewer battles are provisional.
        control: style controls, among ``length``, ``latency``, ``ttfab`` and ``audio`` (see
            :mod:`lamarena.analysis.ranking.style_control`).
        ci: ``bootstrap`` or ``analytic``.
        confidence: interval coverage, between 0 and 1 (and 1 - the tests' level).
        holm_head_to_head: Holm-adjust the head-to-head tests (the study did not).
        cluster: the votes that belong together, resampled whole by the bootstrap and summed
            together in the sandwich: ``auto`` (participants where ids exist, else sessions,
            else none), ``participant``, ``session`` or ``none`` (see
            :mod:`lamarena.analysis.ranking.clusters`).
        anchor: pin this model at 1000 (see ``fit_bradley_terry_result``).
        ties: ``half`` (the study: a tie or both-bad vote is half a win each way) or
            ``davidson`` (Bradley-Terry-Davidson, :mod:`lamarena.analysis.ranking.davidson`: ties
            are an
            outcome with their own parameter; analytic, model-based intervals).
        weights: ``ipw`` fits with inverse-probability weights from the ``sampling_probability``
            column (every battle needs one), so actively or evenly sampled votes target the
            ratings of a uniform design; the bootstrap then resamples battles (or clusters)
            with their weights and refits, and the analytic intervals use the weighted sandwich.
            ``none`` fits unweighted; ``auto`` (the default) weights when every battle has a
            probability and they are not all equal, and otherwise (or with Davidson ties or
            style control, which take no weights) fits unweighted.

    Returns:
        The leaderboard; :meth:`LeaderboardResult.to_dict` gives the JSON document.

    Raises:
        InsufficientData: no battles at all.
        InvalidInputError: malformed battles or options, or battles of both reply modes
            (text-out and speech-out ratings are not comparable; rank each mode apart).
    """
    encoded = battles if isinstance(battles, EncodedBattles) else encode_frame(battles)
    clean = encoded.frame
    mode = encoded_one_mode(encoded)
    control = parse_control(control)
    if ci not in ("bootstrap", "analytic"):
        raise InvalidInputError(f"ci must be 'bootstrap' or 'analytic', got {ci!r}")
    if not 0.0 < confidence < 1.0:
        raise InvalidInputError(f"confidence must be between 0 and 1, got {confidence}")
    if n_resamples < 0:
        raise InvalidInputError(f"n_resamples must be 0 or more, got {n_resamples}")
    if encoded.n_battles == 0:
        raise InsufficientData(_NO_BATTLES)
    if ties not in ("half", "davidson"):
        raise InvalidInputError(f"ties must be 'half' or 'davidson', got {ties!r}")
    if control and clean is None:
        raise InvalidInputError(
            "style control needs each battle's reply lengths and timings, which counted votes "
            "do not keep; rank the votes themselves (a --votes file or the database)"
        )
    battle_weights, missing, note = _battle_weights(encoded, weights, ties, control)
    counts = encoded.pair_counts()
    if control and clean is not None:
        fit = fit_bradley_terry_result(
            clean, min_battles=min_battles, control=control, anchor=anchor
        )
    else:
        fit = fit_counts_result(
            counts, n_battles=encoded.n_battles, min_battles=min_battles, anchor=anchor
        )
    method = "analytic" if ci == "analytic" or n_resamples == 0 else "bootstrap"
    clusters = encoded_clusters(encoded, cluster)
    tie_parameter: dict[str, float] | None = None
    if ties == "davidson":
        fit, tie_parameter = _davidson(counts, fit, confidence)
        method = "analytic"  # the Davidson fit's intervals come from its information matrix
        clusters = encoded_clusters(encoded, "none")
    if clusters.by != "none" and method == "analytic" and control:
        if cluster != "auto":
            raise InvalidInputError(
                "clustered analytic intervals are not available with style control; use the "
                "bootstrap (--ci bootstrap) or --cluster none"
            )
        clusters = encoded_clusters(encoded, "none")
    weighted: WeightedPairFit | None = None
    if battle_weights is not None and len(fit.ratings) >= 2:
        fit, weighted = _weighted_fit(encoded, fit, battle_weights, clusters)
    if weighted is not None and battle_weights is not None:
        bounds, covariance, style = _weighted_uncertainty(
            encoded, fit, weighted, battle_weights, method, n_resamples, seed, confidence, clusters
        )
    else:
        bounds, covariance, style = _uncertainty(
            encoded, fit, method, n_resamples, seed, confidence, clusters
        )
    tests = pairwise_tests(
        fit.ratings,
        covariance,
        alpha=1.0 - confidence,
        fallback=fit.robust_covariance,
        fallback_models=_only_ties(fit),
        family=[name for name in fit.ratings.index if name not in fit.provisional],
    )
    records_resamples = n_resamples if n_resamples > 0 else HEAD_TO_HEAD_RESAMPLES
    records = head_to_head_counts(
        counts,
        n_resamples=records_resamples,
        seed=seed,
        alpha=1.0 - confidence,
        holm=holm_head_to_head,
    )
    return LeaderboardResult(
        n_battles=fit.n_battles,
        models=_model_rows(encoded, fit, bounds),
        pairwise=_pair_rows(counts, tests),
        style=style,
        method=fit.method,
        ci=method,
        tie_parameter=tie_parameter,
        confidence=confidence,
        n_resamples=n_resamples if method == "bootstrap" else 0,
        seed=seed,
        min_battles=min_battles,
        control=control,
        n_used=fit.n_used,
        centred_on=tuple(sorted(fit.centred_on)),
        head_to_head=records,
        head_to_head_resamples=records_resamples,
        head_to_head_holm=holm_head_to_head,
        cluster_by=clusters.by,
        n_clusters=clusters.n_clusters,
        weights="ipw" if battle_weights is not None else "none",
        missing_probability=missing,
        effective_battles=weighted.effective_battles if weighted is not None else None,
        weights_note=note,
        mode=mode,
    )


def _battle_weights(
    battles: EncodedBattles, weights: str, ties: str, control: Sequence[str]
) -> tuple[NDArray[np.float64] | None, int, str | None]:
    """The inverse-probability weights to fit with (None: unweighted), missing count, and note.

    Raises:
        InvalidInputError: an unknown ``weights``, or ``ipw`` with a battle lacking a probability
            or combined with Davidson ties or style control.
    """
    if weights not in ("auto", "ipw", "none"):
        raise InvalidInputError(f"weights must be 'auto', 'ipw' or 'none', got {weights!r}")
    n_battles = battles.n_battles
    if battles.probability is not None:
        probabilities = battles.probability
    else:  # counts: no per-battle probability; the known ones are all equal
        if weights == "ipw":
            raise InvalidInputError(
                "inverse-probability weights need each battle's sampling probability, which "
                "counted votes do not keep; rank the votes themselves, or use weights='none'"
            )
        known = n_battles - (
            n_battles if battles.missing_probability is None else battles.missing_probability
        )
        probabilities = np.concatenate([np.ones(known), np.full(n_battles - known, np.nan)])
    missing = int(np.isnan(probabilities).sum())
    unsupported = None
    if ties == "davidson":
        unsupported = "Davidson ties (ties='davidson')"
    elif control:
        unsupported = "style control (control)"
    if weights == "ipw":
        if unsupported is not None:
            raise InvalidInputError(
                f"inverse-probability weights (weights='ipw') cannot be combined with "
                f"{unsupported}; use weights='none'"
            )
        if missing:
            raise InvalidInputError(
                f"weights='ipw' needs the column '{PROBABILITY_COLUMN}' for every battle, but "
                f"{missing} of {n_battles} lack one (votes recorded before sampling "
                "probabilities were, or imported without them); use weights='none' or 'auto'"
            )
        return ipw_weights(probabilities), missing, None
    uniform = np.allclose(probabilities, probabilities[0], rtol=1e-9, atol=0.0)
    if weights == "none" or missing or uniform:
        note = None
        if weights == "auto" and 0 < missing < n_battles:
            note = (
                f"{missing} of {n_battles} battles lack a {PROBABILITY_COLUMN}: fitted "
                "unweighted (inverse-probability weights need one for every battle)"
            )
        return None, missing, note
    if unsupported is not None:
        note = (
            f"the battles were drawn with unequal pair probabilities, but {unsupported} takes "
            "no inverse-probability weights: fitted unweighted, so the ratings reflect the "
            "design's mix of pairs rather than a uniform design's"
        )
        return None, missing, note
    return ipw_weights(probabilities), missing, None


def _weighted_fit(
    battles: EncodedBattles,
    fit: BradleyTerryResult,
    weights: NDArray[np.float64],
    clusters: Clusters,
) -> tuple[BradleyTerryResult, WeightedPairFit]:
    """The fit with its ratings and covariances replaced by the weighted fit's.

    The rated models, provisional flags, battle counts and centring stay the unweighted fit's:
    weights are positive, so the weighted maximum-likelihood ratings exist for the same models.
    """
    rated = rated_pairs(battles.pair_counts())
    names = pd.Index(rated.models, dtype=object, name="model")
    labels = (clusters.labels, clusters.n_clusters) if clusters.by != "none" else None
    weighted = fit_weighted_pairs(
        rated,
        encoded_cells(battles, rated),
        weights,
        names.isin(list(fit.centred_on)),
        clusters=labels,
    )
    scale2 = ELO_SCALE**2
    ratings = pd.Series(ELO_CENTER + ELO_SCALE * weighted.theta, index=names, name="rating")
    order = sorted(range(len(names)), key=lambda i: (-weighted.theta[i], rated.models[i]))
    replaced = dataclasses.replace(
        fit,
        ratings=ratings.iloc[order],
        covariance=pd.DataFrame(weighted.bread * scale2, index=names, columns=names),
        robust_covariance=pd.DataFrame(weighted.sandwich * scale2, index=names, columns=names),
    )
    return replaced, weighted


def _weighted_uncertainty(
    battles: EncodedBattles,
    fit: BradleyTerryResult,
    weighted: WeightedPairFit,
    weights: NDArray[np.float64],
    method: str,
    n_resamples: int,
    seed: int | None,
    confidence: float,
    clusters: Clusters,
) -> tuple[pd.DataFrame, pd.DataFrame, tuple[StyleRow, ...]]:
    """Intervals and covariance of the weighted fit (no style rows: weights take no control).

    The bootstrap resamples battles (or clusters) with their weights and refits the weighted
    cells; analytic intervals use the weighted (cluster-robust) sandwich.
    """
    if method != "bootstrap":
        return fit.intervals(confidence), fit.robust_covariance, ()
    rated = weighted.rated
    names = pd.Index(rated.models, dtype=object, name="model")
    cells = encoded_cells(battles, rated)
    n_battles = battles.n_battles
    rng = np.random.default_rng(seed)
    anchors = names.isin(list(fit.centred_on))
    if clusters.by != "none":
        inside = cells < 3 * rated.first.size
        by_cluster = sparse.coo_array(
            (weights[inside], (clusters.labels[inside], cells[inside])),
            shape=(clusters.n_clusters, 3 * rated.first.size),
        ).tocsr()
        raw = resample_pairs(
            rated,
            weighted.theta,
            anchors,
            n_battles,
            n_resamples,
            rng,
            cells_by_cluster=by_cluster,
        )
    else:
        raw = resample_pairs(
            rated,
            weighted.theta,
            anchors,
            n_battles,
            n_resamples,
            rng,
            weighted_battles=(cells, weights),
        )
    if raw.unconverged:
        logger.warning("bootstrap: %d rounds did not converge", raw.unconverged)
    boot = pair_bootstrap_result(raw, names, fit, clusters, seed=seed)
    bounds = _widen(boot.intervals(confidence), fit.intervals(confidence), _only_ties(fit))
    return bounds, boot.covariance(), ()


def _uncertainty(
    battles: EncodedBattles,
    fit: BradleyTerryResult,
    method: str,
    n_resamples: int,
    seed: int | None,
    confidence: float,
    clusters: Clusters,
) -> tuple[pd.DataFrame, pd.DataFrame, tuple[StyleRow, ...]]:
    """Rating intervals, the covariance for the tests, and the style rows."""
    if method == "bootstrap" and len(fit.ratings) >= 2:
        if fit.control and battles.frame is not None:
            boot = bootstrap_bradley_terry_result(
                battles.frame,
                rounds=n_resamples,
                seed=seed,
                control=fit.control,
                fit=fit,
                cluster=clusters,
            )
        else:
            boot = bootstrap_encoded_result(battles, fit, clusters, rounds=n_resamples, seed=seed)
        if boot.unconverged:
            logger.warning("bootstrap: %d rounds did not converge", boot.unconverged)
        bounds = _widen(boot.intervals(confidence), fit.intervals(confidence), _only_ties(fit))
        covariance = boot.covariance()
        style_bounds = boot.style_intervals(confidence)
    elif clusters.by != "none" and len(fit.ratings) >= 2:
        rated = rated_pairs(battles.pair_counts())
        covariance = robust_covariance_from_cells(
            fit.ratings, fit.covariance, encoded_cluster_cells(battles, rated, clusters), rated
        )
        bounds = wald_intervals(fit.ratings, covariance, confidence)
        style_bounds = fit.style_intervals(confidence)
    else:
        bounds = fit.intervals(confidence)
        covariance = fit.robust_covariance
        style_bounds = fit.style_intervals(confidence)
    style = tuple(
        StyleRow(
            control=name,
            coefficient=float(fit.style_coefficients[name]),
            ci_low=json_float(cast(float, style_bounds.loc[name, "ci_low"])),
            ci_high=json_float(cast(float, style_bounds.loc[name, "ci_high"])),
        )
        for name in fit.control
    )
    return bounds, covariance, style


def _davidson(
    counts: PairCounts, fit: BradleyTerryResult, confidence: float
) -> tuple[BradleyTerryResult, dict[str, float]]:
    """The half-win fit with its ratings and covariances replaced by Davidson's."""
    if fit.control:
        raise InvalidInputError("--ties davidson cannot be combined with style control (--control)")
    if len(fit.ratings) < 2:
        raise InsufficientData("fewer than two models have a rating")
    rated = rated_pairs(counts)
    start = (fit.ratings.reindex(list(rated.models)).to_numpy() - ELO_CENTER) / ELO_SCALE
    davidson = fit_davidson(rated, start=start)
    ratings, covariance = davidson_ratings(
        davidson, rated.models, fit.centred_on, ELO_SCALE, ELO_CENTER
    )
    ratings = ratings.sort_values(ascending=False, kind="stable")
    low, high = davidson.tie_interval(confidence)
    nu = davidson.tie_parameter
    replaced = dataclasses.replace(
        fit,
        ratings=ratings,
        covariance=covariance,
        robust_covariance=covariance,
        method="bradley_terry_davidson",
    )
    return replaced, {
        "nu": nu,
        "ci_low": low,
        "ci_high": high,
        "p_tie_if_equal": nu / (2.0 + nu),
    }


def _only_ties(fit: BradleyTerryResult) -> tuple[str, ...]:
    """The rated models with no decisive battle (provisional with reason ``only_ties``)."""
    return tuple(name for name in fit.ratings.index if "only_ties" in fit.reasons.get(name, ()))


def _widen(bounds: pd.DataFrame, analytic: pd.DataFrame, models: Sequence[str]) -> pd.DataFrame:
    """Bootstrap bounds, widened to cover the analytic interval for ``models``.

    Every resample of a model with no decisive battle is all ties again, so its bootstrap spread
    reflects only the other models (zero when its whole group only tied); the guarded sandwich
    interval (the model-based variance for its battles) is then the honest one, and the wider of
    the two is reported.
    """
    out = bounds.copy()
    rows = list(models)
    out.loc[rows, "ci_low"] = np.minimum(bounds.loc[rows, "ci_low"], analytic.loc[rows, "ci_low"])
    out.loc[rows, "ci_high"] = np.maximum(
        bounds.loc[rows, "ci_high"], analytic.loc[rows, "ci_high"]
    )
    return out


def _model_rows(
    battles: EncodedBattles, fit: BradleyTerryResult, bounds: pd.DataFrame
) -> tuple[ModelRow, ...]:
    """Rated non-provisional models by rating, rated provisional ones, then unrated ones."""
    rates = battles.win_rates()
    rows = []
    for name in rates.index:
        rated = name in fit.ratings.index
        rows.append(
            ModelRow(
                model=name,
                rating=float(fit.ratings[name]) if rated else None,
                ci_low=json_float(bounds.loc[name, "ci_low"]) if rated else None,
                ci_high=json_float(bounds.loc[name, "ci_high"]) if rated else None,
                battles=int(rates.loc[name, "battles"]),
                win_rate=float(rates.loc[name, "win_rate"]),
                provisional=name in fit.provisional,
                reasons=tuple(fit.reasons.get(name, ())),
            )
        )

    def key(row: ModelRow) -> tuple[int, float, float, str]:
        if row.rating is not None:
            return (int(row.provisional), -row.rating, 0.0, row.model)
        return (2, 0.0, -row.win_rate, row.model)

    return tuple(sorted(rows, key=key))


def _pair_rows(counts: PairCounts, tests: pd.DataFrame) -> tuple[PairRow, ...]:
    """Pairwise tests joined with the empirical head-to-head record."""
    index = {name: i for i, name in enumerate(counts.models)}
    record = {
        (int(i), int(j)): (float(s), float(n))
        for i, j, s, n in zip(
            counts.first, counts.second, counts.first_score, counts.battles, strict=True
        )
    }
    rows = []
    for test in tests.itertuples(index=False):
        i, j = index[str(test.model_a)], index[str(test.model_b)]
        score, games = record.get((min(i, j), max(i, j)), (0.0, 0.0))
        rate = None
        if games > 0:
            rate = score / games if i < j else 1.0 - score / games
        rows.append(
            PairRow(
                model_a=str(test.model_a),
                model_b=str(test.model_b),
                diff=float(cast(SupportsFloat, test.diff)),
                se=float(cast(SupportsFloat, test.se)),
                p_value=float(cast(SupportsFloat, test.p_value)),
                p_holm=float(cast(SupportsFloat, test.p_holm)),
                significant=bool(test.significant),
                win_rate_a=rate,
                battles=int(games),
            )
        )
    return tuple(rows)
