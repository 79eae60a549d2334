"""Clustered uncertainty (issue 12, point 2): a participant's votes are resampled together.

Checked three ways: the clusters and their cells against a direct count; the cluster-robust
sandwich against statsmodels' ``cov_type="cluster"`` on one row per battle; and a simulation
whose truth is set (each participant votes ten times on one pair with a preference of their own,
as the study ran it), where the clustered standard errors match the spread of the estimates
across simulated studies and the battle bootstrap's fall short of it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from analysis.builders import frame
from lamarena.analysis.battles import count_pairs, rated_pairs, validate_battles
from lamarena.analysis.ranking.bradley_terry import fit_bradley_terry_result
from lamarena.analysis.ranking.clusters import (
    battle_clusters,
    cluster_cells,
    cluster_robust_covariance,
)
from lamarena.analysis.ranking.leaderboard import build_leaderboard
from lamarena.errors import InvalidInputError

ELO = 400.0 / np.log(10.0)
STRENGTHS = {"m0": 1100.0, "m1": 1050.0, "m2": 1000.0, "m3": 950.0}


def _study(rng: np.random.Generator, people: int = 120, spread: float = 1.0) -> pd.DataFrame:
    """Each person gets one pair (balanced), votes 10 times, with a N(0, spread) preference."""
    names = list(STRENGTHS)
    pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1 :]]
    rows = []
    for person in range(people):
        a, b = pairs[person % len(pairs)]
        taste = rng.normal(0.0, spread)
        p_a = 1.0 / (1.0 + np.exp(-((STRENGTHS[a] - STRENGTHS[b]) / ELO + taste)))
        for vote in range(10):
            left = vote % 2 == 0  # sides alternate, as the arena shows them at random
            won = rng.random() < p_a
            winner = "model_a" if won == left else "model_b"
            rows.append((a, b, winner, f"p{person}") if left else (b, a, winner, f"p{person}"))
    battles = pd.DataFrame(rows, columns=["model_a", "model_b", "winner", "participant_id"])
    battles["session_id"] = "s-" + battles["participant_id"]
    return battles


def test_clusters_follow_participants_then_sessions_then_battles() -> None:
    battles = frame([("a", "b", "model_a")] * 5)
    battles["participant_id"] = ["p1", "p1", None, None, None]
    battles["session_id"] = ["s1", "s2", "s2", "s3", None]

    auto = battle_clusters(battles)
    by_session = battle_clusters(battles, "session")
    none = battle_clusters(battles, "none")

    assert auto.by == "participant" and auto.n_clusters == 4
    assert auto.labels[0] == auto.labels[1]  # one participant over two sessions
    assert auto.labels[2] != auto.labels[0]  # no participant: its session
    assert by_session.n_clusters == 4 and by_session.labels[1] == by_session.labels[2]
    assert none.by == "none" and none.n_clusters == 5
    assert battle_clusters(frame([("a", "b", "tie")])).by == "none"  # no ids at all
    with pytest.raises(InvalidInputError, match="cluster must be one of"):
        battle_clusters(battles, "household")


def test_cluster_cells_add_up_to_the_pair_counts() -> None:
    battles = validate_battles(_study(np.random.default_rng(0), people=30))
    battles.loc[battles.index[:7], "winner"] = "tie"
    rated = rated_pairs(count_pairs(battles))
    clusters = battle_clusters(battles)

    cells = cluster_cells(battles, rated, clusters)

    assert cells.shape == (30, 3 * rated.first.size)
    total = cells.sum(axis=0)
    pairs = rated.first.size
    np.testing.assert_array_equal(total[:pairs], rated.first_wins)
    np.testing.assert_array_equal(total[pairs : 2 * pairs], rated.second_wins)
    np.testing.assert_array_equal(total[2 * pairs :], rated.ties)


def test_the_cluster_sandwich_equals_statsmodels_cluster_covariance() -> None:
    battles = validate_battles(_study(np.random.default_rng(1), people=90))
    fit = fit_bradley_terry_result(battles)
    rated = rated_pairs(count_pairs(battles))
    clusters = battle_clusters(battles, "participant")

    ours = cluster_robust_covariance(fit.ratings, fit.covariance, battles, rated, clusters)

    # Independent: logistic regression on one row per battle (m0 the reference, no constant)
    names = list(STRENGTHS)
    design = np.zeros((len(battles), len(names)))
    design[np.arange(len(battles)), battles["model_a"].map(names.index)] += 1.0
    design[np.arange(len(battles)), battles["model_b"].map(names.index)] -= 1.0
    won = (battles["winner"] == "model_a").to_numpy(dtype=float)
    result = sm.Logit(won, design[:, 1:]).fit(
        disp=0,
        cov_type="cluster",
        cov_kwds={"groups": clusters.labels, "use_correction": False},
    )
    theirs = np.zeros((len(names), len(names)))
    theirs[1:, 1:] = np.asarray(result.cov_params())
    factor = clusters.n_clusters / (clusters.n_clusters - 1)  # ours has CR1's factor
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            a, b = names[i], names[j]
            var_ours = ours.loc[a, a] + ours.loc[b, b] - 2 * ours.loc[a, b]
            var_theirs = theirs[i, i] + theirs[j, j] - 2 * theirs[i, j]
            assert var_ours / ELO**2 == pytest.approx(factor * var_theirs, rel=1e-3)


def _se(document: dict, a: str, b: str) -> float:
    pair = next(p for p in document["pairwise"] if {p["model_a"], p["model_b"]} == {a, b})
    return float(pair["se"])


def test_clustered_errors_match_the_spread_across_studies_and_the_battle_bootstrap_does_not() -> (
    None
):
    rng = np.random.default_rng(11)
    estimates, se = [], {"boot_cluster": [], "boot_battle": [], "sandwich_cluster": []}
    for _ in range(80):
        battles = _study(rng)
        fit = fit_bradley_terry_result(battles)
        estimates.append(fit.ratings["m0"] - fit.ratings["m3"])
        for key, cluster, ci in [
            ("boot_cluster", "participant", "bootstrap"),
            ("boot_battle", "none", "bootstrap"),
            ("sandwich_cluster", "participant", "analytic"),
        ]:
            document = build_leaderboard(
                battles, n_resamples=200, seed=0, cluster=cluster, ci=ci
            ).to_dict()
            assert document["cluster"]["by"] == cluster
            se[key].append(_se(document, "m0", "m3"))
    spread = float(np.std(estimates, ddof=1))
    ratio = {key: float(np.mean(values)) / spread for key, values in se.items()}

    assert 0.8 <= ratio["boot_cluster"] <= 1.25, ratio
    assert 0.8 <= ratio["sandwich_cluster"] <= 1.25, ratio
    assert ratio["boot_battle"] < 0.8, ratio  # ten votes per person are not ten people
