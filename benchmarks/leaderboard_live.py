"""``GET /api/leaderboard`` of a large arena while votes keep arriving: latency and document age.

A real ``lamarena serve`` process (one worker, SQLite; tests/helpers/arena_server.py) on a store
that already holds ``--votes`` votes over ``--models`` models (``lamarena.simulation`` battles of
known strengths, stored with the store's own bulk import). While another process inserts new
votes straight into the database at ``--rate`` a second (not through the HTTP API: a battle
through the API decodes an upload and streams two replies, which two cores cannot do 50 times a
second beside the server; the leaderboard sees the same rows either way), a client polls
``/api/leaderboard`` every ``--poll-s`` for ``--duration-s`` and records each request's latency,
the document's ``age_s`` and its ``n_votes``.

Same-run baselines:

- ``sync_refit_s``: :func:`lamarena.arena.leaderboard.fit_leaderboard` called once in this
  process at the stored size (from the store's counts), against ``votes_refit_s``: the path
  before issue 15, every counted vote read as a DataFrame (``repo.battles_frame``) and fitted;
- ``no_fit_at_start``: a server with ``LAMARENA_LEADERBOARD_FIT_AT_START=false``, whose first
  request waits for the process's first fit (the live server fits as it starts, before it
  reports healthy: ``healthy_after_s``);
- ``refresh_off``: a third server with ``LAMARENA_LEADERBOARD_REFRESH_S=0`` (the old blocking
  path, kept as an option) polled ``--baseline-requests`` times while the votes still arrive.

Targets (issue 15): every request under 100 ms, the document at most 30 s old.

    python benchmarks/leaderboard_live.py [--votes 300000] [--models 50] [--rate 50]
        [--duration-s 120] [--refresh-s 10] [--poll-s 0.5] [--baseline-requests 2]

Prints one JSON document.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import statistics
import sys
import tempfile
import time
from multiprocessing.synchronize import Event as EventType
from pathlib import Path
from typing import Any

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from helpers.arena_server import ServeProcess, write_models_yaml
from helpers.servers import unused_port
from lamarena.arena.leaderboard import FitOptions, fit_leaderboard, leaderboard_document
from lamarena.simulation import simulate_battles
from lamarena.store.bulk import insert_battle_records
from lamarena.store.db import make_engine, make_sessionmaker, migrate_to_head
from lamarena.store.records import records_from_frame
from lamarena.store.repo import battles_frame

TARGET_LATENCY_MS = 100.0
TARGET_AGE_S = 30.0
IMPORT_CHUNK = 25_000
WRITE_TICK_S = 0.1
LEADERBOARD_RESAMPLES = 1_000  # ArenaOptions' default, as `serve` runs it
MIN_BATTLES = 10  # Settings' default


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _strengths(n_models: int) -> dict[str, float]:
    return {
        f"model-{index:02d}": 800.0 + 400.0 * index / max(1, n_models - 1)
        for index in range(n_models)
    }


def _store(database_url: str, n_votes: int, n_models: int) -> float:
    """Simulate ``n_votes`` battles and store them in chunks; the seconds it took."""
    started = time.perf_counter()
    engine = make_engine(database_url)
    try:
        migrate_to_head(engine)
        sessions = make_sessionmaker(engine)
        strengths = _strengths(n_models)
        for start in range(0, n_votes, IMPORT_CHUNK):
            count = min(IMPORT_CHUNK, n_votes - start)
            frame = simulate_battles(strengths, count, seed=start)
            frame = frame.assign(battle_id=[f"old-{start + i}" for i in range(count)])
            with sessions.begin() as session:
                insert_battle_records(session, records_from_frame(frame))
            _log(f"stored {start + count} of {n_votes} votes")
    finally:
        engine.dispose()
    return time.perf_counter() - started


def _write_votes(
    database_url: str,
    n_models: int,
    rate: float,
    total: int,
    ready: EventType,
    go: EventType,
    stop: EventType,
    written: Any,
) -> None:
    """Insert ``rate`` votes a second (ticks of WRITE_TICK_S) from ``go`` until ``stop``."""
    engine = make_engine(database_url)
    sessions = make_sessionmaker(engine)
    frame = simulate_battles(_strengths(n_models), total, seed=1_000_003)
    frame = frame.assign(battle_id=[f"live-{i}" for i in range(total)])
    records = records_from_frame(frame)
    ready.set()
    go.wait()
    per_tick = max(1, round(rate * WRITE_TICK_S))
    started = time.monotonic()
    done = 0
    while done < total and not stop.is_set():
        due = started + (done / rate)
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        chunk = records[done : done + per_tick]
        with sessions.begin() as session:
            insert_battle_records(session, chunk)
        done += len(chunk)
        written.value = done
    engine.dispose()


def _quantiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p95": None, "max": None}
    array = np.asarray(values)
    return {
        "p50": round(float(np.percentile(array, 50)), 3),
        "p95": round(float(np.percentile(array, 95)), 3),
        "max": round(float(array.max()), 3),
    }


def _poll(url: str, duration_s: float, poll_s: float) -> dict[str, Any]:
    """Poll the leaderboard; latency of every request, the age and count of every document."""
    latencies_ms: list[float] = []
    ready_latencies_ms: list[float] = []
    ages: list[float] = []
    computed: dict[str, float] = {}
    statuses: dict[str, int] = {}
    n_votes_seen: list[int] = []
    first_ms: float | None = None
    deadline = time.monotonic() + duration_s
    with httpx.Client(base_url=url, timeout=120) as client:
        while time.monotonic() < deadline:
            started = time.perf_counter()
            answer = client.get("/api/leaderboard")
            elapsed_ms = 1000 * (time.perf_counter() - started)
            document = answer.json()
            status = str(document.get("status", answer.status_code))
            statuses[status] = statuses.get(status, 0) + 1
            if first_ms is None:
                first_ms = elapsed_ms
            else:
                latencies_ms.append(elapsed_ms)
            if status == "ready":
                ready_latencies_ms.append(elapsed_ms)
                ages.append(float(document["age_s"]))
                computed[document["computed_at"]] = float(document["fit_s"])
                n_votes_seen.append(int(document["n_votes"]))
            time.sleep(max(0.0, poll_s - elapsed_ms / 1000))
    return {
        "requests": len(latencies_ms) + 1,
        "first_request_ms": None if first_ms is None else round(first_ms, 1),
        "statuses": statuses,
        "latency_ms_after_first": _quantiles(latencies_ms),
        "latency_ms_all": _quantiles(latencies_ms + ([] if first_ms is None else [first_ms])),
        "latency_ms_ready": _quantiles(ready_latencies_ms),
        "age_s": {
            "p50": None if not ages else round(statistics.median(ages), 2),
            "max": None if not ages else round(max(ages), 2),
        },
        "documents_seen": len(computed),
        "fit_s_of_documents": [round(value, 2) for value in computed.values()],
        "n_votes_first_last": [n_votes_seen[0], n_votes_seen[-1]] if n_votes_seen else None,
    }


def _serve(
    config: Path, database_url: str, workdir: Path, refresh_s: float, *, fit_at_start: bool = True
) -> ServeProcess:
    return ServeProcess(
        config=config,
        database_url=database_url,
        port=unused_port(),
        workdir=workdir,
        env={
            "LAMARENA_LEADERBOARD_REFRESH_S": str(refresh_s),
            "LAMARENA_LEADERBOARD_FIT_AT_START": str(fit_at_start).lower(),
        },
    )


def _first_request_ms(served: ServeProcess) -> float:
    """The latency of a fresh server's first ``/api/leaderboard`` request."""
    with httpx.Client(base_url=served.url, timeout=120) as client:
        started = time.perf_counter()
        assert client.get("/api/leaderboard").status_code == 200
        return round(1000 * (time.perf_counter() - started), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--votes", type=int, default=300_000)
    parser.add_argument("--models", type=int, default=50)
    parser.add_argument("--rate", type=float, default=50.0, help="new votes a second")
    parser.add_argument("--duration-s", type=float, default=120.0)
    parser.add_argument("--refresh-s", type=float, default=10.0)
    parser.add_argument("--poll-s", type=float, default=0.5)
    parser.add_argument("--baseline-requests", type=int, default=2)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="leaderboard-live-"))
    database_url = f"sqlite:///{workdir / 'arena.db'}"
    # The models never answer here (no battle is started through the API).
    config = write_models_yaml(
        workdir / "models.yaml",
        {"alpha": "http://127.0.0.1:9/v1", "beta": "http://127.0.0.1:9/v1"},
    )
    store_s = _store(database_url, args.votes, args.models)

    engine = make_engine(database_url)
    try:
        options = FitOptions(LEADERBOARD_RESAMPLES, 0, MIN_BATTLES)
        started = time.perf_counter()
        snapshot = fit_leaderboard(engine, make_sessionmaker(engine), options)
        sync_refit_s = time.perf_counter() - started
        document_bytes = len(json.dumps(snapshot.document))
        # the path before issue 15: every counted vote read as a DataFrame, then fitted
        started = time.perf_counter()
        with make_sessionmaker(engine)() as session:
            frame = battles_frame(session)
        read_votes_s = time.perf_counter() - started
        leaderboard_document(frame, n_resamples=LEADERBOARD_RESAMPLES, seed=0, min_battles=10)
        votes_refit_s = time.perf_counter() - started
    finally:
        engine.dispose()
    _log(f"refit from the counts: {sync_refit_s:.1f} s; from every vote: {votes_refit_s:.1f} s")

    total_live = int(args.rate * (args.duration_s + 600)) + 100
    ready, go, stop = multiprocessing.Event(), multiprocessing.Event(), multiprocessing.Event()
    written = multiprocessing.Value("q", 0)
    writer = multiprocessing.Process(
        target=_write_votes,
        args=(database_url, args.models, args.rate, total_live, ready, go, stop, written),
        daemon=True,
    )
    writer.start()
    ready.wait()
    result: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "database": "sqlite",
        "votes_stored": args.votes,
        "models": args.models,
        "document_bytes": document_bytes,
        "store_s": round(store_s, 1),
        "vote_path": "inserted straight into the database by another process",
        "rate_per_s": args.rate,
        "refresh_s": args.refresh_s,
        "duration_s": args.duration_s,
        "poll_s": args.poll_s,
        "targets": {"latency_ms": TARGET_LATENCY_MS, "age_s": TARGET_AGE_S},
    }
    try:
        started = time.perf_counter()
        with _serve(config, database_url, workdir, args.refresh_s) as served:
            served.wait_healthy(timeout_s=120)
            live_start_s = time.perf_counter() - started  # with its fit at start
            go.set()
            live = _poll(served.url, args.duration_s, args.poll_s)
        live["votes_written"] = int(written.value)
        live["healthy_after_s"] = round(live_start_s, 2)
        result["background"] = live
        # same-run baseline: a process that fits at its first request (as before)
        started = time.perf_counter()
        with _serve(config, database_url, workdir, args.refresh_s, fit_at_start=False) as served:
            served.wait_healthy(timeout_s=120)
            late_start_s = time.perf_counter() - started
            result["no_fit_at_start"] = {
                "healthy_after_s": round(late_start_s, 2),
                "first_request_ms": _first_request_ms(served),
            }
        with _serve(config, database_url, workdir, 0) as served:
            served.wait_healthy(timeout_s=120)
            waits: list[float] = []
            with httpx.Client(base_url=served.url, timeout=600) as client:
                for _ in range(args.baseline_requests):
                    started = time.perf_counter()
                    assert client.get("/api/leaderboard").status_code == 200
                    waits.append(round(time.perf_counter() - started, 2))
        result["refresh_off"] = {"request_s": waits, "votes_written": int(written.value)}
    finally:
        go.set()
        stop.set()
        writer.join(30)
    result["sync_refit_s"] = round(sync_refit_s, 2)
    result["votes_refit_s"] = {"read": round(read_votes_s, 2), "total": round(votes_refit_s, 2)}
    result["ratio_counts_refit_to_votes_refit"] = round(sync_refit_s / votes_refit_s, 4)
    worst_ms = live["latency_ms_all"]["max"]
    worst_age = live["age_s"]["max"]
    result["met"] = {
        "latency": worst_ms is not None and worst_ms < TARGET_LATENCY_MS,
        "age": worst_age is not None and worst_age <= TARGET_AGE_S,
    }
    p50 = live["latency_ms_after_first"]["p50"]
    result["ratio_old_request_to_new_p50"] = (
        None if not p50 else round(1000 * statistics.median(waits) / p50, 1)
    )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
