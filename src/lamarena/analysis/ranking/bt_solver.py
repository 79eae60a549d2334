"""Numerical core of the Bradley-Terry fits: batched Newton on aggregated pair counts.

Everything here works on plain arrays in natural units (log-odds strengths ``theta``, where
P(i beats j) = 1 / (1 + exp(theta_j - theta_i)); Bradley & Terry 1952). ``ranking.py`` turns
DataFrames into these arrays and the results back into Elo-scale Series.

Why a hand-written solver rather than ``scipy.optimize`` or ``choix``: the bootstrap refits the
model thousands of times. Solving all rounds at once (a vectorised Newton method with one batched
``np.linalg.solve`` over an ``(R, K, K)`` stack of Hessians, warm-started from the full-data
estimate) converges in three or four steps for every round together, where one optimiser call per
round pays Python and optimiser overhead thousands of times (``benchmarks/ranking.py`` measures
the difference). The Newton step on aggregated counts is the classical alternative to the MM
algorithm of Hunter (2004), with quadratic instead of linear convergence.

The log-likelihood is invariant to adding a constant to every strength; the solver fixes the sum
of the strengths at zero by adding ``J / K`` (``J`` the all-ones matrix) to the Hessian, which
leaves the Newton direction inside the sum-zero subspace unchanged and makes the system positive
definite whenever the comparison graph is connected.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.sparse import csr_array, csr_matrix
from scipy.sparse.csgraph import connected_components
from scipy.special import expit

__all__ = [
    "ELO_CENTER",
    "ELO_SCALE",
    "NewtonResult",
    "covariances",
    "laplacian",
    "main_component",
    "newton_pairs",
    "pseudo_inverse_laplacian",
    "tie_only_models",
    "unbounded_flags",
]

logger = logging.getLogger(__name__)

ELO_SCALE = 400.0 / np.log(10.0)
"""Elo points per natural log-odds unit: P(a beats b) = 1 / (1 + 10 ** ((r_b - r_a) / 400))."""

ELO_CENTER = 1000.0
"""The mean rating of the rated models."""

_FULL_STEP_MAX = 0.25
"""A Newton step whose largest entry is below this is taken whole without a line search.

It changes any pair's log-odds by at most 0.5, so the logistic curvature varies by less than a
factor exp(0.5) < 2 along the step, which guarantees the full step decreases the objective.
"""

_MAX_HALVINGS = 40
_HESSIAN_BUDGET = 250_000
"""Upper bound on the number of float64 entries of one ``(R, K, K)`` Hessian stack (2 MB: it stays
in a core's cache; at 100 models a 32 MB stack made the bootstrap 7% slower, measured)."""


@dataclass(frozen=True)
class NewtonResult:
    """Strengths from :func:`newton_pairs`.

    Attributes:
        theta: ``(R, K)`` strengths in natural units, each row summing to zero.
        converged: ``(R,)`` whether each round met the tolerance.
        iterations: Newton iterations used by the slowest round.
    """

    theta: NDArray[np.float64]
    converged: NDArray[np.bool_]
    iterations: int


def main_component(
    n_models: int,
    first: NDArray[np.intp],
    second: NDArray[np.intp],
    first_scored: NDArray[np.float64],
    second_scored: NDArray[np.float64],
    battles: NDArray[np.float64],
) -> NDArray[np.intp]:
    """The models whose maximum-likelihood strengths exist, as sorted indices.

    The Bradley-Terry MLE exists exactly for the models of a strongly connected component of the
    directed graph with an edge i -> j whenever i scored against j (a win or a tie; a tie gives
    edges both ways) (Ford 1957; Hunter 2004, assumption 1). This picks the largest such
    component; ties go to the one with more battles inside it, then to the lowest model index
    (model indices follow sorted names, so the choice is deterministic).

    Args:
        n_models: number of models ``K``.
        first: ``(P,)`` index of the first model of each observed pair.
        second: ``(P,)`` index of the second model.
        first_scored: ``(P,)`` wins plus ties of ``first`` against ``second``.
        second_scored: ``(P,)`` wins plus ties of ``second`` against ``first``.
        battles: ``(P,)`` battles in each pair.

    Returns:
        Indices of the models in the chosen component; fewer than two means no model has a rating.
    """
    forward = first_scored > 0
    backward = second_scored > 0
    rows = np.concatenate([first[forward], second[backward]])
    cols = np.concatenate([second[forward], first[backward]])
    graph = csr_matrix((np.ones(rows.size), (rows, cols)), shape=(n_models, n_models))
    _, labels = connected_components(graph, directed=True, connection="strong")
    sizes = np.bincount(labels, minlength=labels.max(initial=0) + 1)
    inside = labels[first] == labels[second]
    weight = np.bincount(labels[first][inside], weights=battles[inside], minlength=sizes.size)
    lowest = np.full(sizes.size, n_models)
    np.minimum.at(lowest, labels, np.arange(n_models))
    best = min(range(sizes.size), key=lambda c: (-sizes[c], -weight[c], lowest[c]))
    return np.flatnonzero(labels == best)


def laplacian(
    n_models: int, first: NDArray[np.intp], second: NDArray[np.intp], weights: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Weighted graph Laplacian: the observed information of Bradley-Terry on aggregated counts.

    Args:
        n_models: number of models ``K``.
        first: ``(P,)`` first model of each pair.
        second: ``(P,)`` second model of each pair.
        weights: ``(..., P)`` weight of each pair (``n p (1 - p)`` for the Fisher information).

    Returns:
        ``(..., K, K)`` matrices with ``-w`` off the diagonal and row sums zero.
    """
    lead = weights.shape[:-1]
    out = np.zeros((*lead, n_models * n_models))
    out[..., first * n_models + second] = -weights
    out[..., second * n_models + first] = -weights
    out[..., np.arange(n_models) * (n_models + 1)] = _per_model(
        weights, first, second, n_models, 1.0
    )
    return out.reshape(*lead, n_models, n_models)


def _per_model(
    values: NDArray[np.float64],
    first: NDArray[np.intp],
    second: NDArray[np.intp],
    n_models: int,
    sign: float,
) -> NDArray[np.float64]:
    """``(..., K)``: each model's sum of its pairs' ``values``, times ``sign`` where it is second.

    ``values @ E`` for the ``P x K`` incidence ``E`` (1 for the first model, ``sign`` for the
    second), computed sparsely: the dense product costs ``P x K`` per row for 2 ``P`` entries.
    """
    pairs = first.size
    incidence = csr_array(
        (
            np.concatenate([np.ones(pairs), np.full(pairs, sign)]),
            (np.concatenate([np.arange(pairs)] * 2), np.concatenate([first, second])),
        ),
        shape=(pairs, n_models),
    )
    flat = values.reshape(-1, pairs)
    out: NDArray[np.float64] = np.asarray(incidence.T @ flat.T).T.reshape(
        *values.shape[:-1], n_models
    )
    return out


def pseudo_inverse_laplacian(matrix: NDArray[np.float64]) -> NDArray[np.float64]:
    """Moore-Penrose inverse of a connected graph Laplacian (null space: the constant vector).

    For the sum-zero constrained MLE this is the covariance implied by the information matrix:
    ``L+ = (L + J/K)^-1 - J/K`` because ``L`` and ``J`` commute and ``L 1 = 0``.

    Args:
        matrix: ``(K, K)`` Laplacian of a connected graph.

    Returns:
        ``(K, K)`` pseudo-inverse.
    """
    size = int(matrix.shape[-1])
    shift = np.full((size, size), 1.0 / size, dtype=np.float64)
    inverse = np.asarray(np.linalg.inv(matrix + shift), dtype=np.float64)
    result: NDArray[np.float64] = inverse - shift
    return result


def covariances(
    first: NDArray[np.intp],
    second: NDArray[np.intp],
    first_wins: NDArray[np.float64],
    second_wins: NDArray[np.float64],
    ties: NDArray[np.float64],
    theta: NDArray[np.float64],
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Model-based and sandwich covariance of the centred strengths (natural units).

    The model-based one is the pseudo-inverse of the observed Fisher information ``L`` (a
    Laplacian with pair weights ``n p (1 - p)``); the sandwich is ``L+ M L+`` with ``M`` the sum of
    outer products of per-battle scores ``(y - p)(e_i - e_j)``, ``y`` being 1, 0 or 1/2 (White
    1980). With ties the two differ: counting a tie as half a win is a quasi-likelihood, and the
    sandwich is the consistent one.

    One exception keeps the sandwich from claiming a precision the data do not have. The squared
    residual of a tie, ``(1/2 - p)^2``, is fixed by the fit rather than observed; for a model
    none of whose battles was decisive it is all the meat sees, and it vanishes at ``p = 1/2``
    (a model that only tied one other model, or every model of an all-ties group, would get a
    zero variance). A sample of half wins says nothing about how much the outcomes vary, so the
    battles of such a model enter ``M`` with the binomial variance ``p (1 - p)`` instead: the
    largest variance an outcome in [0, 1] with mean ``p`` can have, the one the model-based
    covariance assumes. When every battle of the group is a tie the sandwich is then exactly the
    model-based covariance; when no model is in that case (any model with a win or a loss) it is
    unchanged. Such models are flagged provisional (``only_ties``) by ``ranking.py``.

    Args:
        first: ``(P,)`` first model of each pair.
        second: ``(P,)`` second model of each pair.
        first_wins: ``(P,)`` wins of ``first``.
        second_wins: ``(P,)`` wins of ``second``.
        ties: ``(P,)`` ties and both-bad votes.
        theta: ``(K,)`` fitted strengths.

    Returns:
        ``(model_based, sandwich)``, both ``(K, K)``.
    """
    size = theta.size
    total = first_wins + second_wins + ties
    prob = expit(theta[first] - theta[second])
    fisher = laplacian(size, first, second, total * prob * (1.0 - prob))
    meat_weights = first_wins * (1.0 - prob) ** 2 + second_wins * prob**2 + ties * (0.5 - prob) ** 2
    only_ties = tie_only_models(size, first, second, first_wins + second_wins)
    unseen = only_ties[first] | only_ties[second]
    meat_weights = np.where(unseen, total * prob * (1.0 - prob), meat_weights)
    meat = laplacian(size, first, second, meat_weights)
    bread = pseudo_inverse_laplacian(fisher)
    return bread, bread @ meat @ bread


def tie_only_models(
    n_models: int,
    first: NDArray[np.intp],
    second: NDArray[np.intp],
    decisive: NDArray[np.float64],
) -> NDArray[np.bool_]:
    """Which models have no decisive battle (never won or lost outright, only tied).

    Args:
        n_models: number of models ``K``.
        first: ``(P,)`` first model of each pair.
        second: ``(P,)`` second model of each pair.
        decisive: ``(P,)`` battles of each pair won by either side.

    Returns:
        ``(K,)`` flags.
    """
    outright = np.zeros(n_models)
    np.add.at(outright, first, decisive)
    np.add.at(outright, second, decisive)
    flags: NDArray[np.bool_] = outright == 0
    return flags


def newton_pairs(
    theta0: NDArray[np.float64],
    scored: NDArray[np.float64],
    battles: NDArray[np.float64],
    first: NDArray[np.intp],
    second: NDArray[np.intp],
    *,
    ridge: float = 0.0,
    tol: float = 1e-10,
    max_iter: int = 200,
) -> NewtonResult:
    """Maximise the Bradley-Terry log-likelihood for many rounds of aggregated counts at once.

    The objective per round is ``sum_p [s_p log sigma(d_p) + (n_p - s_p) log sigma(-d_p)]
    - ridge / 2 * |theta|^2`` with ``d_p = theta_first - theta_second`` (Bradley & Terry 1952;
    ties enter ``s_p`` as half a win, as in Chiang et al. 2024). Each iteration builds the
    ``(R, K, K)`` Hessians, solves them in one batched call, and takes the full Newton step when it
    is small (see ``_FULL_STEP_MAX``) or halves it until the objective decreases. Rounds leave the
    active set as soon as their step falls below ``tol``.

    Args:
        theta0: ``(R, K)`` starting strengths (the full-data MLE for a bootstrap).
        scored: ``(R, P)`` wins plus half the ties of ``first`` over ``second``.
        battles: ``(R, P)`` battles per pair.
        first: ``(P,)`` first model of each pair.
        second: ``(P,)`` second model of each pair.
        ridge: weight of the Gaussian penalty; zero gives the exact MLE (which then must exist).
        tol: stop a round once its largest step entry is below this (natural units).
        max_iter: cap on the iterations.

    Returns:
        The strengths (rows sum to zero), convergence flags and the iterations used.
    """
    theta = np.array(theta0, dtype=np.float64, copy=True)
    theta -= theta.mean(axis=1, keepdims=True)
    n_rounds, n_models = theta.shape
    converged = np.zeros(n_rounds, dtype=bool)
    chunk = max(1, _HESSIAN_BUDGET // (n_models * n_models))
    iterations = 0
    for start in range(0, n_rounds, chunk):
        stop = min(start + chunk, n_rounds)
        used = _newton_chunk(
            theta[start:stop],
            converged[start:stop],
            scored[start:stop],
            battles[start:stop],
            first,
            second,
            ridge=ridge,
            tol=tol,
            max_iter=max_iter,
        )
        iterations = max(iterations, used)
    if not converged.all():
        logger.warning(
            "Bradley-Terry Newton: %d of %d rounds did not converge",
            int((~converged).sum()),
            n_rounds,
        )
    return NewtonResult(theta=theta, converged=converged, iterations=iterations)


def _newton_chunk(
    theta: NDArray[np.float64],
    converged: NDArray[np.bool_],
    scored: NDArray[np.float64],
    battles: NDArray[np.float64],
    first: NDArray[np.intp],
    second: NDArray[np.intp],
    *,
    ridge: float,
    tol: float,
    max_iter: int,
) -> int:
    """Run the Newton iterations in place on one chunk of rounds; return the iterations used."""
    n_models = theta.shape[1]
    active = np.arange(theta.shape[0])
    everyone = theta.shape[0]
    for iteration in range(1, max_iter + 1):
        if active.size == everyone:  # views, not copies, while every round is active
            th, sc, nb = theta.copy(), scored, battles
        else:
            th, sc, nb = theta[active], scored[active], battles[active]
        diff = th[:, first] - th[:, second]
        prob = expit(diff)
        expected = nb * prob
        gradient = _per_model(sc - expected, first, second, n_models, -1.0) - ridge * th
        hessian = laplacian(n_models, first, second, expected * (1.0 - prob))
        hessian += 1.0 / n_models
        if ridge:
            hessian[:, np.arange(n_models), np.arange(n_models)] += ridge
        step = np.linalg.solve(hessian, gradient[..., None])[..., 0]
        size = np.abs(step).max(axis=1)
        large = size > _FULL_STEP_MAX
        if large.any():
            step[large] *= _line_search(
                th[large], step[large], sc[large], nb[large], first, second, ridge
            )[:, None]
        theta[active] = th + step
        done = np.abs(step).max(axis=1) < tol
        converged[active[done]] = True
        active = active[~done]
        if active.size == 0:
            return iteration
    return max_iter


def _objective(
    theta: NDArray[np.float64],
    scored: NDArray[np.float64],
    battles: NDArray[np.float64],
    first: NDArray[np.intp],
    second: NDArray[np.intp],
    ridge: float,
) -> NDArray[np.float64]:
    """Negative penalised log-likelihood per round, computed without overflow."""
    diff = theta[:, first] - theta[:, second]
    loss = scored * np.logaddexp(0.0, -diff) + (battles - scored) * np.logaddexp(0.0, diff)
    total: NDArray[np.float64] = loss.sum(axis=1) + 0.5 * ridge * np.square(theta).sum(axis=1)
    return total


def _line_search(
    theta: NDArray[np.float64],
    step: NDArray[np.float64],
    scored: NDArray[np.float64],
    battles: NDArray[np.float64],
    first: NDArray[np.intp],
    second: NDArray[np.intp],
    ridge: float,
) -> NDArray[np.float64]:
    """Step lengths (1, 1/2, 1/4, ...) that decrease the objective, per round."""
    base = _objective(theta, scored, battles, first, second, ridge)
    length = np.ones(theta.shape[0])
    todo = np.arange(theta.shape[0])
    for _ in range(_MAX_HALVINGS):
        trial = _objective(
            theta[todo] + length[todo, None] * step[todo],
            scored[todo],
            battles[todo],
            first,
            second,
            ridge,
        )
        worse = trial > base[todo] + 1e-12 * np.abs(base[todo])
        if not worse.any():
            break
        todo = todo[worse]
        length[todo] *= 0.5
    return length


def unbounded_flags(
    first_scored: NDArray[np.float64],
    second_scored: NDArray[np.float64],
    first: NDArray[np.intp],
    second: NDArray[np.intp],
    n_models: int,
    reference: int,
) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    """Which models' MLE is unbounded above or below in each round (resample).

    In a round whose "scored against" graph is not strongly connected the MLE does not exist.
    Taking the model with the most battles as the reference, a model that the reference reaches
    (transitively beat) but that cannot reach it back is unbounded below (its rating tends to
    minus infinity relative to the reference); one that reaches the reference but is not reached is
    unbounded above; one that is neither is detached (both flags set).

    Args:
        first_scored: ``(R, P)`` wins plus ties of ``first`` over ``second``.
        second_scored: ``(R, P)`` wins plus ties of ``second`` over ``first``.
        first: ``(P,)`` first model of each pair.
        second: ``(P,)`` second model of each pair.
        n_models: number of models ``K``.
        reference: index of the reference model.

    Returns:
        ``(above, below)``, two ``(R, K)`` boolean arrays.
    """
    n_rounds = first_scored.shape[0]
    above = np.zeros((n_rounds, n_models), dtype=bool)
    below = np.zeros((n_rounds, n_models), dtype=bool)
    chunk = max(1, _HESSIAN_BUDGET // (n_models * n_models))
    for start in range(0, n_rounds, chunk):
        stop = min(start + chunk, n_rounds)
        beats = np.zeros((stop - start, n_models, n_models), dtype=np.float32)
        beats[:, first, second] = first_scored[start:stop] > 0
        beats[:, second, first] = second_scored[start:stop] > 0
        reached = _reach(beats, reference)
        reaching = _reach(beats.transpose(0, 2, 1), reference)
        above[start:stop] = ~reached
        below[start:stop] = ~reaching
    return above, below


def _reach(adjacency: NDArray[np.float32], source: int) -> NDArray[np.bool_]:
    """Nodes reachable from ``source`` in each graph of an ``(R, K, K)`` stack."""
    n_rounds, n_models, _ = adjacency.shape
    seen = np.zeros((n_rounds, 1, n_models), dtype=np.float32)
    seen[:, 0, source] = 1.0
    for _ in range(n_models):
        grown = np.minimum(seen + np.matmul(seen, adjacency), 1.0)
        if np.array_equal(grown, seen):
            break
        seen = grown
    return seen[:, 0, :] > 0
