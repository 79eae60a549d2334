"""Style-controlled Bradley-Terry: model strengths adjusted for reply length, latency and audio.

Chatbot Arena's style control (Chiang et al. 2024, and the LMSYS note "Does style matter?",
2024) fits a logistic regression on per-battle data with one column per model (+1 for
``model_a``, -1 for ``model_b``) plus normalised style differences, so that the model coefficients
are the strengths a model would have if both replies had the same style. lamarena uses

- ``length``: ``(chars_a - chars_b) / (chars_a + chars_b)`` (0 when both replies are empty),
- ``latency``: ``(ttft_a_s - ttft_b_s) / (ttft_a_s + ttft_b_s)`` (0 when both are 0),
- ``ttfab``: ``(ttfab_a_s - ttfab_b_s) / (ttfab_a_s + ttfab_b_s)``, the time to the first audio
  byte of a spoken reply (0 when both are 0),
- ``audio``: ``(audio_a_s - audio_b_s) / (audio_a_s + audio_b_s)``, the duration of a spoken
  reply's audio (0 when both are 0),

each in [-1, 1], not further standardised, so a style coefficient reads as "Elo points gained by
the reply with the whole difference". Ties and both-bad votes are an outcome of 1/2 (the
binomial log-likelihood with a fractional outcome is exactly two rows of weight 1/2 each way).

Every control needs a non-negative number in both of its columns on every battle it fits: a
missing column, or a missing (NaN, None) or negative value on any battle, is an error naming the
column, how many rows and the first one; nothing is filled in or dropped silently. A text reply
has no audio, so ``ttfab`` and ``audio`` apply to speech-out votes (``leaderboard --mode speech
--control ttfab,audio``).

This module holds the numerics (a batched Newton method over resampling rounds with per-battle
weights); ``ranking.py`` is the DataFrame-facing API.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy.special import expit

from lamarena.analysis.ranking.bt_solver import (
    NewtonResult,
    laplacian,
    tie_only_models,
    unbounded_flags,
)
from lamarena.errors import InvalidInputError

__all__ = [
    "CONTROL_COLUMNS",
    "BattleDesign",
    "controlled_design",
    "information",
    "make_design",
    "newton_battles",
    "parse_control",
    "resampled_flags",
    "style_features",
]

CONTROL_COLUMNS: dict[str, tuple[str, str]] = {
    "length": ("chars_a", "chars_b"),
    "latency": ("ttft_a_s", "ttft_b_s"),
    "ttfab": ("ttfab_a_s", "ttfab_b_s"),
    "audio": ("audio_a_s", "audio_b_s"),
}
"""Each style control and the per-battle columns it is computed from."""

_SPOKEN_ONLY = frozenset({"ttfab", "audio"})
"""Controls a text reply has no value for."""

_FULL_STEP_MAX = 0.5
"""Largest change of any battle's log-odds for which the full Newton step is taken unchecked."""
_MAX_HALVINGS = 40
_CHUNK_BUDGET = 2_000_000
"""Upper bound on rounds x battles held in one ``(R, N)`` array (16 MB)."""


def parse_control(control: Sequence[str] | str) -> tuple[str, ...]:
    """Normalise ``control``: ``"length,latency"`` or a sequence of names to a tuple.

    Args:
        control: names among :data:`CONTROL_COLUMNS` (``length``, ``latency``, ``ttfab``,
            ``audio``), or one comma-separated string.

    Returns:
        The names in the order given, without duplicates.

    Raises:
        InvalidInputError: an unknown name.
    """
    names = control.split(",") if isinstance(control, str) else list(control)
    cleaned = tuple(dict.fromkeys(str(name).strip() for name in names if str(name).strip()))
    unknown = [name for name in cleaned if name not in CONTROL_COLUMNS]
    if unknown:
        raise InvalidInputError(
            f"unknown style control {', '.join(map(repr, unknown))}; "
            f"use any of {', '.join(CONTROL_COLUMNS)} (comma-separated)"
        )
    return cleaned


def style_features(battles: pd.DataFrame, control: Sequence[str]) -> NDArray[np.float64]:
    """The ``(N, F)`` normalised style differences of each battle, one column per control.

    Args:
        battles: validated battles with the style columns the controls need.
        control: names from :data:`CONTROL_COLUMNS`.

    Returns:
        Values in [-1, 1].

    Raises:
        InvalidInputError: a needed column is missing, or has missing, non-numeric or negative
            values (naming the column, how many rows and the first row label).
    """
    columns = []
    for name in control:
        left, right = CONTROL_COLUMNS[name]
        missing = [column for column in (left, right) if column not in battles.columns]
        if missing:
            raise InvalidInputError(
                f"style control '{name}' needs columns {left} and {right}, but battles lack "
                f"{', '.join(missing)}; record them or leave '{name}' out of control"
            )
        a = _numeric(battles, left, name)
        b = _numeric(battles, right, name)
        total = a + b
        columns.append(np.divide(a - b, total, out=np.zeros_like(total), where=total > 0))
    return np.column_stack(columns) if columns else np.zeros((len(battles), 0))


def _numeric(battles: pd.DataFrame, column: str, name: str) -> NDArray[np.float64]:
    """One style column as float64, rejecting missing, non-numeric and negative values."""
    values: NDArray[np.float64] = pd.to_numeric(battles[column], errors="coerce").to_numpy(
        dtype=np.float64
    )
    bad = ~np.isfinite(values) | (values < 0)
    if bad.any():
        first = battles.index[np.flatnonzero(bad)[0]]
        raw = battles[column].iloc[int(np.flatnonzero(bad)[0])]
        spoken = (
            " (text-out battles have none: rank the speech-out votes alone, --mode speech)"
            if name in _SPOKEN_ONLY
            else ""
        )
        raise InvalidInputError(
            f"style control '{name}' needs a non-negative number in column '{column}' on every "
            f"battle; {int(bad.sum())} row(s) lack one (first: row {first!r}, value {raw!r}); "
            f"drop those rows or leave '{name}' out of control{spoken}"
        )
    return values


@dataclass(frozen=True, eq=False)
class BattleDesign:
    """Per-battle arrays of a controlled fit, battles grouped by pair (contiguous blocks).

    Grouping the battles of each unordered pair together lets every sum over battles that the
    model part needs (gradient, information) be a segment sum (``np.add.reduceat``) followed by a
    small ``(P, K)`` incidence product, and every log-odds a block repeat: no sparse matrices and
    no column gathers over ``N``.

    Attributes:
        a: ``(N,)`` index of ``model_a`` among the rated models.
        b: ``(N,)`` index of ``model_b``.
        outcome: ``(N,)`` 1 if ``model_a`` won, 0 if ``model_b`` won, 1/2 for a tie or both bad.
        features: ``(N, F)`` style differences.
        sign: ``(N,)`` +1 when ``model_a`` is the pair's ``first`` model, else -1.
        n_models: number of rated models ``K``.
        first: ``(P,)`` first model of each observed unordered pair (``first < second``).
        second: ``(P,)`` second model of each pair.
        starts: ``(P,)`` offset of each pair's block of battles.
        counts: ``(P,)`` battles in each block.
        incidence: ``(P, K)`` +1 at ``first``, -1 at ``second``.
    """

    a: NDArray[np.intp]
    b: NDArray[np.intp]
    outcome: NDArray[np.float64]
    features: NDArray[np.float64]
    sign: NDArray[np.float64]
    n_models: int
    first: NDArray[np.intp]
    second: NDArray[np.intp]
    starts: NDArray[np.intp]
    counts: NDArray[np.intp]
    incidence: NDArray[np.float64]

    @property
    def size(self) -> int:
        """Number of parameters ``K + F``."""
        return self.n_models + int(self.features.shape[1])

    def pair_sums(self, values: NDArray[np.float64]) -> NDArray[np.float64]:
        """``(R, N)`` per-battle values summed within each pair: ``(R, P)``."""
        return np.add.reduceat(values, self.starts, axis=1)


def make_design(
    a: NDArray[np.intp],
    b: NDArray[np.intp],
    outcome: NDArray[np.float64],
    features: NDArray[np.float64],
    n_models: int,
) -> BattleDesign:
    """Group battles by pair, in a canonical order, and build the incidence matrix.

    The order (pair, side, outcome, features) depends only on the multiset of battles, so a
    resampling does not depend on the order a store or a file returned them in.

    Args:
        a: ``(N,)`` index of ``model_a`` among the rated models (at least one battle).
        b: ``(N,)`` index of ``model_b``.
        outcome: ``(N,)`` 1, 0 or 1/2.
        features: ``(N, F)`` style differences.
        n_models: number of rated models.

    Returns:
        The design.
    """
    key = np.minimum(a, b) * n_models + np.maximum(a, b)
    order = np.lexsort((*features.T[::-1], outcome, a, key))
    a, b, outcome, features, key = a[order], b[order], outcome[order], features[order], key[order]
    keys, starts, counts = np.unique(key, return_index=True, return_counts=True)
    first = (keys // n_models).astype(np.intp)
    second = (keys % n_models).astype(np.intp)
    incidence = np.zeros((keys.size, n_models))
    incidence[np.arange(keys.size), first] = 1.0
    incidence[np.arange(keys.size), second] = -1.0
    return BattleDesign(
        a=a,
        b=b,
        outcome=outcome,
        features=np.ascontiguousarray(features),
        sign=np.where(a < b, 1.0, -1.0),
        n_models=n_models,
        first=first,
        second=second,
        starts=starts.astype(np.intp),
        counts=counts.astype(np.intp),
        incidence=incidence,
    )


def controlled_design(
    battles: pd.DataFrame, names: Sequence[str], control: Sequence[str]
) -> BattleDesign:
    """The design of the battles between rated models.

    Args:
        battles: validated battles.
        names: the rated models; battles involving any other model are left out.
        control: style controls.

    Returns:
        The design.

    Raises:
        InvalidInputError: a style column is missing or has unusable values.
    """
    position = {name: i for i, name in enumerate(names)}
    a = battles["model_a"].map(position)
    b = battles["model_b"].map(position)
    inside = (a.notna() & b.notna()).to_numpy()
    used = battles.loc[inside]
    features = style_features(used, control)
    winner = used["winner"].to_numpy(dtype=object)
    outcome = np.where(winner == "model_a", 1.0, np.where(winner == "model_b", 0.0, 0.5))
    return make_design(
        # pandas-stubs widen ``to_numpy(dtype=np.intp)`` to ``integer[Any]``.
        cast("NDArray[np.intp]", a[inside].to_numpy(dtype=np.intp)),
        cast("NDArray[np.intp]", b[inside].to_numpy(dtype=np.intp)),
        outcome,
        features,
        len(names),
    )


def _assemble(design: BattleDesign, weights: NDArray[np.float64]) -> NDArray[np.float64]:
    """``sum_n w_n x_n x_n^T`` for ``x_n = (e_a - e_b, f_n)``, for each row of ``weights``."""
    k = design.n_models
    f = design.features.shape[1]
    rounds = weights.shape[0]
    out = np.empty((rounds, k + f, k + f))
    out[:, :k, :k] = laplacian(k, design.first, design.second, design.pair_sums(weights))
    signed = weights * design.sign
    for col in range(f):
        cross = design.pair_sums(signed * design.features[:, col]) @ design.incidence
        out[:, :k, k + col] = cross
        out[:, k + col, :k] = cross
    if f:
        outer = (design.features[:, :, None] * design.features[:, None, :]).reshape(-1, f * f)
        out[:, k:, k:] = (weights @ outer).reshape(rounds, f, f)
    return out


def information(
    design: BattleDesign, phi: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Observed information and the outer product of per-battle scores at ``phi``.

    Args:
        design: the battles.
        phi: ``(K + F,)`` strengths then style coefficients (natural units).

    Returns:
        ``(H, M)``: ``H = sum p(1-p) x x^T`` and ``M = sum (y - p)^2 x x^T``, both ``(D, D)``;
        ``H+ M H+`` is the sandwich covariance (White 1980). As in
        :func:`lamarena.analysis.ranking.bt_solver.covariances`, a battle of a model with no
        decisive
        battle enters ``M`` with ``p(1-p)`` instead: its squared residual ``(1/2 - p)^2`` is
        fixed by the fit and says nothing about how much that model's outcomes vary.
    """
    prob = expit(_linear(design, phi[None, :]))[0]
    fisher = prob * (1.0 - prob)
    decisive = design.pair_sums((design.outcome != 0.5).astype(np.float64)[None, :])[0]
    only_ties = tie_only_models(design.n_models, design.first, design.second, decisive)
    unseen = np.repeat(only_ties[design.first] | only_ties[design.second], design.counts)
    weights = np.stack([fisher, np.where(unseen, fisher, np.square(design.outcome - prob))])
    both = _assemble(design, weights)
    return both[0], both[1]


def _linear(design: BattleDesign, phi: NDArray[np.float64]) -> NDArray[np.float64]:
    """``(R, N)`` log-odds that ``model_a`` wins, for ``(R, D)`` parameters."""
    k = design.n_models
    pair = phi[:, :k] @ design.incidence.T
    eta = np.repeat(pair, design.counts, axis=1)
    eta *= design.sign
    if design.features.shape[1]:
        eta += phi[:, k:] @ design.features.T
    return eta


def newton_battles(
    design: BattleDesign,
    phi0: NDArray[np.float64],
    weights: NDArray[np.float64] | None = None,
    *,
    ridge: float = 0.0,
    tol: float = 1e-10,
    max_iter: int = 200,
) -> NewtonResult:
    """Fit the controlled model for many resampling rounds at once (batched Newton).

    Maximises ``sum_n w_rn [y_n log sigma(eta_n) + (1 - y_n) log sigma(-eta_n)] - ridge/2 |phi|^2``
    with ``eta_n = theta_a - theta_b + f_n . beta``, the strengths constrained to sum to zero.

    Args:
        design: the battles.
        phi0: ``(R, K + F)`` starting values.
        weights: ``(R, N)`` how often each battle is drawn in each round; None means once each.
        ridge: Gaussian penalty weight (zero for the exact MLE).
        tol: stop a round once its largest step entry is below this.
        max_iter: cap on the iterations.

    Returns:
        ``theta`` holds strengths then style coefficients, ``(R, K + F)``.
    """
    phi = np.array(phi0, dtype=np.float64, copy=True)
    k = design.n_models
    phi[:, :k] -= phi[:, :k].mean(axis=1, keepdims=True)
    n_rounds = phi.shape[0]
    converged = np.zeros(n_rounds, dtype=bool)
    chunk = max(1, _CHUNK_BUDGET // max(1, design.a.size))
    iterations = 0
    for start in range(0, n_rounds, chunk):
        stop = min(start + chunk, n_rounds)
        w = (
            np.ones((stop - start, design.a.size))
            if weights is None
            else np.asarray(weights[start:stop], dtype=np.float64)
        )
        used = _newton_chunk(
            design, phi[start:stop], converged[start:stop], w, ridge, tol, max_iter
        )
        iterations = max(iterations, used)
    return NewtonResult(theta=phi, converged=converged, iterations=iterations)


def _newton_chunk(
    design: BattleDesign,
    phi: NDArray[np.float64],
    converged: NDArray[np.bool_],
    weights: NDArray[np.float64],
    ridge: float,
    tol: float,
    max_iter: int,
) -> int:
    """Newton iterations in place on one chunk of rounds; return the iterations used."""
    k = design.n_models
    size = design.size
    active = np.arange(phi.shape[0])
    diagonal = np.arange(size)
    feature_max = np.abs(design.features).max(axis=0, initial=0.0)
    for iteration in range(1, max_iter + 1):
        ph = phi[active]
        w = weights[active]
        eta = _linear(design, ph)
        prob = expit(eta)
        residual = w * (design.outcome - prob)
        gradient = np.concatenate(
            [
                design.pair_sums(residual * design.sign) @ design.incidence,
                residual @ design.features,
            ],
            axis=1,
        )
        gradient -= ridge * ph
        hessian = _assemble(design, w * prob * (1.0 - prob))
        hessian[:, :k, :k] += 1.0 / k
        hessian[:, diagonal, diagonal] += ridge
        step = np.linalg.solve(hessian, gradient[..., None])[..., 0]
        # An upper bound on the largest change of any battle's log-odds, without an (R, N) pass.
        moved = np.abs(step[:, :k] @ design.incidence.T).max(axis=1) + np.abs(step[:, k:]) @ (
            feature_max
        )
        large = moved > _FULL_STEP_MAX
        if large.any():
            step[large] *= _line_search(design, ph[large], step[large], w[large], ridge)[:, None]
        phi[active] = ph + step
        done = np.abs(step).max(axis=1) < tol
        converged[active[done]] = True
        active = active[~done]
        if active.size == 0:
            return iteration
    return max_iter


def _objective(
    design: BattleDesign, phi: NDArray[np.float64], weights: NDArray[np.float64], ridge: float
) -> NDArray[np.float64]:
    """Negative penalised log-likelihood per round."""
    eta = _linear(design, phi)
    y = design.outcome
    loss = weights * (y * np.logaddexp(0.0, -eta) + (1.0 - y) * np.logaddexp(0.0, eta))
    total: NDArray[np.float64] = loss.sum(axis=1) + 0.5 * ridge * np.square(phi).sum(axis=1)
    return total


def _line_search(
    design: BattleDesign,
    phi: NDArray[np.float64],
    step: NDArray[np.float64],
    weights: NDArray[np.float64],
    ridge: float,
) -> NDArray[np.float64]:
    """Step lengths (1, 1/2, ...) that decrease the objective, per round."""
    base = _objective(design, phi, weights, ridge)
    length = np.ones(phi.shape[0])
    todo = np.arange(phi.shape[0])
    for _ in range(_MAX_HALVINGS):
        trial = _objective(
            design, phi[todo] + length[todo, None] * step[todo], weights[todo], ridge
        )
        worse = trial > base[todo] + 1e-12 * np.abs(base[todo])
        if not worse.any():
            break
        todo = todo[worse]
        length[todo] *= 0.5
    return length


def resampled_flags(
    design: BattleDesign, weights: NDArray[np.float64], reference: int
) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    """``bt_solver.unbounded_flags`` for per-battle resampling weights.

    Args:
        design: the battles.
        weights: ``(R, N)`` draws of each battle per round.
        reference: index of the reference model.

    Returns:
        ``(above, below)``, two ``(R, K)`` boolean arrays.
    """
    y = design.outcome
    first_score = np.where(design.sign > 0, y, 1.0 - y)
    first_scored = design.pair_sums(weights * (first_score > 0))
    second_scored = design.pair_sums(weights * (first_score < 1))
    return unbounded_flags(
        first_scored, second_scored, design.first, design.second, design.n_models, reference
    )
