r"""``lamarena static list|run|fetch|verify|table``: the static benchmarks from the command line.

Each command parses its flags, builds settings, calls one function of :mod:`lamarena.bench` and
prints. Errors are :class:`~lamarena.errors.LamarenaError`\\ s, which ``lamarena.cli.main`` turns
into one ``error: ...`` line.
"""

from __future__ import annotations

import asyncio
import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from lamarena.errors import InvalidInputError
from lamarena.settings import load_settings

__all__ = ["static_app"]

static_app = typer.Typer(
    help="Static benchmarks: the study's 20 datasets over 14 tasks.", no_args_is_help=True
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]
HubDirOption = Annotated[
    Path | None,
    typer.Option(
        "--hub-dir",
        help="A local copy of the hub (DIR/OWNER/NAME per dataset); default LAMARENA_HUB_DIR.",
    ),
]


class Decoding(StrEnum):
    """How a static run reads a model's answer."""

    FREE = "free"
    CONSTRAINED = "constrained"


class TableFormat(StrEnum):
    """Formats of ``static table``."""

    MARKDOWN = "markdown"
    CSV = "csv"
    JSON = "json"


def _names(value: str, flag: str) -> list[str]:
    names = [part.strip() for part in value.split(",") if part.strip()]
    if not names:
        raise InvalidInputError(f"{flag} is empty: give a comma-separated list")
    return names


@static_app.command("list")
def static_list(as_json: JsonOption = False) -> None:
    """List the registry's datasets: task, metric, size and hub id."""
    from lamarena.bench.data.registry import load_registry

    rows = load_registry().describe()
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        size = "?" if row["size"] is None else str(row["size"])
        typer.echo(
            f"{row['name']:<22} {row['task']:<12} {row['metric']:<9} {size:>6}  "
            f"{row['hf_id']} [{row['split']}]"
        )


def _summary_document(summary: Any) -> dict[str, Any]:
    from dataclasses import asdict

    return {
        "out": str(summary.out_dir),
        "elapsed_s": summary.elapsed_s,
        "counts": asdict(summary.counters),
        "pedants_unavailable": summary.pedants_unavailable,
        "skipped": summary.skipped,
        "cache": str(summary.cache_path),
        "scores": summary.scores,
    }


def _print_summary(summary: Any) -> None:
    counts = summary.counters
    typer.echo(
        f"{counts.calls} model calls, {counts.cached} from the cache, {counts.resumed} already "
        f"done, {counts.errors} failed; {summary.elapsed_s:.1f} s; results in {summary.out_dir}"
    )
    for entry in summary.scores:
        if entry["score"] is None:
            value = f"unavailable ({entry.get('unavailable', 'no score')})"
        elif entry["metric"] == "wer":
            value = f"{entry['score']:.3f}"
        else:
            value = f"{entry['score']:.1f}"
        interval = ""
        if entry["score"] is not None and entry["ci_low"] is not None:
            spec = ".3f" if entry["metric"] == "wer" else ".1f"
            interval = f"  [{entry['ci_low']:{spec}}, {entry['ci_high']:{spec}}]"
        typer.echo(
            f"{entry['model']:<24} {entry['dataset']:<20} p{entry['prompt_id']} "
            f"{entry['metric']:<9} {value}{interval}  n={entry['n']}"
        )


@static_app.command("run")
def static_run(
    models: Annotated[str, typer.Option(help="Comma-separated model names (models.yaml).")],
    datasets: Annotated[
        str, typer.Option(help="Comma-separated registry names or local folders with task.yaml.")
    ],
    config: Annotated[
        Path | None,
        typer.Option("--config", help="models.yaml (default: the built-in offline models)."),
    ] = None,
    prompts: Annotated[int, typer.Option(min=1, max=3, help="Prompt variants per dataset.")] = 3,
    limit: Annotated[
        int | None, typer.Option(min=1, help="At most this many samples per dataset.")
    ] = None,
    concurrency: Annotated[
        int | None, typer.Option(min=1, help="Concurrent calls per model (default 8).")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Output folder (default: DATA_DIR/static); resumed if it exists."),
    ] = None,
    scheduler: Annotated[
        str | None, typer.Option(help="Dask scheduler address, e.g. tcp://host:8786.")
    ] = None,
    judge: Annotated[
        str | None,
        typer.Option(help="models.yaml model that rates open answers (the llm_judge metric)."),
    ] = None,
    hub_dir: HubDirOption = None,
    decoding: Annotated[
        Decoding,
        typer.Option(
            help="free: parse a label out of the reply; constrained: in-process models score "
            "each label by log-likelihood."
        ),
    ] = Decoding.FREE,
    as_json: JsonOption = False,
) -> None:
    """Evaluate models on datasets; rows go to OUT/samples.jsonl as they finish."""
    from lamarena.bench.run.plan import RunOptions, prepare_run
    from lamarena.bench.run.progress import RichProgress
    from lamarena.bench.run.runner import run_static

    settings = load_settings(
        models_config=config, static_concurrency=concurrency, judge_model=judge, hub_dir=hub_dir
    )
    options = RunOptions(
        out_dir=out or settings.data_dir / "static",
        prompts=prompts,
        limit=limit,
        concurrency=settings.static_concurrency,
        scheduler=scheduler,
        seed=settings.seed,
        decoding=decoding.value,
    )
    plan = prepare_run(
        settings,
        models=_names(models, "--models"),
        datasets=_names(datasets, "--datasets"),
        options=options,
    )
    if plan.pedants_unavailable is not None:
        typer.echo(f"warning: {plan.pedants_unavailable}", err=True)
    try:
        summary = asyncio.run(run_static(plan, progress=RichProgress()))
    except KeyboardInterrupt:
        typer.echo(
            f"interrupted: finished rows are in {options.out_dir / 'samples.jsonl'}; run the same "
            "command again to resume",
            err=True,
        )
        raise typer.Abort() from None
    if as_json:
        typer.echo(json.dumps(_summary_document(summary), indent=2))
    else:
        _print_summary(summary)


def _hub_dir(settings: Any) -> Path:
    if settings.hub_dir is None:
        raise InvalidInputError("give --hub-dir DIR (or set LAMARENA_HUB_DIR): the hub copy")
    return Path(settings.hub_dir)


@static_app.command("fetch")
def static_fetch(
    names: Annotated[list[str], typer.Argument(help="Registry datasets (lamarena static list).")],
    hub_dir: HubDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Download the files these registry datasets read into DIR/OWNER/NAME (needs a hub)."""
    from lamarena.bench.data.fetch import fetch_datasets
    from lamarena.bench.data.registry import load_registry

    settings = load_settings(hub_dir=hub_dir)
    target = _hub_dir(settings)
    wanted = [name for item in names for name in _names(item, "NAMES")]
    fetched = fetch_datasets(wanted, load_registry(), target, endpoint=settings.hub_endpoint)
    if as_json:
        rows = [
            {
                "hf_id": repo.hf_id,
                "folder": str(repo.folder),
                "datasets": repo.datasets,
                "patterns": repo.patterns,
                "files": repo.files,
            }
            for repo in fetched
        ]
        typer.echo(json.dumps(rows, indent=2))
        return
    for repo in fetched:
        what = "everything" if repo.patterns is None else ", ".join(repo.patterns)
        typer.echo(
            f"{repo.hf_id} -> {repo.folder} ({repo.files} files: {what}) for "
            f"{', '.join(repo.datasets)}"
        )


@static_app.command("verify")
def static_verify(
    names: Annotated[
        list[str] | None, typer.Argument(help="Registry datasets (default: all 20).")
    ] = None,
    hub_dir: HubDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Check local hub copies against the registry: ok, or the first problem (exit 1 if any)."""
    from lamarena.bench.data.registry import load_registry
    from lamarena.bench.data.verify import verify_hub

    settings = load_settings(hub_dir=hub_dir)
    target = _hub_dir(settings)
    wanted = [name for item in names or [] for name in _names(item, "NAMES")]
    verdicts = verify_hub(wanted, load_registry(), target, cache_dir=settings.cache_dir)
    if as_json:
        typer.echo(json.dumps([verdict.to_dict() for verdict in verdicts], indent=2))
    else:
        for verdict in verdicts:
            typer.echo(verdict.line())
    if not all(verdict.ok for verdict in verdicts):
        raise typer.Exit(1)


@static_app.command("table")
def static_table(
    out: Annotated[Path, typer.Option(help="The output folder of `static run`.")],
    format_: Annotated[
        TableFormat, typer.Option("--format", help="markdown, csv or json.")
    ] = TableFormat.MARKDOWN,
    as_json: JsonOption = False,
) -> None:
    """The study's Table 1 layout: model x task, mean over datasets and prompt variants."""
    from lamarena.bench.scoring.table import build_table, load_scores, render_csv, render_markdown

    scores, baselines = load_scores(out)
    rows = build_table(scores)
    if as_json or format_ is TableFormat.JSON:
        typer.echo(json.dumps(rows, indent=2))
    elif format_ is TableFormat.CSV:
        typer.echo(render_csv(rows), nl=False)
    else:
        typer.echo(render_markdown(rows, baselines), nl=False)
