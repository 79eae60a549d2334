"""Votes at the scale of a public arena: loading, aggregating and bootstrapping a million votes.

Issue 15's benchmark. On ``--votes`` simulated battles over ``--models`` models (sessions of ten
votes, as ``lamarena simulate`` writes them), each step runs in a fresh Python process, which
reports its own wall time and peak memory (``VmHWM``), all in the same run:

- ``pyarrow_read``: pyarrow's own read of the JSONL and of the Parquet file (the floor);
- ``columnar_load``: :func:`lamarena.store.columnar.read_vote_columns` (the record loader's checks
  on whole columns) plus the encoding and the aggregation to pair-outcome counts and clusters;
- ``bootstrap``: the Bradley-Terry fit and its ``--rounds``-round bootstrap from the loaded
  columns, once resampling single battles and once whole sessions (``cluster auto``);
- ``leaderboard``: the whole ``leaderboard --json`` document (bootstrap, sandwich, head-to-head);
- ``baseline``: today's path before issue 15 (``--baseline-commit``, checked out in a temporary
  git worktree): the record loader plus ``records_to_frame`` (``load``), and that code's
  leaderboard with ``--cluster none`` (its clustered bootstrap holds a dense clusters x cells
  matrix: 12 GB at 100,000 sessions and 100 models, more than this machine has).

``--live`` also runs ``benchmarks/leaderboard_live.py`` (300,000 stored votes, 50 new votes a
second) and embeds its document. Targets: load and aggregate under 5 s, the bootstrap under
10 s, peak memory under 1.5 GB, every live request under 100 ms, the document at most 30 s old.

    python benchmarks/scale.py [--votes 1000000] [--models 100] [--rounds 10000]
        [--data-dir /tmp/lamarena-scale] [--baseline-commit ce5fbbe] [--no-baseline] [--live]

Prints one JSON document. The data files are made once and kept in ``--data-dir``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TARGETS = {"load_s": 5.0, "bootstrap_s": 10.0, "peak_gb": 1.5, "latency_ms": 100.0, "age_s": 30.0}
CHUNK = 50_000


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _make_data(directory: Path, n_votes: int, n_models: int) -> tuple[Path, Path]:
    """Write the simulated votes as JSONL and Parquet (once; reused when present)."""
    jsonl = directory / f"votes-{n_votes}-{n_models}.jsonl"
    parquet = jsonl.with_suffix(".parquet")
    if jsonl.exists() and parquet.exists():
        return jsonl, parquet
    import pyarrow as pa
    import pyarrow.parquet as pq

    from lamarena.simulation import simulate_battles
    from lamarena.store.exporters import PARQUET_SCHEMA
    from lamarena.store.records import records_from_frame

    directory.mkdir(parents=True, exist_ok=True)
    strengths = {
        f"model-{i:03d}": 800.0 + 400.0 * i / max(1, n_models - 1) for i in range(n_models)
    }
    with (
        jsonl.open("w", encoding="utf-8") as lines,
        pq.ParquetWriter(parquet, PARQUET_SCHEMA) as writer,
    ):
        for start in range(0, n_votes, CHUNK):
            count = min(CHUNK, n_votes - start)
            frame = simulate_battles(strengths, count, seed=start)
            records = records_from_frame(frame, namespace=f"scale-{start}")
            rows = []
            for record in records:
                lines.write(json.dumps(record.model_dump(mode="json"), ensure_ascii=False) + "\n")
                row = record.model_dump(mode="python")
                row["winner"] = record.winner.value
                rows.append(row)
            writer.write_table(pa.Table.from_pylist(rows, schema=PARQUET_SCHEMA))
            _log(f"wrote {start + count} of {n_votes} votes")
    return jsonl, parquet


# Each step is a small program run in a fresh interpreter; it prints one JSON line.
_PRELUDE = """
import json, sys, time
def done(**fields):
    # VmHWM: this process's peak resident memory (ru_maxrss would carry the parent's over exec)
    status = open("/proc/self/status").read().split("VmHWM:")[1].split()[0]
    print(json.dumps({**fields, "peak_gb": round(int(status) / 2**20, 3)}))
"""

_PYARROW = (
    _PRELUDE
    + """
import pyarrow.json as pj, pyarrow.parquet as pq
started = time.perf_counter()
table = pj.read_json(sys.argv[1]) if sys.argv[2] == "jsonl" else pq.read_table(sys.argv[1])
done(seconds=round(time.perf_counter() - started, 3), rows=table.num_rows)
"""
)

_COLUMNAR = (
    _PRELUDE
    + """
from lamarena.analysis.encoded import encode_columns
from lamarena.analysis.ranking.clusters import encoded_clusters
from lamarena.store.columnar import read_vote_columns
started = time.perf_counter()
columns = read_vote_columns(sys.argv[1], sys.argv[2])
read_s = time.perf_counter() - started
columns = columns.take(columns.counted)
encoded = encode_columns(columns)
counts = encoded.pair_counts()
clusters = encoded_clusters(encoded, "auto")
done(
    seconds=round(time.perf_counter() - started, 3), read_s=round(read_s, 3),
    battles=encoded.n_battles, pairs=int(counts.first.size), clusters=clusters.n_clusters,
    fast_path=columns.fast,
)
"""
)

_BOOTSTRAP = (
    _PRELUDE
    + """
from lamarena.analysis.encoded import encode_columns
from lamarena.analysis.ranking.bradley_terry import bootstrap_encoded_result, fit_counts_result
from lamarena.analysis.ranking.clusters import encoded_clusters
from lamarena.store.columnar import read_vote_columns
columns = read_vote_columns(sys.argv[1], "parquet")
columns = columns.take(columns.counted)
encoded = encode_columns(columns)
started = time.perf_counter()
fit = fit_counts_result(encoded.pair_counts(), n_battles=encoded.n_battles)
fit_s = time.perf_counter() - started
result = {"fit_s": round(fit_s, 3)}
for cluster in ("none", "auto"):
    started = time.perf_counter()
    clusters = encoded_clusters(encoded, cluster)
    boot = bootstrap_encoded_result(encoded, fit, clusters, rounds=int(sys.argv[2]), seed=0)
    result[cluster] = {
        "seconds": round(time.perf_counter() - started, 3),
        "clusters": clusters.n_clusters,
        "unconverged": boot.unconverged,
    }
done(**result)
"""
)

_LEADERBOARD = (
    _PRELUDE
    + """
from lamarena.analysis.encoded import encode_columns
from lamarena.analysis.ranking.leaderboard import build_leaderboard
from lamarena.store.columnar import read_vote_columns
started = time.perf_counter()
columns = read_vote_columns(sys.argv[1], "parquet")
columns = columns.take(columns.counted)
encoded = encode_columns(columns)
load_s = time.perf_counter() - started
document = build_leaderboard(encoded, n_resamples=int(sys.argv[2]), seed=0).to_dict()
done(
    seconds=round(time.perf_counter() - started, 3), load_s=round(load_s, 3),
    cluster=document["cluster"], models=len(document["models"]),
)
"""
)

_BASELINE = (
    _PRELUDE
    + """
from lamarena.analysis.ranking.leaderboard import build_leaderboard
from lamarena.store import read_battle_records, records_to_frame
started = time.perf_counter()
frame = records_to_frame(read_battle_records(sys.argv[1], sys.argv[2]))
frame = frame[frame["counted"]].reset_index(drop=True)
load_s = time.perf_counter() - started
rounds = int(sys.argv[3])
result = {"load_s": round(load_s, 3)}
if rounds:
    started = time.perf_counter()
    build_leaderboard(frame, n_resamples=rounds, seed=0, cluster="none")
    result["leaderboard_none_s"] = round(time.perf_counter() - started, 3)
done(**result)
"""
)


def _step(program: str, *args: str, pythonpath: Path, timeout: float = 3600) -> dict[str, Any]:
    """Run ``program`` in a fresh interpreter with ``pythonpath`` first; its JSON line."""
    # the child needs this environment (PATH, HOME) plus its source: not a lamarena setting
    env = {**os.environ, "PYTHONPATH": str(pythonpath)}  # noqa: TID251
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", program, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        return {"error": result.stderr.strip().splitlines()[-1:], "returncode": result.returncode}
    document: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    document["process_s"] = round(time.perf_counter() - started, 3)
    return document


def _baseline_source(commit: str, into: Path) -> Path:
    """A worktree of ``commit`` (today's path before issue 15); its ``src`` directory."""
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(into), commit],
        check=True,
        capture_output=True,
    )
    return into / "src"


def _live(args: argparse.Namespace) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "leaderboard_live.py"), *args.live_args],
        capture_output=True,
        text=True,
        check=False,
        timeout=3600,
    )
    if result.returncode != 0:
        return {"error": result.stderr.strip().splitlines()[-3:]}
    live: dict[str, Any] = json.loads(result.stdout)
    return live


def _verdict(document: dict[str, Any]) -> dict[str, Any]:
    load = document["columnar_load"]
    boot = document["bootstrap"]
    peaks = [
        step.get("peak_gb", 0.0)
        for step in (load["jsonl"], load["parquet"], boot, document["leaderboard"])
    ]
    verdict = {
        "load_parquet_under_5_s": load["parquet"].get("seconds", 1e9) < TARGETS["load_s"],
        "load_jsonl_under_5_s": load["jsonl"].get("seconds", 1e9) < TARGETS["load_s"],
        "bootstrap_single_battles_under_10_s": boot.get("none", {}).get("seconds", 1e9)
        < TARGETS["bootstrap_s"],
        "bootstrap_sessions_under_10_s": boot.get("auto", {}).get("seconds", 1e9)
        < TARGETS["bootstrap_s"],
        "peak_under_1_5_gb": max(peaks) < TARGETS["peak_gb"],
    }
    return verdict


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--votes", type=int, default=1_000_000)
    parser.add_argument("--models", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=10_000)
    parser.add_argument(
        "--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "lamarena-scale"
    )
    parser.add_argument("--baseline-commit", default="ce5fbbe")
    parser.add_argument("--baseline-rounds", type=int, default=1_000)
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--live", action="store_true")
    parser.add_argument("--live-args", nargs="*", default=[])
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT / "src"))
    jsonl, parquet = _make_data(args.data_dir, args.votes, args.models)
    source = ROOT / "src"
    document: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "votes": args.votes,
        "models": args.models,
        "rounds": args.rounds,
        "files": {
            "jsonl_mb": round(jsonl.stat().st_size / 2**20, 1),
            "parquet_mb": round(parquet.stat().st_size / 2**20, 1),
        },
        "targets": TARGETS,
    }
    _log("pyarrow's own read")
    document["pyarrow_read"] = {
        "jsonl": _step(_PYARROW, str(jsonl), "jsonl", pythonpath=source),
        "parquet": _step(_PYARROW, str(parquet), "parquet", pythonpath=source),
    }
    _log("columnar load and aggregation")
    document["columnar_load"] = {
        "jsonl": _step(_COLUMNAR, str(jsonl), "jsonl", pythonpath=source),
        "parquet": _step(_COLUMNAR, str(parquet), "parquet", pythonpath=source),
    }
    _log("bootstrap")
    document["bootstrap"] = _step(_BOOTSTRAP, str(parquet), str(args.rounds), pythonpath=source)
    _log("leaderboard")
    document["leaderboard"] = _step(_LEADERBOARD, str(parquet), str(args.rounds), pythonpath=source)
    if not args.no_baseline:
        with tempfile.TemporaryDirectory() as scratch:
            worktree = Path(scratch) / "baseline"
            try:
                old = _baseline_source(args.baseline_commit, worktree)
                _log(f"baseline ({args.baseline_commit})")
                document["baseline"] = {
                    "commit": args.baseline_commit,
                    "jsonl": _step(
                        _BASELINE, str(jsonl), "jsonl", str(args.baseline_rounds), pythonpath=old
                    ),
                    "parquet": _step(_BASELINE, str(parquet), "parquet", "0", pythonpath=old),
                    "rounds": args.baseline_rounds,
                }
            finally:
                subprocess.run(
                    ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(worktree)],
                    check=False,
                    capture_output=True,
                )
        baseline = document["baseline"]
        document["ratios"] = {
            "load_jsonl_vs_baseline": _ratio(
                document["columnar_load"]["jsonl"].get("seconds"), baseline["jsonl"].get("load_s")
            ),
            "load_parquet_vs_baseline": _ratio(
                document["columnar_load"]["parquet"].get("seconds"),
                baseline["parquet"].get("load_s"),
            ),
            "load_jsonl_vs_pyarrow": _ratio(
                document["columnar_load"]["jsonl"].get("seconds"),
                document["pyarrow_read"]["jsonl"].get("seconds"),
            ),
            "load_parquet_vs_pyarrow": _ratio(
                document["columnar_load"]["parquet"].get("seconds"),
                document["pyarrow_read"]["parquet"].get("seconds"),
            ),
        }
    if args.live:
        _log("live leaderboard (benchmarks/leaderboard_live.py)")
        document["live"] = _live(args)
    document["verdict"] = _verdict(document)
    print(json.dumps(document, indent=2))


def _ratio(new: float | None, old: float | None) -> float | None:
    if not new or not old:
        return None
    return round(new / old, 4)


if __name__ == "__main__":
    main()
