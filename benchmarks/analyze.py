"""The whole ``lamarena analyze`` on a simulated study: wall time and peak memory.

A study of 7,500 battles among 8 models (``simulate --study``: query transcripts by topic and
vote reasons) and a static table of 20 benchmarks (scores that follow the models' strengths with
noise, one of them a WER) go through ``lamarena analyze`` exactly as a user runs it, in a fresh
process: import, embedding model load, every analysis at its default settings (10,000 bootstrap
rounds, 1,000 for the tau intervals) and the report. The same-run baseline is
``lamarena leaderboard --json`` on the same votes (the ratings alone). Prints one JSON document.

    python benchmarks/analyze.py [--battles 7500] [--models 8] [--benchmarks 20]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lamarena.simulation import parse_strengths

TARGET_S = 60.0


def static_table(models: int, benchmarks: int, seed: int) -> pd.DataFrame:
    """Scores that rise with each model's strength, each benchmark with its own noise and scale."""
    strengths = parse_strengths(str(models), seed=seed)
    rng = np.random.default_rng(seed + 1)
    z = (np.array(list(strengths.values())) - 1000.0) / 200.0
    columns: dict[str, Any] = {"model": list(strengths)}
    for j in range(benchmarks):
        noise = rng.uniform(0.2, 1.5)
        signal = z * rng.uniform(0.0, 1.0) + rng.normal(scale=noise, size=models)
        if j == benchmarks - 1:
            columns["asr_wer"] = np.round(0.3 - 0.08 * signal, 3).clip(0.01)
        else:
            columns[f"bench_{j + 1:02d}"] = np.round(50 + 12 * signal, 1)
    return pd.DataFrame(columns)


def run(*args: str | Path, cwd: Path) -> tuple[float, subprocess.CompletedProcess[str]]:
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "lamarena", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"lamarena {args[0]} failed: {result.stderr.strip()}")
    return elapsed, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--battles", type=int, default=7500)
    parser.add_argument("--models", type=int, default=8)
    parser.add_argument("--benchmarks", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    options = parser.parse_args()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="lamarena-bench-analyze-") as folder:
        work = Path(folder)
        votes = work / "votes.jsonl"
        static = work / "static.csv"
        simulate_s, _ = run(
            "simulate", "--models", str(options.models), "--votes", str(options.battles),
            "--seed", str(options.seed), "--study", "--out", votes, cwd=work,
        )  # fmt: skip
        static_table(options.models, options.benchmarks, options.seed).to_csv(static, index=False)
        baseline_s, _ = run("leaderboard", "--votes", votes, "--from", "jsonl", "--json", cwd=work)
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        analyze_s, result = run(
            "analyze", "--votes", votes, "--from", "jsonl", "--static", static,
            "--out", work / "report", "--seed", str(options.seed), cwd=work,
        )  # fmt: skip
        peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        numbers = json.loads((work / "report" / "numbers.json").read_text())
        html_mib = (work / "report" / "index.html").stat().st_size / 2**20
    document = {
        "benchmark": "lamarena analyze (whole command, fresh process)",
        "battles": options.battles,
        "models": options.models,
        "benchmarks": options.benchmarks,
        "wall_s": round(analyze_s, 2),
        "target_s": TARGET_S,
        "under_target": analyze_s < TARGET_S,
        "peak_rss_mib": round(peak_kib / 1024, 1),
        "peak_rss_note": (
            "largest resident set of any child process so far"
            + (" (the analyze process)" if peak_kib > before else " (an earlier child)")
        ),
        "sections_s": numbers["timings_s"],
        "baseline": {"leaderboard_json_s": round(baseline_s, 2)},
        "ratio_to_baseline": round(analyze_s / baseline_s, 2),
        "simulate_s": round(simulate_s, 2),
        "report": {
            "topics": len(numbers["topics"]["topics"]),
            "distinct_queries": numbers["topics"]["n_distinct"],
            "feedback_themes": len(numbers["feedback"]["themes"]),
            "taus": sum(row["tau"] is not None for row in numbers["kendall_tau"]),
            "html_mib": round(html_mib, 2),
            "stdout": result.stdout.strip(),
        },
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_1m_before": round(load_before, 2),
            "load_average_1m_after": round(os.getloadavg()[0], 2),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
    }
    print(json.dumps(document, indent=2))


if __name__ == "__main__":
    main()
