"""Spreading a static run over a Dask distributed cluster (``--scheduler tcp://host:8786``).

The driver cuts every (model, dataset, prompt variant) unit into shards of about ``shard_size``
samples and submits them to the scheduler; a worker runs :func:`execute_shard`, which rebuilds
the settings, the model adapter and the dataset from plain data and evaluates its shard with the
same engine as an in-process run (:func:`lamarena.bench.run.execution.process_samples`), returning
the rows. The driver appends them to ``samples.jsonl`` as shards finish.

The per-model concurrency limit holds across the cluster: each shard of a model runs with a
quarter of the limit (at least 1) and the driver keeps at most limit / that many of the model's
shards in flight. Workers write model calls to the same SQLite cache file as they go, so a shard
lost to a killed run costs no repeated call when it runs again: the workers and the driver must
share the cache file and any local dataset folder (one machine, or shared storage).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from lamarena.bench.data.loading import iter_samples, open_dataset, resolve_dataset
from lamarena.bench.data.registry import load_registry
from lamarena.bench.run.cache import CallCache
from lamarena.bench.run.execution import RunCounters, UnitContext, process_samples
from lamarena.bench.run.judge import Judge, check_judge
from lamarena.bench.run.plan import RunPlan
from lamarena.bench.run.progress import Progress
from lamarena.bench.run.targets import ModelHandle, resolve_targets
from lamarena.bench.scoring.pedants import PedantsScorer, PedantsUnavailable, load_pedants
from lamarena.errors import ConfigError, LamarenaError
from lamarena.models.base import ModelTimeouts
from lamarena.settings import Settings

__all__ = ["execute_shard", "run_on_cluster", "shard_payloads"]

logger = logging.getLogger(__name__)


def _shard_concurrency(limit: int) -> int:
    return max(1, limit // 4)


def shard_payloads(
    plan: RunPlan, done: dict[tuple[str, str, int], set[str]]
) -> dict[str, list[dict[str, Any]]]:
    """The shards of every model, as plain data a worker can rebuild everything from."""
    settings = plan.settings.model_dump(mode="json")
    size = plan.options.shard_size
    payloads: dict[str, list[dict[str, Any]]] = {}
    for target in plan.targets:
        limit = target.concurrency(plan.options.concurrency)
        shards: list[dict[str, Any]] = []
        for item in plan.datasets:
            folder = item.ref.folder
            reference = str(folder.resolve()) if folder is not None else item.ref.spec.name
            for prompt_id in range(len(item.prompts)):
                unit_done = sorted(done.get((target.name, item.ref.spec.name, prompt_id), set()))
                indices = item.plan.indices
                for start in range(0, len(indices), size):
                    shards.append(
                        {
                            "settings": settings,
                            "model": target.name,
                            "dataset": reference,
                            "prompt_id": prompt_id,
                            "indices": indices[start : start + size],
                            "done": unit_done,
                            "concurrency": min(_shard_concurrency(limit), size),
                            "cache": str(plan.cache_path),
                            "judge": plan.judge.name if plan.judge is not None else None,
                            "decoding": plan.options.decoding,
                        }
                    )
        payloads[target.name] = shards
    return payloads


@functools.cache
def _pedants(model_dir: str | None) -> PedantsScorer | PedantsUnavailable:
    return load_pedants(Path(model_dir) if model_dir is not None else None)


async def _execute(payload: dict[str, Any], rows: list[dict[str, Any]]) -> RunCounters:
    settings = Settings.model_validate(payload["settings"])
    registry = load_registry()
    ref = resolve_dataset(payload["dataset"], registry, hub_dir=settings.hub_dir)
    dataset = open_dataset(ref, cache_dir=settings.cache_dir)
    target = resolve_targets(settings, [payload["model"]])[0]
    template = registry.prompts_for(ref.spec)[payload["prompt_id"]]
    cache = CallCache(Path(payload["cache"]))
    model = ModelHandle(target.build)
    judge_model: ModelHandle | None = None
    try:
        judge = None
        if payload["judge"] is not None and ref.spec.metric.is_open:
            judge_target = resolve_targets(settings, [payload["judge"]])[0]
            check_judge(judge_target)
            judge_model = ModelHandle(judge_target.build)
            judge = Judge(
                judge_target,
                judge_model,
                cache,
                concurrency=payload["concurrency"],
                timeout_s=settings.model_total_timeout_s,
            )
        pedants = None
        if ref.spec.metric.value == "pedants":
            model_dir = settings.pedants_model_dir
            pedants = _pedants(None if model_dir is None else str(model_dir))
        context = UnitContext(
            target=target,
            model=model,
            spec=ref.spec,
            prompt_id=payload["prompt_id"],
            template=template,
            cache=cache,
            slots=asyncio.Semaphore(payload["concurrency"]),
            timeouts=ModelTimeouts(
                first_token_s=settings.model_first_token_timeout_s,
                total_s=settings.model_total_timeout_s,
            ),
            emit=rows.append,
            advance=lambda cached: None,
            judge=judge,
            pedants=pedants,
            decoding=payload["decoding"],
        )
        samples = iter_samples(ref.spec, dataset, payload["indices"])
        await process_samples(context, samples, frozenset(payload["done"]))
        return context.counters
    finally:
        await model.aclose()
        if judge_model is not None:
            await judge_model.aclose()
        cache.close()


def execute_shard(payload: dict[str, Any]) -> dict[str, Any]:
    """Evaluate one shard on a Dask worker; returns its rows and counts.

    A lamarena error comes back as ``{"error": message}`` (its class may not survive pickling).
    """
    rows: list[dict[str, Any]] = []
    try:
        # A worker task is a synchronous entry point with no event loop of its own in this
        # thread: it runs the async engine to completion here.
        counters = asyncio.run(_execute(payload, rows))
    except LamarenaError as exc:
        return {"rows": rows, "counters": None, "error": f"{type(exc).__name__}: {exc}"}
    return {"rows": rows, "counters": asdict(counters), "error": None}


async def _connect(address: str, timeout_s: float) -> Any:
    try:
        from distributed import Client
    except ImportError as exc:
        raise ConfigError(
            "--scheduler needs Dask distributed: pip install 'lamarena[dask]'"
        ) from exc
    try:
        return await Client(  # type: ignore[no-untyped-call]
            address, asynchronous=True, timeout=timeout_s
        )
    except (OSError, TimeoutError, ValueError) as exc:
        raise ConfigError(
            f"cannot reach the Dask scheduler at {address} ({type(exc).__name__}: {exc}); start "
            "one (`dask scheduler` and `dask worker ADDRESS`) or run without --scheduler"
        ) from exc


async def run_on_cluster(
    plan: RunPlan,
    done: dict[tuple[str, str, int], set[str]],
    emit: Callable[[dict[str, Any]], None],
    progress: Progress,
    by_model: dict[str, RunCounters],
) -> None:
    """Run every shard of ``plan`` on the cluster at ``plan.options.scheduler``.

    The counts of each finished shard are added to its model's entry of ``by_model``.

    Raises:
        ConfigError: the scheduler cannot be reached, or a shard failed (after the rows of
            the shards that finished are kept).
    """
    from distributed import as_completed

    address = plan.options.scheduler
    if address is None:
        raise ConfigError("run_on_cluster needs a scheduler address")
    payloads = shard_payloads(plan, done)
    queues = {model: deque(shards) for model, shards in payloads.items()}
    limits = {
        target.name: max(
            1,
            target.concurrency(plan.options.concurrency)
            // _shard_concurrency(target.concurrency(plan.options.concurrency)),
        )
        for target in plan.targets
    }
    in_flight = dict.fromkeys(queues, 0)
    owner: dict[str, str] = {}
    failures: list[str] = []
    client = await _connect(address, plan.options.scheduler_timeout_s)
    try:
        pending = as_completed([], with_results=False)  # type: ignore[no-untyped-call]

        def submit_more(model: str) -> None:
            while in_flight[model] < limits[model] and queues[model]:
                future = client.submit(execute_shard, queues[model].popleft(), pure=False)
                owner[future.key] = model
                in_flight[model] += 1
                pending.add(future)  # type: ignore[no-untyped-call]

        for model in queues:
            submit_more(model)
        async for future in pending:
            result = await future
            model = owner.pop(future.key)
            in_flight[model] -= 1
            for row in result["rows"]:
                emit(row)
                progress.advance(bool(row.get("cached")))
            if result["error"] is not None:
                failures.append(result["error"])
                continue
            shard_counts = RunCounters(**result["counters"])
            for _ in range(shard_counts.resumed):
                progress.advance(True)
            by_model.setdefault(model, RunCounters()).add(shard_counts)
            if not failures:
                submit_more(model)
    finally:
        await client.close()
    if failures:
        raise ConfigError(f"{len(failures)} work units failed on the cluster; first: {failures[0]}")
