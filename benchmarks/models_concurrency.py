"""Concurrent requests through OpenAIChatModel against a loopback server with fixed latency.

A fake OpenAI-compatible server (tests/helpers/fake_openai.py, real uvicorn on 127.0.0.1, in its
own process, as a real model server would be) waits ``--latency-s`` before the first delta of
every reply. A few requests run one after another first (the same-run baseline: what one request
costs here), then bursts of ``--requests`` at once through one adapter. With no serialisation
anywhere (one pooled HTTP client per adapter, a pool larger than the burst) a burst takes about
one latency, not ``--requests`` of them; what it takes beyond one latency is CPU time, reported
for both processes. The first burst also opens the pool's connections and is reported apart;
the ratio uses the median of the ``--rounds`` bursts after it. The same bursts through a bare
httpx2 client (no SDK: json.loads on the SSE lines) show the floor of this machine, so the gap
between the two is the SDK's own CPU time. Prints one JSON document.

    python benchmarks/models_concurrency.py [--requests 32] [--latency-s 0.2] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import multiprocessing
import os
import platform
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from helpers.fake_openai import FakeOpenAI
from lamarena.audio import AudioClip, to_wav_bytes
from lamarena.models.base import ModelTimeouts
from lamarena.models.openai_compat import DEFAULT_MAX_CONNECTIONS, OpenAIChatModel

TARGET_RATIO = 1.5
DELTAS = ("The capital", " of France", " is", " Paris", ".")


def _clip(duration_s: float) -> AudioClip:
    """A 220 Hz tone (the payload size matters, not the words)."""
    t = np.arange(round(duration_s * 16_000), dtype=np.float32) / 16_000
    return AudioClip.from_samples((0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32))


def _serve(conn: Connection, latency_s: float) -> None:
    """The fake server, in its own process; answers "reset", "stats" and "stop" on ``conn``."""
    fake = FakeOpenAI(deltas=DELTAS, first_token_delay_s=latency_s)
    with fake.serve() as server:
        conn.send(server.base_url)
        while (command := conn.recv()) != "stop":
            if command == "reset":
                fake.max_in_flight = 0
            conn.send(
                {
                    "requests": len(fake.requests),
                    "max_in_flight": fake.max_in_flight,
                    "cpu_s": time.process_time(),
                }
            )


def _ask(conn: Connection, command: str) -> dict[str, Any]:
    conn.send(command)
    reply: dict[str, Any] = conn.recv()
    return reply


async def _one(model: OpenAIChatModel, clip: AudioClip) -> tuple[float, float]:
    """(time to first delta, total) of one request, in seconds."""
    started = time.perf_counter()
    ttft: float | None = None
    async for _ in model.stream(clip, "Answer the question."):
        if ttft is None:
            ttft = time.perf_counter() - started
    total = time.perf_counter() - started
    return (ttft if ttft is not None else total), total


async def _bare(client: httpx2.AsyncClient, base_url: str, clip: AudioClip) -> tuple[float, float]:
    """The same request with a bare httpx2 client and json.loads: the floor without the SDK."""
    audio = base64.b64encode(to_wav_bytes(clip)).decode("ascii")
    parts = [
        {"type": "text", "text": "Answer the question."},
        {"type": "input_audio", "input_audio": {"data": audio, "format": "wav"}},
    ]
    body = {
        "model": "fake-audio-model",
        "stream": True,
        "messages": [{"role": "user", "content": parts}],
    }
    started = time.perf_counter()
    ttft: float | None = None
    async with client.stream("POST", f"{base_url}/chat/completions", json=body) as response:
        async for line in response.aiter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                delta = json.loads(line[6:])["choices"][0]["delta"]
                if ttft is None and delta.get("content"):
                    ttft = time.perf_counter() - started
    total = time.perf_counter() - started
    return (ttft if ttft is not None else total), total


async def _burst(
    one: Callable[[], Awaitable[tuple[float, float]]], server: Connection, n: int
) -> dict[str, Any]:
    before = _ask(server, "reset")
    cpu_started = time.process_time()
    started = time.perf_counter()
    replies = await asyncio.gather(*(one() for _ in range(n)))
    wall_s = time.perf_counter() - started
    client_cpu_s = time.process_time() - cpu_started
    after = _ask(server, "stats")
    ttfts = sorted(ttft for ttft, _ in replies)
    return {
        "wall_s": round(wall_s, 4),
        "ttft_p50_s": round(ttfts[len(ttfts) // 2], 4),
        "ttft_max_s": round(ttfts[-1], 4),
        "server_max_in_flight": after["max_in_flight"],
        "client_cpu_s": round(client_cpu_s, 4),
        "server_cpu_s": round(after["cpu_s"] - before["cpu_s"], 4),
    }


async def _measure(base_url: str, server: Connection, args: argparse.Namespace) -> dict[str, Any]:
    clip = _clip(args.clip_s)
    model = OpenAIChatModel(
        "bench",
        "fake-audio-model",
        base_url=base_url,
        timeouts=ModelTimeouts(connect_s=5.0, first_token_s=30.0),
    )
    try:
        await _one(model, clip)  # warm-up: lazy imports, the first connection
        sequential = [await _one(model, clip) for _ in range(args.sequential)]
        first = await _burst(lambda: _one(model, clip), server, args.requests)
        bursts = [
            await _burst(lambda: _one(model, clip), server, args.requests)
            for _ in range(args.rounds)
        ]
    finally:
        await model.aclose()
    limits = httpx2.Limits(max_connections=DEFAULT_MAX_CONNECTIONS)
    async with httpx2.AsyncClient(limits=limits, timeout=30.0) as client:
        await _burst(lambda: _bare(client, base_url, clip), server, args.requests)
        bare = [
            await _burst(lambda: _bare(client, base_url, clip), server, args.requests)
            for _ in range(args.rounds)
        ]
    sequential_s = statistics.fmean(total for _, total in sequential)
    median_s = statistics.median(burst["wall_s"] for burst in bursts)
    return {
        "sequential": {
            "n": args.sequential,
            "mean_total_s": round(sequential_s, 4),
            "mean_ttft_s": round(statistics.fmean(ttft for ttft, _ in sequential), 4),
        },
        "first_burst_opening_connections": first,
        "bursts": bursts,
        "median_wall_s": median_s,
        "ratio_to_latency": round(median_s / args.latency_s, 3),
        "ratio_to_one_sequential_request": round(median_s / sequential_s, 3),
        "speedup_vs_sequential": round(sequential_s * args.requests / median_s, 1),
        "bare_httpx2_floor": {
            "median_wall_s": statistics.median(burst["wall_s"] for burst in bare),
            "median_client_cpu_s": statistics.median(burst["client_cpu_s"] for burst in bare),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--requests", type=int, default=32)
    parser.add_argument("--latency-s", type=float, default=0.2)
    parser.add_argument("--sequential", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--clip-s", type=float, default=2.0, help="length of the query audio")
    args = parser.parse_args()
    if args.latency_s <= 0 or args.requests < 1 or args.rounds < 1 or args.sequential < 1:
        parser.error("--latency-s must be positive; --requests, --rounds, --sequential >= 1")

    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    process = context.Process(target=_serve, args=(theirs, args.latency_s), daemon=True)
    process.start()
    try:
        base_url: str = ours.recv()
        result = asyncio.run(_measure(base_url, ours, args))
    finally:
        ours.send("stop")
        process.join(10)
    document = {
        "benchmark": "models_concurrency",
        "adapter": "OpenAIChatModel",
        "server": "fake OpenAI-compatible server, uvicorn on 127.0.0.1, in its own process",
        "server_latency_s": args.latency_s,
        "requests_per_burst": args.requests,
        "clip_s": args.clip_s,
        "pool_max_connections": DEFAULT_MAX_CONNECTIONS,
        **result,
        "target_ratio_to_latency": TARGET_RATIO,
        "meets_target": result["ratio_to_latency"] <= TARGET_RATIO,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    print(json.dumps(document, indent=2))


if __name__ == "__main__":
    main()
