"""The static runner against a loopback model server with fixed latency: throughput, cache, memory.

A fake OpenAI-compatible model (tests/helpers/fake_static_model.py, real uvicorn on 127.0.0.1 in
its own process, as a real model server would be) waits ``--latency-s`` before answering. A
dataset of ``--samples`` short clips (an audiofolder with task.yaml, every clip distinct) goes
through the runner in process at ``--concurrency``:

- **throughput**: samples per second of the first run (every sample a model call), as a
  fraction of the ideal concurrency / latency (320 samples/s at 32 and 0.1 s; target >= 0.8);
- **cached rerun**: the same run into a new output folder, every call answered by the cache;
  its speed-up over the first run (target >= 50x);
- **memory**: peak resident memory of a whole run (fresh process, fresh cache) over the dataset
  and over one ten times as large (target: flat).

A same-run baseline replaces the HTTP adapter by one that only waits the latency, which shows
what the runner itself allows (the rest is the OpenAI adapter's and SDK's CPU time per request).

A short warm-up run on other clips comes first (lazy imports). Times are the runner's sample
phase (``RunSummary.elapsed_s``: from the first sample to the last row written); the wall times
of the whole ``prepare_run`` + ``run_static`` call, which add dataset opening and scoring, are
reported beside them. Prints one JSON document.

    python benchmarks/static_runner.py [--samples 640] [--concurrency 32] [--latency-s 0.1]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import multiprocessing
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from helpers.fake_static_model import FakeStaticModel
from helpers.static_fixtures import write_audiofolder
from lamarena.audio import AudioClip, to_wav_bytes
from lamarena.bench.run.plan import RunOptions, prepare_run
from lamarena.bench.run.runner import run_static
from lamarena.settings import Settings

THROUGHPUT_TARGET = 0.8
SPEEDUP_TARGET = 50.0
TASK = {
    "task": "sarcasm",
    "label_column": "label",
    "labels": ["yes", "no"],
    "metric": "macro_f1",
}


def _serve(conn: Connection, latency_s: float) -> None:
    """The fake model server, in its own process; answers "stats" and "stop" on ``conn``."""
    fake = FakeStaticModel(default="Yes.", latency_s=latency_s)
    with fake.serve() as server:
        conn.send(server.base_url)
        while conn.recv() != "stop":
            conn.send({"requests": fake.requests, "cpu_s": time.process_time()})


def _ask(conn: Connection, command: str) -> dict[str, Any]:
    conn.send(command)
    reply: dict[str, Any] = conn.recv()
    return reply


def _dataset(folder: Path, n: int, clip_s: float) -> Path:
    """``n`` distinct tone clips (a different pitch each) as an audiofolder with task.yaml."""
    t = np.arange(round(clip_s * 16_000), dtype=np.float32) / 16_000
    rows = []
    for index in range(n):
        tone = 0.3 * np.sin(2 * np.pi * (200 + index * 0.5) * t)
        audio = to_wav_bytes(AudioClip.from_samples(tone.astype(np.float32)))
        rows.append({"audio": audio, "label": "yes" if index % 2 else "no"})
    return write_audiofolder(folder, rows, TASK)


def _settings(root: Path, base_url: str, cache: Path) -> Settings:
    config = root / "models.yaml"
    config.write_text(
        "models:\n  - {name: bench, kind: openai, model: fake, base_url: "
        f"'{base_url}', max_retries: 0}}\n"
    )
    return Settings(
        models_config=config, cache_dir=root / "cache", static_cache=cache, data_dir=root
    )


class _NoHttpModel:
    """An adapter that waits the same latency and answers, with no HTTP and no SDK."""

    name = "bench"

    def __init__(self, latency_s: float) -> None:
        self.latency_s = latency_s

    async def stream(self, clip: AudioClip, prompt: str) -> AsyncIterator[str]:
        await asyncio.sleep(self.latency_s)
        yield "Yes."


async def _run(
    settings: Settings,
    dataset: Path,
    out: Path,
    concurrency: int,
    *,
    no_http_latency_s: float | None = None,
) -> dict[str, Any]:
    started = time.perf_counter()
    plan = prepare_run(
        settings,
        models=["bench"],
        datasets=[str(dataset)],
        options=RunOptions(out_dir=out, prompts=1, concurrency=concurrency, n_resamples=200),
    )
    if no_http_latency_s is not None:
        latency_s = no_http_latency_s
        target = plan.targets[0]
        entry = dataclasses.replace(target.entry, build=lambda: _NoHttpModel(latency_s))
        stub = dataclasses.replace(target, entry=entry, spec={**target.spec, "no_http": True})
        plan = dataclasses.replace(plan, targets=[stub])
    cpu_started = time.process_time()
    summary = await run_static(plan)
    cpu_s = time.process_time() - cpu_started
    wall_s = time.perf_counter() - started
    return {
        "samples": len(plan.datasets[0].plan.indices),
        "sample_phase_s": round(summary.elapsed_s, 4),
        "wall_s": round(wall_s, 4),
        "client_cpu_s": round(cpu_s, 3),
        "calls": summary.counters.calls,
        "cached": summary.counters.cached,
        "errors": summary.counters.errors,
    }


def _memory_child(root: str, dataset: str, base_url: str, concurrency: int) -> None:
    """Run once in this fresh process; print peak RSS before and after (MiB)."""
    folder = Path(root)
    settings = _settings(folder, base_url, folder / "memory-cache.sqlite")
    # Everything imported and the dataset opened once before the baseline is taken.
    prepare_run(
        settings,
        models=["bench"],
        datasets=[dataset],
        options=RunOptions(out_dir=folder / "unused", prompts=1),
    )
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = asyncio.run(_run(settings, Path(dataset), folder / "memory-out", concurrency))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({**result, "baseline_rss_mib": baseline, "peak_rss_mib": peak}))


def _memory(root: Path, dataset: Path, base_url: str, concurrency: int) -> dict[str, Any]:
    """Peak memory of one whole run in a fresh process (its ru_maxrss is its own)."""
    with tempfile.TemporaryDirectory(dir=root) as scratch:
        result = subprocess.run(
            [
                sys.executable,
                __file__,
                "--memory-child",
                scratch,
                str(dataset),
                base_url,
                str(concurrency),
            ],
            capture_output=True,
            text=True,
            timeout=1800,
            check=True,
        )
    report: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return report


async def _measure(root: Path, base_url: str, server: Connection, args: argparse.Namespace) -> Any:
    dataset = _dataset(root / "data-1x", args.samples, args.clip_s)
    cache = root / "cache.sqlite"
    settings = _settings(root, base_url, cache)
    # Warm-up on other clips (lazy imports in the SDK, sklearn for the scores): not measured.
    warm_up = _dataset(root / "data-warm-up", args.concurrency, args.clip_s * 1.5)
    await _run(settings, warm_up, root / "out-warm-up", args.concurrency)
    before = _ask(server, "stats")
    first = await _run(settings, dataset, root / "out-first", args.concurrency)
    after = _ask(server, "stats")
    cached = await _run(settings, dataset, root / "out-cached", args.concurrency)
    after_cached = _ask(server, "stats")
    no_http = await _run(
        settings, dataset, root / "out-no-http", args.concurrency, no_http_latency_s=args.latency_s
    )
    ideal = args.concurrency / args.latency_s
    throughput = first["samples"] / first["sample_phase_s"]
    return {
        "first_run": {
            **first,
            "server_requests": after["requests"] - before["requests"],
            "server_cpu_s": round(after["cpu_s"] - before["cpu_s"], 3),
            "samples_per_s": round(throughput, 1),
            "ideal_samples_per_s": ideal,
            "fraction_of_ideal": round(throughput / ideal, 3),
            "fraction_of_ideal_wall": round(first["samples"] / first["wall_s"] / ideal, 3),
        },
        "cached_rerun": {
            **cached,
            "server_requests": after_cached["requests"] - after["requests"],
            "speedup": round(first["sample_phase_s"] / cached["sample_phase_s"], 1),
            "speedup_wall": round(first["wall_s"] / cached["wall_s"], 1),
        },
        "runner_without_http": {
            **no_http,
            "note": "same run, the adapter replaced by one that only waits the latency: "
            "what the runner itself allows; the gap to first_run is the OpenAI adapter and SDK",
            "fraction_of_ideal": round(no_http["samples"] / no_http["sample_phase_s"] / ideal, 3),
        },
        "dataset": dataset,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--samples", type=int, default=640)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--latency-s", type=float, default=0.1)
    parser.add_argument("--clip-s", type=float, default=0.25, help="length of each clip")
    parser.add_argument("--memory-scale", type=int, default=10)
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--memory-child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        root, dataset, base_url, concurrency = args.memory_child
        _memory_child(root, dataset, base_url, int(concurrency))
        return
    if args.samples < 1 or args.concurrency < 1 or args.latency_s <= 0:
        parser.error("--samples and --concurrency >= 1; --latency-s > 0")

    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    process = context.Process(target=_serve, args=(theirs, args.latency_s), daemon=True)
    process.start()
    with tempfile.TemporaryDirectory(prefix="lamarena-bench-") as scratch:
        root = Path(scratch)
        try:
            base_url: str = ours.recv()
            result = asyncio.run(_measure(root, base_url, ours, args))
            memory: dict[str, Any] | None = None
            if not args.skip_memory:
                large = _dataset(root / "data-large", args.samples * args.memory_scale, args.clip_s)
                one = _memory(root, result["dataset"], base_url, args.concurrency)
                many = _memory(root, large, base_url, args.concurrency)
                memory = {
                    "1x": one,
                    f"{args.memory_scale}x": many,
                    "peak_ratio": round(many["peak_rss_mib"] / one["peak_rss_mib"], 3),
                    "growth_over_baseline_mib": {
                        "1x": round(one["peak_rss_mib"] - one["baseline_rss_mib"], 1),
                        f"{args.memory_scale}x": round(
                            many["peak_rss_mib"] - many["baseline_rss_mib"], 1
                        ),
                    },
                }
        finally:
            ours.send("stop")
            process.join(10)
    result.pop("dataset")
    document = {
        "benchmark": "static_runner",
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "settings": {
            "samples": args.samples,
            "concurrency": args.concurrency,
            "latency_s": args.latency_s,
            "clip_s": args.clip_s,
        },
        **result,
        "peak_memory": memory,
        "targets": {
            "fraction_of_ideal": THROUGHPUT_TARGET,
            "cached_speedup": SPEEDUP_TARGET,
            "memory": "flat: peak_ratio close to 1",
        },
        "meets_targets": {
            "throughput": result["first_run"]["fraction_of_ideal"] >= THROUGHPUT_TARGET,
            "cached_speedup": result["cached_rerun"]["speedup"] >= SPEEDUP_TARGET,
        },
    }
    print(json.dumps(document, indent=2, default=str))


if __name__ == "__main__":
    main()
