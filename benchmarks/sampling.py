"""Active pair sampling against uniform: votes until the top models' intervals are narrow enough.

For a simulated arena (12 models evenly spread over 400 Elo, 10% ties, the strengths shuffled per
seed), both designs draw votes in the same run from the same strengths; every ``--step`` votes
the ratings are fitted and the 95% interval (sandwich, as the leaderboard's analytic intervals)
of each of the ``--top`` truly best models is measured. A design's figure is the votes it needed
until all of them were at most ``--target`` Elo wide. Active sampling is measured twice: with
the plain fit (valid when Bradley-Terry holds: the design is ignorable for the likelihood) and
with inverse-probability weights (valid whatever the truth; wider). The second part measures the
bias that the weights remove, under a truth that is not Bradley-Terry (the top model weaker
against its peers than against the rest), against the ratings a uniform design targets.
Prints one JSON document on stdout.

    python benchmarks/sampling.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit

from lamarena.analysis.ranking.bradley_terry import fit_bradley_terry_result
from lamarena.analysis.ranking.bt_solver import ELO_SCALE
from lamarena.analysis.ranking.pair_design import fit_weighted_bradley_terry, ipw_weights
from lamarena.errors import InsufficientData
from lamarena.simulation import parse_strengths, simulate_battles
from lamarena.simulation.adaptive import simulate_pair_design, uniform_design_ratings


def _width(battles: pd.DataFrame, top: list[str], *, weighted: bool) -> float:
    """The widest 95% interval (Elo) among ``top``; inf when some has no rating yet."""
    try:
        if weighted:
            fit = fit_weighted_bradley_terry(battles, ipw_weights(battles["sampling_probability"]))
            intervals = fit.intervals()
        else:
            intervals = fit_bradley_terry_result(battles, min_battles=0).intervals()
    except InsufficientData:
        return float("inf")
    if not set(top) <= set(intervals.index):
        return float("inf")
    widths = intervals.loc[top, "ci_high"] - intervals.loc[top, "ci_low"]
    return float(widths.max())


def votes_needed(
    battles: pd.DataFrame, top: list[str], target: float, step: int, *, weighted: bool = False
) -> int | None:
    """The first multiple of ``step`` votes at which every top interval is at most ``target``."""
    for votes in range(step, len(battles) + 1, step):
        if _width(battles.iloc[:votes], top, weighted=weighted) <= target:
            return votes
    return None


def efficiency(args: argparse.Namespace) -> dict[str, Any]:
    runs = []
    for seed in range(args.seeds):
        strengths = parse_strengths(str(args.models), seed=seed)
        top = sorted(strengths, key=lambda name: -strengths[name])[: args.top]
        row: dict[str, Any] = {"seed": seed}
        for sampling in ("uniform", "active"):
            battles = simulate_battles(
                strengths, args.max_votes, seed=1000 + seed, tie_rate=0.1, sampling=sampling
            )
            row[sampling] = votes_needed(battles, top, args.target, args.step)
            if sampling == "active":
                row["active_ipw"] = votes_needed(
                    battles, top, args.target, args.step, weighted=True
                )
        runs.append(row)
    done = [r for r in runs if r["uniform"] and r["active"]]
    ratio = [r["active"] / r["uniform"] for r in done]
    ipw = [r["active_ipw"] / r["uniform"] for r in done if r["active_ipw"]]
    return {
        "models": args.models,
        "top": args.top,
        "target_width_elo": args.target,
        "runs": runs,
        "mean_ratio_active_over_uniform": float(np.mean(ratio)) if ratio else None,
        "ratio_per_seed": [round(value, 3) for value in ratio],
        "mean_ratio_active_ipw_over_uniform": float(np.mean(ipw)) if ipw else None,
        "target_ratio": 0.75,
    }


def _intransitive_table() -> pd.DataFrame:
    names = [f"m{i}" for i in range(6)]
    elo = np.array([1150.0, 1100.0, 1050.0, 1000.0, 950.0, 900.0])
    bump = np.zeros((6, 6))
    bump[0, [1, 2]] = -0.6
    bump[0, [4, 5]] = 0.8
    logit = (elo[:, None] - elo[None, :]) / ELO_SCALE + bump - bump.T
    return pd.DataFrame(expit(logit), index=names, columns=names)


def bias(args: argparse.Namespace) -> dict[str, Any]:
    table = _intransitive_table()
    target = uniform_design_ratings(table)
    errors: dict[str, list[pd.Series]] = {"unweighted": [], "ipw": []}
    for seed in range(args.bias_seeds):
        battles = simulate_pair_design(table, args.bias_votes, sampling="active", seed=seed)
        ones = np.ones(len(battles))
        weights = ipw_weights(battles["sampling_probability"])
        for name, w in (("unweighted", ones), ("ipw", weights)):
            ratings = fit_weighted_bradley_terry(battles, w).ratings
            errors[name].append(ratings[target.index] - target)
    out: dict[str, Any] = {
        "votes_per_run": args.bias_votes,
        "runs": args.bias_seeds,
        "uniform_design_target": target.round(1).to_dict(),
    }
    for name, rows in errors.items():
        frame = pd.DataFrame(rows)
        mean = frame.mean()
        se = frame.std(ddof=1) / np.sqrt(len(frame))
        worst = str((mean / se).abs().idxmax())
        out[name] = {
            "bias_elo": mean.round(2).to_dict(),
            "se_of_bias_elo": se.round(2).to_dict(),
            "max_abs_z": round(float((mean / se).abs().max()), 2),
            "max_abs_z_model": worst,
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer seeds (a smoke run)")
    parser.add_argument("--models", type=int, default=12)
    parser.add_argument("--top", type=int, default=3)
    parser.add_argument("--target", type=float, default=60.0, help="interval width, Elo")
    parser.add_argument("--step", type=int, default=250)
    parser.add_argument("--max-votes", type=int, default=30_000)
    parser.add_argument("--seeds", type=int, default=6)
    parser.add_argument("--bias-votes", type=int, default=15_000)
    parser.add_argument("--bias-seeds", type=int, default=20)
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.bias_seeds, args.max_votes = 2, 4, 15_000
    started = time.perf_counter()
    document = {
        "benchmark": "sampling",
        "python": platform.python_version(),
        "efficiency": efficiency(args),
        "ipw_bias": bias(args),
    }
    document["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(document, indent=2))


if __name__ == "__main__":
    main()
