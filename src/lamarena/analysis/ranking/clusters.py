"""Which votes belong together: the clusters a bootstrap resamples whole.

A participant's votes are not independent (one person's taste runs through all of them, and the
study had each participant vote ten times on one pair), so resampling single battles understates
the uncertainty; the information lies in the participants. ``by``:

- ``participant``: battles of one ``participant_id`` form a cluster; a battle without one falls
  back to its session, and one with neither is a cluster of its own;
- ``session``: battles of one ``session_id`` (a battle without one is its own cluster);
- ``none``: every battle is its own cluster (the plain battle bootstrap);
- ``auto`` (the default): ``participant`` when any battle has a participant id, else ``session``
  when any has a session id, else ``none``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy import sparse

from lamarena.analysis.battles import PairCounts, pair_outcomes
from lamarena.analysis.encoded import EncodedBattles
from lamarena.errors import InvalidInputError

__all__ = [
    "CLUSTER_CHOICES",
    "ClusterBy",
    "Clusters",
    "battle_clusters",
    "cluster_cells",
    "cluster_robust_covariance",
    "encoded_cells",
    "encoded_cluster_cells",
    "encoded_clusters",
    "robust_covariance_from_cells",
]

ClusterBy = Literal["auto", "participant", "session", "none"]
CLUSTER_CHOICES: tuple[str, ...] = ("auto", "participant", "session", "none")


@dataclass(frozen=True, eq=False)
class Clusters:
    """The cluster of each battle.

    Attributes:
        by: ``participant``, ``session`` or ``none`` (what ``auto`` chose).
        labels: ``(n,)`` cluster index of each battle, ``0 .. n_clusters - 1``.
        n_clusters: how many clusters.
    """

    by: str
    labels: NDArray[np.intp]
    n_clusters: int


def _ids(battles: pd.DataFrame, column: str) -> pd.Series:
    if column not in battles.columns:
        return pd.Series([None] * len(battles), index=battles.index, dtype=object)
    values = battles[column].astype(object)
    return values.where(values.notna() & (values.astype(str).str.len() > 0), None)


def battle_clusters(battles: pd.DataFrame, by: str = "auto") -> Clusters:
    """The clusters of ``battles`` (rows in order; see the module docstring for ``by``).

    Raises:
        InvalidInputError: an unknown ``by``.
    """
    if by not in CLUSTER_CHOICES:
        raise InvalidInputError(f"cluster must be one of {', '.join(CLUSTER_CHOICES)}, not {by!r}")
    participants = _ids(battles, "participant_id")
    sessions = _ids(battles, "session_id")
    if by == "auto":
        by = (
            "participant"
            if participants.notna().any()
            else ("session" if sessions.notna().any() else "none")
        )
    own = pd.Series([f"b:{i}" for i in range(len(battles))], index=battles.index, dtype=object)
    if by == "none":
        keys = own
    else:
        keys = ("s:" + sessions.astype(str)).where(sessions.notna(), own)
        if by == "participant":
            keys = ("p:" + participants.astype(str)).where(participants.notna(), keys)
    codes, uniques = pd.factorize(keys, sort=False)
    return Clusters(by=by, labels=codes.astype(np.intp), n_clusters=len(uniques))


def cluster_cells(
    battles: pd.DataFrame, rated: PairCounts, clusters: Clusters
) -> NDArray[np.float64]:
    """``(C, 3P)`` each cluster's counts of the rated pairs' cells.

    Cells in the order :func:`lamarena.analysis.ranking.bootstrap.resample_pairs` uses: first wins
    of
    every pair, then second wins, then ties (ties and both-bad); battles with a model that is not
    rated add nothing. Summed over the clusters it gives ``rated``'s own counts.
    """
    size = len(rated.models)
    pairs = rated.first.size
    position = {name: i for i, name in enumerate(rated.models)}
    a = battles["model_a"].map(position).to_numpy(dtype=np.float64)
    b = battles["model_b"].map(position).to_numpy(dtype=np.float64)
    inside = ~(np.isnan(a) | np.isnan(b))
    a_i = a[inside].astype(np.intp)
    b_i = b[inside].astype(np.intp)
    first = np.minimum(a_i, b_i)
    second = np.maximum(a_i, b_i)
    keys = rated.first * size + rated.second
    order = np.argsort(keys)
    found = np.searchsorted(keys[order], first * size + second)
    pair = order[np.clip(found, 0, max(pairs - 1, 0))]
    first_won, second_won = pair_outcomes(
        a_i, b_i, battles["winner"].to_numpy(dtype=object)[inside]
    )
    outcome = np.where(first_won, 0, np.where(second_won, 1, 2))
    cell = outcome * pairs + pair
    label = clusters.labels[inside]
    flat = np.bincount(
        label * (3 * pairs) + cell, minlength=clusters.n_clusters * 3 * pairs
    ).astype(np.float64)
    return flat.reshape(clusters.n_clusters, 3 * pairs)


def cluster_robust_covariance(
    ratings: pd.Series,
    bread: pd.DataFrame,
    battles: pd.DataFrame,
    rated: PairCounts,
    clusters: Clusters,
) -> pd.DataFrame:
    """The cluster-robust sandwich covariance of centred Bradley-Terry ratings (Elo^2).

    ``B M B`` with ``B`` the model-based covariance (``bread``, Elo^2, centred: its null space
    is the constants, and so is the meat's) and ``M = C / (C - 1) * sum_c g_c g_c^T``, ``g_c``
    the score of cluster ``c``: the sum over its battles of ``(y - p)(e_first - e_second)`` (y 1,
    0 or 1/2) in natural units (Liang & Zeger 1986; the CR1 small-sample factor). With one
    battle per cluster and no factor it is the HC0 sandwich. Written here because the fit is on
    aggregated counts: ``statsmodels`` would need one row per battle (the tests compare with its
    ``cov_type="cluster"`` on such rows).

    Args:
        ratings: the fitted ratings (Elo), indexed by the rated models.
        bread: model-based covariance of the ratings (Elo^2), indexed like ``ratings``.
        battles: the battles (validated), in the order of ``clusters.labels``.
        rated: the counts of the rated pairs.
        clusters: the cluster of each battle.

    Returns:
        The covariance (Elo^2), indexed like ``bread``.
    """
    cells = cluster_cells(battles, rated, clusters)
    return robust_covariance_from_cells(ratings, bread, cells, rated)


def robust_covariance_from_cells(
    ratings: pd.Series,
    bread: pd.DataFrame,
    cells: NDArray[np.float64] | sparse.csr_array,
    rated: PairCounts,
) -> pd.DataFrame:
    """:func:`cluster_robust_covariance` from each cluster's cells (dense or sparse ``C x 3P``)."""
    models = list(rated.models)
    size = len(models)
    pairs = rated.first.size
    n_clusters = cells.shape[0]
    scale = 400.0 / np.log(10.0)
    elo = bread.loc[models, models].to_numpy()
    theta = ratings.reindex(models).to_numpy(dtype=np.float64) / scale
    by_cell = sparse.csc_array(cells)
    first_wins = by_cell[:, :pairs]
    second_wins = by_cell[:, pairs : 2 * pairs]
    ties = by_cell[:, 2 * pairs :]
    prob = 1.0 / (1.0 + np.exp(-(theta[rated.first] - theta[rated.second])))
    games = first_wins + second_wins + ties
    residual = first_wins + 0.5 * ties - games.multiply(prob[None, :])
    incidence = sparse.csr_array(
        (
            np.concatenate([np.ones(pairs), -np.ones(pairs)]),
            (np.concatenate([np.arange(pairs)] * 2), np.concatenate([rated.first, rated.second])),
        ),
        shape=(pairs, size),
    )
    scores = np.asarray((sparse.csr_array(residual) @ incidence).todense())
    factor = n_clusters / max(n_clusters - 1, 1)
    meat = factor * scores.T @ scores
    natural = elo / scale**2
    covariance = pd.DataFrame(scale**2 * natural @ meat @ natural, index=models, columns=models)
    return covariance.loc[list(bread.index), list(bread.columns)]


def encoded_clusters(battles: EncodedBattles, by: str = "auto") -> Clusters:
    """The clusters of encoded battles, as :func:`battle_clusters` finds them for a DataFrame.

    The same partition and the same numbering (order of first appearance), so a seeded
    bootstrap gives the same rounds either way. Rows of aggregated counts carry the clusters
    they were kept by (``auto``'s); those cannot be regrouped.

    Raises:
        InvalidInputError: an unknown ``by``, or aggregated counts asked for other clusters.
    """
    if by not in CLUSTER_CHOICES:
        raise InvalidInputError(f"cluster must be one of {', '.join(CLUSTER_CHOICES)}, not {by!r}")
    if battles.participant is None or battles.session is None:
        kept = battles.cluster_by
        if by not in ("auto", kept, "none"):
            raise InvalidInputError(
                f"these votes were counted by {kept} (the store's counts); cluster by auto, "
                f"{kept} or none, or rank the votes themselves"
            )
        if by == "none" or kept == "none" or battles.cluster is None:
            rows = np.arange(battles.a.size, dtype=np.intp)
            return Clusters(by="none", labels=rows, n_clusters=battles.n_battles)
        labels = battles.cluster
        return Clusters(by=kept, labels=labels, n_clusters=int(labels.max(initial=-1)) + 1)
    participant, session = battles.participant, battles.session
    if by == "auto":
        by = (
            "participant"
            if (participant >= 0).any()
            else ("session" if (session >= 0).any() else "none")
        )
    n = participant.size
    if by == "none":
        return Clusters(by="none", labels=np.arange(n, dtype=np.intp), n_clusters=n)
    offset_s = int(participant.max(initial=-1)) + 1
    offset_b = offset_s + int(session.max(initial=-1)) + 1
    keys = np.where(session >= 0, offset_s + session, offset_b + np.arange(n))
    if by == "participant":
        keys = np.where(participant >= 0, participant, keys)
    codes, uniques = pd.factorize(keys, sort=False)
    return Clusters(by=by, labels=codes.astype(np.intp), n_clusters=len(uniques))


def encoded_cluster_cells(
    battles: EncodedBattles, rated: PairCounts, clusters: Clusters
) -> sparse.csr_array:
    """``(C, 3P)`` each cluster's counts of the rated pairs' cells, as a sparse array.

    The cells of :func:`cluster_cells` (its dense array is ``C x 3P``: at 100,000 sessions and
    100 models that is 12 GB; this one holds only the cells a cluster voted in).
    """
    cell = encoded_cells(battles, rated)
    pairs = rated.first.size
    inside = cell < 3 * pairs
    out = sparse.coo_array(
        (
            battles.count[inside].astype(np.float64),
            (clusters.labels[inside], cell[inside]),
        ),
        shape=(clusters.n_clusters, 3 * pairs),
    ).tocsr()
    out.sum_duplicates()
    return out


def encoded_cells(battles: EncodedBattles, rated: PairCounts) -> NDArray[np.intp]:
    """Each row's cell among the rated pairs' (``outcome * P + pair``; ``3 P`` when not rated).

    As :func:`lamarena.analysis.ranking.pair_design.battle_cells` for a DataFrame.
    """
    size = len(rated.models)
    pairs = rated.first.size
    position = np.full(len(battles.models), -1, dtype=np.intp)
    index = {name: i for i, name in enumerate(rated.models)}
    for i, name in enumerate(battles.models):
        position[i] = index.get(name, -1)
    a = position[battles.a]
    b = position[battles.b]
    inside = (a >= 0) & (b >= 0)
    lookup = np.full(size * size, 3 * pairs, dtype=np.intp)
    lookup[rated.first * size + rated.second] = np.arange(pairs)
    first_won, second_won = battles.first_second()
    cells = np.full(battles.a.size, 3 * pairs, dtype=np.intp)
    pair = lookup[np.minimum(a[inside], b[inside]) * size + np.maximum(a[inside], b[inside])]
    outcome = np.where(first_won[inside], 0, np.where(second_won[inside], 1, 2))
    cells[inside] = outcome * pairs + pair
    return cells
