"""Bradley-Terry ratings on the Elo scale, with provisional flags and analytic uncertainty.

The model (Bradley & Terry 1952) on the scale arena leaderboards use (Chiang et al. 2024):
P(a beats b) = 1 / (1 + 10 ** ((r_b - r_a) / 400)), ratings centred so that the models that are
rated and not provisional average 1000 (centring on every rated model would let one with a
handful of battles shift, and widen the intervals of, all the others). A tie or a both-bad vote
is half a win each way. Ratings are maximum-likelihood estimates on the battles aggregated per
pair; they exist only for the models of the largest strongly connected component of the "scored
against" graph (see :func:`lamarena.analysis.ranking.bt_solver.main_component`). Every other model
is
*provisional* and has no rating, never a huge number; a rated model with fewer than
``min_battles`` battles is provisional too but keeps its rating, and so is a rated model with no
decisive battle against the rated models (only ties and both-bad votes): its rating exists, but a
half win is the same outcome every time, so neither the sandwich nor the bootstrap can see how much
its results vary (both would give a zero-width interval). Its analytic variance falls back to the
model-based one (see :func:`lamarena.analysis.ranking.bt_solver.covariances`); its raw bootstrap
interval
may still have zero width (the ``only_ties`` reason says why it is not to be trusted), and the
leaderboard widens it to the analytic one (see ``leaderboard.build_leaderboard``).

Uncertainty: :meth:`BradleyTerryResult.intervals` (normal approximation from the observed Fisher
information, or its sandwich), :func:`bootstrap_bradley_terry` (numerics in ``bootstrap.py``) and
:func:`pairwise_tests` (Wald z-tests with Holm's correction, from ``pairwise.py``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy.stats import norm

from lamarena.analysis.battles import PairCounts, count_pairs, rated_pairs, validate_battles
from lamarena.analysis.encoded import EncodedBattles, encode_frame
from lamarena.analysis.ranking.bootstrap import (
    BOOTSTRAP_RIDGE,
    BootstrapResult,
    Resampled,
    resample_battles,
    resample_pairs,
)
from lamarena.analysis.ranking.bt_solver import (
    ELO_CENTER,
    ELO_SCALE,
    covariances,
    newton_pairs,
    tie_only_models,
)
from lamarena.analysis.ranking.clusters import Clusters, battle_clusters, encoded_cluster_cells
from lamarena.analysis.ranking.pairwise import holm_adjust, pairwise_tests
from lamarena.analysis.ranking.style_control import (
    controlled_design,
    information,
    newton_battles,
    parse_control,
)
from lamarena.errors import InsufficientData, InvalidInputError

__all__ = [
    "DEFAULT_MIN_BATTLES",
    "PROVISIONAL_REASONS",
    "BootstrapResult",
    "BradleyTerryResult",
    "bootstrap_bradley_terry",
    "bootstrap_bradley_terry_result",
    "bootstrap_encoded_result",
    "fit_bradley_terry",
    "fit_bradley_terry_result",
    "fit_counts_result",
    "holm_adjust",
    "pair_bootstrap_result",
    "pairwise_tests",
    "wald_intervals",
]

DEFAULT_MIN_BATTLES = 10
"""Models with fewer battles than this are provisional."""

PROVISIONAL_REASONS: dict[str, str] = {
    "no_losses": "never lost or tied: its maximum-likelihood rating is infinite",
    "no_wins": "never won or tied: its maximum-likelihood rating is minus infinity",
    "not_connected": "not compared both ways with the main group of models",
    "few_battles": "fewer battles than the minimum",
    "only_ties": (
        "only ties or both-bad votes against the rated models: its uncertainty cannot be "
        "estimated from half wins"
    ),
}
"""Why a model is provisional, keyed by the codes in :attr:`BradleyTerryResult.reasons`."""


@dataclass(frozen=True, eq=False)
class BradleyTerryResult:
    """A Bradley-Terry fit: ratings (Elo, mean 1000), provisional models and covariances.

    Attributes:
        ratings: Elo ratings of the rated models, highest first.
        battles: battles of every model (rated or not), by model.
        provisional: models reported apart (no rating, too few battles, or no decisive
            battle: see :data:`PROVISIONAL_REASONS`).
        reasons: for each provisional model, codes from :data:`PROVISIONAL_REASONS`.
        covariance: model-based covariance of the centred ratings (Elo^2): the pseudo-inverse of
            the observed Fisher information.
        robust_covariance: sandwich covariance (Elo^2), valid when the half-win treatment of
            ties makes the model misspecified (White 1980); the battles of a model with no
            decisive battle enter it with the binomial variance (see
            :func:`lamarena.analysis.ranking.bt_solver.covariances`), so it never gives such a
            model a
            zero variance.
        style_coefficients: Elo points per unit of each style control (empty without control).
        style_covariance: model-based covariance of the style coefficients (Elo^2).
        style_robust_covariance: sandwich covariance of the style coefficients (Elo^2).
        centred_on: the models whose ratings average 1000: the rated models that are not
            provisional (all rated models when every one is provisional).
        n_battles: every battle given.
        n_used: battles between rated models (the others carry no information on the ratings).
        min_battles: the provisional threshold used.
        control: the style controls used.
        iterations: Newton iterations of the fit.
    """

    ratings: pd.Series
    battles: pd.Series
    provisional: frozenset[str]
    reasons: Mapping[str, tuple[str, ...]]
    covariance: pd.DataFrame
    robust_covariance: pd.DataFrame
    style_coefficients: pd.Series
    style_covariance: pd.DataFrame
    style_robust_covariance: pd.DataFrame
    centred_on: tuple[str, ...]
    n_battles: int
    n_used: int
    min_battles: int
    control: tuple[str, ...] = ()
    iterations: int = 0
    method: str = "bradley_terry_mle"

    def intervals(self, confidence: float = 0.95, *, robust: bool = True) -> pd.DataFrame:
        """Normal-approximation (Wald) intervals of the ratings.

        Args:
            confidence: coverage of the two-sided intervals.
            robust: use the sandwich covariance (default; it is the right one when ties are
                present, since counting a tie as half a win is not the Bradley-Terry likelihood
                of any tie model) rather than the inverse Fisher information. For a model whose
                battles are all ties the sandwich uses the model-based variance of those battles
                (a sample of half wins says nothing about their spread), so no interval has zero
                width.

        Returns:
            Indexed like :attr:`ratings`: ``rating, se, ci_low, ci_high``.
        """
        cov = self.robust_covariance if robust else self.covariance
        return wald_intervals(self.ratings, cov, confidence)

    def style_intervals(self, confidence: float = 0.95, *, robust: bool = True) -> pd.DataFrame:
        """Wald intervals of the style coefficients (Elo points per unit), as :meth:`intervals`."""
        cov = self.style_robust_covariance if robust else self.style_covariance
        return wald_intervals(self.style_coefficients, cov, confidence)


def wald_intervals(estimate: pd.Series, cov: pd.DataFrame, confidence: float) -> pd.DataFrame:
    """``estimate +- z * se`` with ``se`` from the diagonal of ``cov``."""
    _check_confidence(confidence)
    se = np.sqrt(np.clip(np.diag(cov.loc[estimate.index, estimate.index].to_numpy()), 0.0, None))
    half = norm.ppf(0.5 + confidence / 2.0) * se
    return pd.DataFrame(
        {"rating": estimate, "se": se, "ci_low": estimate - half, "ci_high": estimate + half},
        index=estimate.index,
    )


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise InvalidInputError(f"confidence must be between 0 and 1, got {confidence}")


def _reasons(
    counts: PairCounts, rated: PairCounts, min_battles: int
) -> tuple[pd.Series, dict[str, tuple[str, ...]]]:
    """Battles per model and why each provisional model is provisional.

    A rated model is ``only_ties`` when none of its battles against rated models (the ones the fit
    uses) was won or lost outright; battles against unrated models carry no information on the
    ratings, so a decisive one there does not count.
    """
    size = len(counts.models)
    scored = np.zeros(size)
    conceded = np.zeros(size)
    games = np.zeros(size)
    np.add.at(scored, counts.first, counts.first_wins + counts.ties)
    np.add.at(scored, counts.second, counts.second_wins + counts.ties)
    np.add.at(conceded, counts.first, counts.second_wins + counts.ties)
    np.add.at(conceded, counts.second, counts.first_wins + counts.ties)
    np.add.at(games, counts.first, counts.battles)
    np.add.at(games, counts.second, counts.battles)
    is_rated = np.isin(np.array(counts.models, dtype=object), np.array(rated.models, dtype=object))
    inside = is_rated[counts.first] & is_rated[counts.second]
    only_ties = tie_only_models(
        size,
        counts.first[inside],
        counts.second[inside],
        (counts.first_wins + counts.second_wins)[inside],
    )
    reasons: dict[str, tuple[str, ...]] = {}
    for i, name in enumerate(counts.models):
        found = []
        if not is_rated[i]:
            if conceded[i] == 0:
                found.append("no_losses")
            elif scored[i] == 0:
                found.append("no_wins")
            else:
                found.append("not_connected")
        elif only_ties[i]:
            found.append("only_ties")
        if games[i] < min_battles:
            found.append("few_battles")
        if found:
            reasons[name] = tuple(found)
    index = pd.Index(counts.models, dtype=object, name="model")
    return pd.Series(games.astype(np.int64), index=index, name="battles"), reasons


def _anchors(models: tuple[str, ...], reasons: Mapping[str, tuple[str, ...]]) -> tuple[str, ...]:
    """The rated models the scale is centred on: the non-provisional ones, else all."""
    settled = tuple(name for name in models if name not in reasons)
    return settled or models


def _controlled_fit(
    battles: pd.DataFrame, rated: PairCounts, theta: NDArray[np.float64], control: tuple[str, ...]
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64], int, int]:
    """Style-controlled fit: parameters, two covariances, battles used, iterations."""
    design = controlled_design(battles, rated.models, control)
    phi0 = np.concatenate([theta, np.zeros(len(control))])[None, :]
    result = newton_battles(design, phi0)
    if not result.converged.all():
        raise InsufficientData(
            "the style-controlled fit did not converge: the style features separate the "
            "outcomes; leave a control out or record more votes"
        )
    phi = result.theta[0]
    hessian, meat = information(design, phi)
    size = len(rated.models)
    shift = np.zeros_like(hessian)
    shift[:size, :size] = 1.0 / size
    bread = np.linalg.inv(hessian + shift) - shift
    return phi, bread, bread @ meat @ bread, design.a.size, result.iterations


def fit_bradley_terry_result(
    battles: pd.DataFrame,
    *,
    min_battles: int = DEFAULT_MIN_BATTLES,
    control: Sequence[str] | str = (),
    anchor: str | None = None,
) -> BradleyTerryResult:
    """Fit Bradley-Terry ratings and report which models are provisional.

    Maximum likelihood (Bradley & Terry 1952) on battles aggregated per pair, solved by Newton's
    method (see ``bt_solver``), on the Elo scale of Chiang et al. (2024): P(a beats b) =
    1 / (1 + 10 ** ((r_b - r_a) / 400)), the non-provisional rated models averaging 1000 (see
    ``centred_on``), ties and both-bad votes half a win each way. With ``control``, the
    style-controlled model of Chiang et al. (2024) is fitted on per-battle data instead (see
    ``style_control``): ratings are then what each model would score with replies equal in the
    controlled styles (length, latency, time to first audio, audio duration).

    Args:
        battles: one row per battle (``model_a, model_b, winner``; for control also the style
            columns).
        min_battles: rated models with fewer battles are flagged provisional.
        control: style controls, among ``length``, ``latency``, ``ttfab`` and ``audio``.
        anchor: pin this model at 1000 instead of centring the settled models on 1000, so the
            scale stays put as models join, leave or stop being provisional (its own interval
            then has no width: it is the reference).

    Returns:
        The fit; models without a finite MLE are provisional and absent from ``ratings``; rated
        models with too few battles or no decisive battle are provisional but rated.

    Raises:
        InvalidInputError: malformed battles, a negative ``min_battles``, bad control columns,
            or an ``anchor`` without a rating.
    """
    clean = validate_battles(battles)
    control = parse_control(control)
    if not control:
        return fit_counts_result(
            count_pairs(clean), n_battles=len(clean), min_battles=min_battles, anchor=anchor
        )
    return _fit_result(clean, count_pairs(clean), len(clean), min_battles, control, anchor)


def fit_counts_result(
    counts: PairCounts,
    *,
    n_battles: int,
    min_battles: int = DEFAULT_MIN_BATTLES,
    anchor: str | None = None,
) -> BradleyTerryResult:
    """:func:`fit_bradley_terry_result` (without style control) of battles already counted.

    Args:
        counts: the battles per pair (:func:`~lamarena.analysis.battles.count_pairs`, or
            :meth:`~lamarena.analysis.encoded.EncodedBattles.pair_counts`).
        n_battles: every battle counted.
        min_battles: rated models with fewer battles are flagged provisional.
        anchor: pin this model at 1000 (see :func:`fit_bradley_terry_result`).

    Raises:
        InvalidInputError: a negative ``min_battles`` or an ``anchor`` without a rating.
    """
    return _fit_result(None, counts, n_battles, min_battles, (), anchor)


def _fit_result(
    clean: pd.DataFrame | None,
    counts: PairCounts,
    n_battles: int,
    min_battles: int,
    control: tuple[str, ...],
    anchor: str | None,
) -> BradleyTerryResult:
    """The fit of :func:`fit_bradley_terry_result`; ``clean`` is needed with ``control`` only."""
    if min_battles < 0:
        raise InvalidInputError(f"min_battles must be 0 or more, got {min_battles}")
    rated = rated_pairs(counts)
    size = len(rated.models)
    theta = np.zeros(size)
    bread = robust = np.zeros((size, size))
    style = np.zeros(len(control))
    style_bread = style_robust = np.zeros((len(control), len(control)))
    iterations = 0
    n_used = int(rated.battles.sum())
    if size:
        theta, iterations = _fit_pairs(rated)
        if control and clean is not None:
            phi, full_bread, full_robust, n_used, iterations = _controlled_fit(
                clean, rated, theta, control
            )
            theta, style = phi[:size], phi[size:]
            bread, robust = full_bread[:size, :size], full_robust[:size, :size]
            style_bread, style_robust = full_bread[size:, size:], full_robust[size:, size:]
        else:
            bread, robust = covariances(
                rated.first, rated.second, rated.first_wins, rated.second_wins, rated.ties, theta
            )
    games, reasons = _reasons(counts, rated, min_battles)
    anchors = _anchors(rated.models, reasons)
    if anchor is not None:
        if anchor not in rated.models:
            known = ", ".join(rated.models) or "none"
            raise InvalidInputError(
                f"anchor {anchor!r} has no rating in these votes; anchor one of: {known}"
            )
        anchors = (anchor,)
    # Centre on the anchors: a linear map P theta, so covariances become P C P^T.
    weights = np.isin(np.array(rated.models, dtype=object), np.array(anchors, dtype=object))
    projection = np.eye(size) - weights[None, :] / max(int(weights.sum()), 1)
    theta = projection @ theta
    bread = projection @ bread @ projection.T
    robust = projection @ robust @ projection.T
    names = pd.Index(rated.models, dtype=object, name="model")
    style_names = pd.Index(control, dtype=object, name="control")
    ratings = pd.Series(ELO_CENTER + ELO_SCALE * theta, index=names, name="rating")
    order = sorted(range(size), key=lambda i: (-theta[i], rated.models[i]))
    scale2 = ELO_SCALE**2
    return BradleyTerryResult(
        ratings=ratings.iloc[order],
        battles=games,
        provisional=frozenset(reasons),
        reasons=reasons,
        covariance=pd.DataFrame(bread * scale2, index=names, columns=names),
        robust_covariance=pd.DataFrame(robust * scale2, index=names, columns=names),
        style_coefficients=pd.Series(style * ELO_SCALE, index=style_names, name="coefficient"),
        style_covariance=pd.DataFrame(style_bread * scale2, index=style_names, columns=style_names),
        style_robust_covariance=pd.DataFrame(
            style_robust * scale2, index=style_names, columns=style_names
        ),
        centred_on=anchors,
        n_battles=n_battles,
        n_used=n_used,
        min_battles=min_battles,
        control=control,
        iterations=iterations,
        method="bradley_terry_style_control" if control else "bradley_terry_mle",
    )


def _fit_pairs(rated: PairCounts) -> tuple[NDArray[np.float64], int]:
    """Exact MLE (no penalty) of the rated models' strengths in natural units."""
    result = newton_pairs(
        np.zeros((1, len(rated.models))),
        rated.first_score[None, :],
        rated.battles[None, :],
        rated.first,
        rated.second,
        tol=1e-12,
    )
    if not result.converged.all():
        raise InsufficientData(
            "the Bradley-Terry fit did not converge; the votes are too lopsided to rate these "
            "models, record more votes"
        )
    return result.theta[0], result.iterations


def fit_bradley_terry(battles: pd.DataFrame, *, control: Sequence[str] | str = ()) -> pd.Series:
    """Bradley-Terry ratings (Elo scale, mean 1000) of the models whose MLE exists.

    The DESIGN.md entry point; :func:`fit_bradley_terry_result` gives the provisional models,
    covariances and settings too. See it for the model (Bradley & Terry 1952; Chiang et al. 2024).
    With its default ``min_battles`` of 10, the models with 10 battles or more average 1000.

    Args:
        battles: one row per battle with ``model_a, model_b, winner``.
        control: style controls, among ``length``, ``latency``, ``ttfab`` and ``audio``.

    Returns:
        Ratings indexed by model, highest first. Models with no finite rating (all wins, all
        losses, not connected to the main group) are left out.

    Raises:
        InvalidInputError: malformed battles.
        InsufficientData: no two models have both won and lost against each other's group.
    """
    result = fit_bradley_terry_result(battles, control=control)
    if result.ratings.empty:
        raise InsufficientData(_NO_RATINGS)
    return result.ratings


_NO_RATINGS = (
    "no model has a finite Bradley-Terry rating yet: ratings need at least two models that have "
    "each won (or tied) and lost against the other's group; record more votes"
)


def bootstrap_bradley_terry_result(
    battles: pd.DataFrame,
    *,
    rounds: int = 1000,
    seed: int | None = None,
    control: Sequence[str] | str = (),
    min_battles: int = DEFAULT_MIN_BATTLES,
    fit: BradleyTerryResult | None = None,
    cluster: str | Clusters = "none",
) -> BootstrapResult:
    """Bootstrap the Bradley-Terry ratings, all rounds at once.

    Rounds resample the battles with replacement (Efron & Tibshirani 1993), as the study did with
    10,000 rounds, drawn as multinomial counts of the aggregated (pair, outcome) cells and solved
    by one batched Newton method (see ``bootstrap.py`` for the method, the weak penalty that keeps
    rounds finite when a model's MLE would not exist in them, and how such rounds are flagged).
    With ``control``, per-battle multiplicities are drawn and the style-controlled model refitted.

    Args:
        battles: one row per battle.
        rounds: bootstrap rounds.
        seed: seed of the ``numpy.random.Generator``; the same data and seed give the same rounds
            whatever the order of the rows.
        control: style controls (as :func:`fit_bradley_terry_result`).
        min_battles: provisional threshold of the fit (it decides the centring models).
        fit: the full-data fit of the same battles and control, to avoid refitting (its
            ``min_battles`` then applies).
        cluster: resample whole clusters of votes (``participant``, ``session``, ``auto``; see
            :mod:`lamarena.analysis.ranking.clusters`) instead of single battles (``none``), or the
            clusters of these battles already found.

    Returns:
        The rounds (Elo scale) with their unbounded flags and settings.

    Raises:
        InvalidInputError: malformed battles, ``rounds`` < 1, or a ``fit`` of other battles or
            with other controls.
        InsufficientData: fewer than two models have a rating.
    """
    control = parse_control(control)
    if rounds < 1:
        raise InvalidInputError(f"rounds must be at least 1, got {rounds}")
    clean = validate_battles(battles)
    if fit is None:
        fit = fit_bradley_terry_result(clean, control=control, min_battles=min_battles)
    elif fit.control != control:
        raise InvalidInputError(f"fit used control {fit.control}, not {control}")
    if len(fit.ratings) < 2:
        raise InsufficientData(_NO_RATINGS)
    rated = rated_pairs(count_pairs(clean))
    if fit.n_battles != len(clean) or set(fit.ratings.index) != set(rated.models):
        raise InvalidInputError("fit was computed from other battles than the ones given")
    names = pd.Index(rated.models, dtype=object, name="model")
    theta = (fit.ratings.reindex(names).to_numpy() - ELO_CENTER) / ELO_SCALE
    anchors = names.isin(list(fit.centred_on))
    rng = np.random.default_rng(seed)
    clusters = cluster if isinstance(cluster, Clusters) else battle_clusters(clean, cluster)
    if clusters.labels.size != len(clean):
        raise InvalidInputError("clusters were found for other battles than the ones given")
    clustered = clusters.by != "none"
    if control:
        design = controlled_design(clean, rated.models, control)
        phi = np.concatenate([theta, fit.style_coefficients.to_numpy() / ELO_SCALE])
        inside = clean["model_a"].isin(rated.models) & clean["model_b"].isin(rated.models)
        by_battle = (clusters.labels[inside.to_numpy()], clusters.n_clusters) if clustered else None
        raw = resample_battles(design, phi, anchors, fit.n_battles, rounds, rng, clusters=by_battle)
    else:
        cells = encoded_cluster_cells(encode_frame(clean), rated, clusters) if clustered else None
        raw = resample_pairs(
            rated, theta, anchors, fit.n_battles, rounds, rng, cells_by_cluster=cells
        )
    size = len(names)
    order = list(fit.ratings.index)
    return BootstrapResult(
        samples=pd.DataFrame(ELO_CENTER + ELO_SCALE * raw.theta[:, :size], columns=names)[order],
        unbounded_above=pd.DataFrame(raw.above, columns=names)[order],
        unbounded_below=pd.DataFrame(raw.below, columns=names)[order],
        style_samples=pd.DataFrame(
            ELO_SCALE * raw.theta[:, size:], columns=pd.Index(control, dtype=object)
        ),
        rounds=rounds,
        seed=seed,
        ridge=BOOTSTRAP_RIDGE,
        control=control,
        unconverged=raw.unconverged,
        cluster_by=clusters.by,
        n_clusters=clusters.n_clusters,
    )


def bootstrap_encoded_result(
    battles: EncodedBattles,
    fit: BradleyTerryResult,
    clusters: Clusters,
    *,
    rounds: int,
    seed: int | None,
) -> BootstrapResult:
    """:func:`bootstrap_bradley_terry_result` (without style control) of encoded battles.

    The same rounds, to the seed, as the DataFrame the battles were encoded from.

    Args:
        battles: the battles (rows of one battle or of counts).
        fit: their full-data fit (:func:`fit_counts_result`).
        clusters: their clusters (:func:`~lamarena.analysis.ranking.clusters.encoded_clusters`).
        rounds: bootstrap rounds.
        seed: seed of the random generator.

    Raises:
        InvalidInputError: ``rounds`` < 1.
        InsufficientData: fewer than two models have a rating.
    """
    if rounds < 1:
        raise InvalidInputError(f"rounds must be at least 1, got {rounds}")
    if len(fit.ratings) < 2:
        raise InsufficientData(_NO_RATINGS)
    rated = rated_pairs(battles.pair_counts())
    names = pd.Index(rated.models, dtype=object, name="model")
    theta = (fit.ratings.reindex(names).to_numpy() - ELO_CENTER) / ELO_SCALE
    anchors = names.isin(list(fit.centred_on))
    rng = np.random.default_rng(seed)
    cells = encoded_cluster_cells(battles, rated, clusters) if clusters.by != "none" else None
    raw = resample_pairs(rated, theta, anchors, fit.n_battles, rounds, rng, cells_by_cluster=cells)
    return pair_bootstrap_result(raw, names, fit, clusters, seed=seed)


def pair_bootstrap_result(
    raw: Resampled,
    names: pd.Index,
    fit: BradleyTerryResult,
    clusters: Clusters,
    *,
    seed: int | None,
) -> BootstrapResult:
    """The :class:`BootstrapResult` of rounds without style control, in ``fit``'s model order.

    Args:
        raw: the rounds (:func:`~lamarena.analysis.ranking.bootstrap.resample_pairs`), natural
            units, columns in the order of ``names``.
        names: the rated models, as ``raw``'s columns.
        fit: the full-data fit (its ratings give the order of the result's columns).
        clusters: what the rounds resampled.
        seed: the seed they were drawn with.
    """
    rounds = raw.theta.shape[0]
    order = list(fit.ratings.index)
    return BootstrapResult(
        samples=pd.DataFrame(ELO_CENTER + ELO_SCALE * raw.theta, columns=names)[order],
        unbounded_above=pd.DataFrame(raw.above, columns=names)[order],
        unbounded_below=pd.DataFrame(raw.below, columns=names)[order],
        style_samples=pd.DataFrame(index=range(rounds)),
        rounds=rounds,
        seed=seed,
        ridge=BOOTSTRAP_RIDGE,
        control=(),
        unconverged=raw.unconverged,
        cluster_by=clusters.by,
        n_clusters=clusters.n_clusters,
    )


def bootstrap_bradley_terry(
    battles: pd.DataFrame,
    rounds: int = 1000,
    seed: int | None = None,
    *,
    control: Sequence[str] | str = (),
) -> pd.DataFrame:
    """Bootstrap ratings: one row per round, one column per rated model (Elo scale).

    The DESIGN.md entry point; see :func:`bootstrap_bradley_terry_result` for the method and for
    the flags of rounds in which a model's rating is unbounded (their values here are the weakly
    penalised estimates, finite and moderate).

    Args:
        battles: one row per battle.
        rounds: bootstrap rounds.
        seed: seed of the random generator.
        control: style controls.

    Returns:
        The bootstrap ratings; models with no finite full-data rating are left out.

    Raises:
        InvalidInputError: malformed battles or ``rounds`` < 1.
        InsufficientData: fewer than two models have a rating.
    """
    return bootstrap_bradley_terry_result(
        battles, rounds=rounds, seed=seed, control=control
    ).samples
