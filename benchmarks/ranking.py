"""Bootstrap of Bradley-Terry ratings: lamarena's batched method against the per-round baseline.

The baseline is what Talk Arena and FastChat do: resample the battles with replacement, then fit
each round on its own with ``scipy.optimize.minimize(method="L-BFGS-B")`` on the per-battle
Bradley-Terry log-likelihood (ties as half a win each way). It runs fewer rounds and is
extrapolated per round; both are timed in the same run on the same data. Prints one JSON
document on stdout.

    python benchmarks/ranking.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from typing import Any

import numpy as np
import pandas as pd
import scipy
from scipy.optimize import minimize
from scipy.special import expit

from lamarena.analysis.ranking.bradley_terry import (
    bootstrap_bradley_terry_result,
    fit_bradley_terry_result,
)
from lamarena.analysis.ranking.bt_solver import ELO_CENTER, ELO_SCALE
from lamarena.simulation import parse_strengths, simulate_battles


def baseline_bootstrap(battles: pd.DataFrame, rounds: int, seed: int) -> pd.DataFrame:
    """One L-BFGS-B fit per round on per-battle resampled data (the FastChat / Talk Arena way)."""
    names = sorted(set(battles["model_a"]) | set(battles["model_b"]))
    index = {name: i for i, name in enumerate(names)}
    a_all = battles["model_a"].map(index).to_numpy()
    b_all = battles["model_b"].map(index).to_numpy()
    winner = battles["winner"].to_numpy()
    y_all = np.where(winner == "model_a", 1.0, np.where(winner == "model_b", 0.0, 0.5))
    size = len(names)
    rng = np.random.default_rng(seed)
    out = np.empty((rounds, size))
    for r in range(rounds):
        pick = rng.integers(0, len(battles), len(battles))
        a, b, y = a_all[pick], b_all[pick], y_all[pick]

        def loss(
            theta: np.ndarray, a: np.ndarray = a, b: np.ndarray = b, y: np.ndarray = y
        ) -> tuple[float, np.ndarray]:
            eta = theta[a] - theta[b]
            value = np.sum(y * np.logaddexp(0.0, -eta) + (1.0 - y) * np.logaddexp(0.0, eta))
            slope = expit(eta) - y
            grad = np.bincount(a, slope, minlength=size) - np.bincount(b, slope, minlength=size)
            return float(value), grad

        theta = minimize(loss, np.zeros(size), jac=True, method="L-BFGS-B").x
        out[r] = ELO_CENTER + ELO_SCALE * (theta - theta.mean())
    return pd.DataFrame(out, columns=names)


def run_case(
    n_models: int, n_battles: int, rounds: int, baseline_rounds: int, repeats: int
) -> dict[str, Any]:
    strengths = parse_strengths(str(n_models), seed=0)
    battles = simulate_battles(strengths, n_battles, seed=0)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        ours = bootstrap_bradley_terry_result(battles, rounds=rounds, seed=0)
        times.append(time.perf_counter() - start)
    ours_s = float(np.median(times))
    start = time.perf_counter()
    base = baseline_bootstrap(battles, baseline_rounds, seed=0)
    base_s = time.perf_counter() - start
    ours_per_round = ours_s / rounds
    base_per_round = base_s / baseline_rounds
    ours_median = ours.samples.median()
    base_median = base.median()[ours_median.index]
    fit = fit_bradley_terry_result(battles)
    return {
        "models": n_models,
        "battles": n_battles,
        "ours": {
            "rounds": rounds,
            "seconds": round(ours_s, 4),
            "seconds_each_repeat": [round(t, 4) for t in times],
            "ms_per_round": round(1e3 * ours_per_round, 5),
            "unconverged_rounds": ours.unconverged,
        },
        "baseline": {
            "method": "scipy.optimize.minimize L-BFGS-B per round, per-battle resampling",
            "rounds": baseline_rounds,
            "seconds": round(base_s, 4),
            "ms_per_round": round(1e3 * base_per_round, 4),
            "extrapolated_seconds_for_ours_rounds": round(base_per_round * rounds, 2),
        },
        "speedup_per_round": round(base_per_round / ours_per_round, 1),
        "median_rating_max_abs_diff_elo": round(float((ours_median - base_median).abs().max()), 3),
        # Monte Carlo standard error of the baseline's medians (its few rounds dominate the gap)
        "baseline_median_mc_se_max_elo": round(
            float((1.2533 * base.std() / np.sqrt(baseline_rounds)).max()), 3
        ),
        "mle_vs_our_median_max_abs_diff_elo": round(
            float((fit.ratings - ours_median[fit.ratings.index]).abs().max()), 3
        ),
        "median_ratings": {
            "ours": {k: round(float(v), 2) for k, v in ours_median.items()},
            "baseline": {k: round(float(v), 2) for k, v in base_median.items()},
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds (a smoke run)")
    args = parser.parse_args()
    scale = 10 if args.quick else 1
    small = run_case(8, 7_500, 10_000 // scale, 300 // scale, repeats=3)
    large = run_case(50, 100_000, 10_000 // scale, 20 // min(scale, 4), repeats=1)
    document = {
        "benchmark": "bootstrap_bradley_terry",
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "scipy": scipy.__version__,
        },
        "targets": {
            "speedup_at_least_30x": small["speedup_per_round"] >= 30,
            "ours_10k_rounds_under_0_3_s": small["ours"]["seconds"] < 0.3,
            "medians_within_3_elo": small["median_rating_max_abs_diff_elo"] < 3.0,
        },
        "mode": "quick" if args.quick else "full",
        "cases": {"8_models_7500_battles": small, "50_models_100000_battles": large},
    }
    print(json.dumps(document, indent=2))


if __name__ == "__main__":
    main()
