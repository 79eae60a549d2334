"""The ``lamarena`` command line: parse, build settings, call one function, print.

Every command exits 0 on success and 1 with a single ``error: ...`` line on bad input (set
``LAMARENA_DEBUG=1`` for the traceback). ``--json`` output is one JSON document on stdout.
"""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from lamarena.cli_analyze import register_analyze
from lamarena.cli_static import static_app
from lamarena.errors import InvalidInputError, LamarenaError, ModelError
from lamarena.settings import Settings, load_settings

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["app", "main"]

app = typer.Typer(
    name="lamarena",
    help="Evaluate Large Audio Models: a voting arena, static benchmarks, and their gap.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
votes_app = typer.Typer(help="Import, export and audit battle votes.", no_args_is_help=True)
app.add_typer(votes_app, name="votes")
battles_app = typer.Typer(help="Maintain the stored battles.", no_args_is_help=True)
app.add_typer(battles_app, name="battles")
models_app = typer.Typer(help="List and probe the configured models.", no_args_is_help=True)
app.add_typer(models_app, name="models")
register_analyze(app)
app.add_typer(static_app, name="static")


class VoteFormat(StrEnum):
    """Formats ``votes import`` and ``leaderboard --votes`` read."""

    TALK_ARENA = "talk-arena"
    FASTCHAT = "fastchat"
    JSONL = "jsonl"
    PARQUET = "parquet"


class CiMethod(StrEnum):
    """How the leaderboard's confidence intervals are computed."""

    BOOTSTRAP = "bootstrap"
    ANALYTIC = "analytic"


class TieModel(StrEnum):
    """How the leaderboard's fit treats ties and both-bad votes."""

    HALF = "half"
    DAVIDSON = "davidson"


class ClusterBy(StrEnum):
    """Which votes belong together (resampled whole, summed together in the sandwich)."""

    AUTO = "auto"
    PARTICIPANT = "participant"
    SESSION = "session"
    NONE = "none"


DbOption = Annotated[
    str | None,
    typer.Option("--db", help="SQLAlchemy URL (default: LAMARENA_DATABASE_URL or sqlite)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]
ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", help="models.yaml (default: the built-in offline models)."),
]


def _open_store(settings: Settings) -> Any:
    """Create the engine for the configured database and bring its schema to head."""
    from lamarena.store import make_engine, migrate_to_head

    engine = make_engine(settings.database_url)
    migrate_to_head(engine)
    return engine


def _load_battles(
    settings: Settings,
    votes: Path | None,
    fmt: VoteFormat | None,
    *,
    include_flagged: bool = False,
    exclude_flagged: bool = False,
) -> pd.DataFrame:
    """Battles from a votes file (when given) or from the store.

    Battles whose vote does not count (``counted`` false) are left out unless
    ``include_flagged``; ``exclude_flagged`` also leaves out the votes of the sessions and
    addresses ``votes audit`` flags, which needs the store's voter signals.
    """
    if include_flagged and exclude_flagged:
        raise InvalidInputError("give --include-flagged or --exclude-flagged, not both")
    if votes is not None:
        from lamarena.store import read_battle_records, records_to_frame

        if fmt is None:
            raise InvalidInputError("--votes needs --from talk-arena|fastchat|jsonl|parquet")
        if exclude_flagged:
            raise InvalidInputError(
                "--exclude-flagged needs the voter signals stored in the database (votes audit); "
                "a --votes file has none: rank the database with --db instead"
            )
        frame = records_to_frame(read_battle_records(votes, fmt.value))
        if not include_flagged:
            frame = frame[frame["counted"]].reset_index(drop=True)
        return frame
    engine = _open_store(settings)
    try:
        from lamarena.store import load_battles_frame

        return load_battles_frame(
            engine, include_uncounted=include_flagged, exclude_flagged=exclude_flagged
        )
    finally:
        engine.dispose()


def _parse_controls(control: str | None) -> tuple[str, ...]:
    """``"length,latency"`` -> ``("length", "latency")``, rejecting unknown names."""
    if not control:
        return ()
    names = tuple(part.strip() for part in control.split(",") if part.strip())
    unknown = sorted(set(names) - {"length", "latency"})
    if unknown:
        raise InvalidInputError(
            f"--control: unknown control {', '.join(unknown)}; use length, latency or both"
        )
    return names


@app.command()
def leaderboard(
    db: DbOption = None,
    votes: Annotated[
        Path | None, typer.Option(help="Rank the votes in this file instead of the database.")
    ] = None,
    from_: Annotated[
        VoteFormat | None, typer.Option("--from", help="Format of the --votes file.")
    ] = None,
    bootstrap: Annotated[
        int | None, typer.Option(min=0, help="Bootstrap rounds (default 10,000).")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the bootstrap.")] = None,
    min_battles: Annotated[
        int | None, typer.Option(min=0, help="Fewer battles than this: provisional.")
    ] = None,
    control: Annotated[
        str | None, typer.Option(help="Adjust ratings for reply style: length,latency.")
    ] = None,
    ci: Annotated[CiMethod, typer.Option(help="Confidence interval method.")] = CiMethod.BOOTSTRAP,
    include_flagged: Annotated[
        bool,
        typer.Option(
            "--include-flagged", help="Also rank the votes the arena did not count (flagged)."
        ),
    ] = False,
    exclude_flagged: Annotated[
        bool,
        typer.Option(
            "--exclude-flagged",
            help="Also leave out the votes of sessions and addresses `votes audit` flags.",
        ),
    ] = False,
    holm: Annotated[
        bool,
        typer.Option(
            "--holm",
            help="Holm-adjust the head-to-head tests across pairs (the study did not).",
        ),
    ] = False,
    cluster: Annotated[
        ClusterBy,
        typer.Option(
            help="Votes that belong together: auto (participants where ids exist, else "
            "sessions), participant, session or none (single battles)."
        ),
    ] = ClusterBy.AUTO,
    anchor: Annotated[
        str | None,
        typer.Option(help="Pin this model at 1000 (a scale that stays put as models come and go)."),
    ] = None,
    ties: Annotated[
        TieModel,
        typer.Option(
            help="half: a tie is half a win each way (the study); davidson: ties get their own "
            "parameter (Bradley-Terry-Davidson, analytic intervals)."
        ),
    ] = TieModel.HALF,
    as_json: JsonOption = False,
) -> None:
    """Bradley-Terry ratings with confidence intervals and pairwise tests.

    Only the votes that count are ranked (the arena leaves flagged battles uncounted);
    ``n_battles`` counts the battles ranked.
    """
    from lamarena.analysis.ranking.leaderboard import build_leaderboard

    if db is not None and votes is not None:
        raise InvalidInputError("give either --db or --votes, not both")
    settings = load_settings(
        database_url=db, bootstrap_rounds=bootstrap, seed=seed, min_battles=min_battles
    )
    battles = _load_battles(
        settings,
        votes,
        from_,
        include_flagged=include_flagged,
        exclude_flagged=exclude_flagged,
    )
    result = build_leaderboard(
        battles,
        n_resamples=settings.bootstrap_rounds,
        seed=settings.seed,
        min_battles=settings.min_battles,
        control=_parse_controls(control),
        ci=ci.value,
        holm_head_to_head=holm,
        cluster=cluster.value,
        anchor=anchor,
        ties=ties.value,
    )
    document = result.to_dict()
    if as_json:
        typer.echo(json.dumps(document, indent=2))
        return
    _print_leaderboard(document)


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _gap_to_next(pairs: list[dict[str, Any]], model: str, following: str) -> str:
    """The Holm-adjusted p-value of ``model`` against the next model down, starred if real."""
    for pair in pairs:
        if {pair["model_a"], pair["model_b"]} == {model, following}:
            if pair["p_holm"] is None:  # a provisional model: outside Holm's family
                return f"p={pair['p_value']:.3g} (unadjusted)"
            star = " *" if pair["significant"] else ""
            return f"p={pair['p_holm']:.3g}{star}"
    return "-"


def _print_leaderboard(document: dict[str, Any]) -> None:
    """Render the leaderboard document: ranked models, then provisional ones apart."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    rows = document["models"]
    pairs = document.get("pairwise") or []
    ranked = [row for row in rows if not row["provisional"]]
    provisional = [row for row in rows if row["provisional"]]
    level = f"{document.get('confidence', 0.95):.0%}"
    console.print(f"lamarena leaderboard: {document['n_battles']} battles")
    if ranked:
        table = Table()
        table.add_column("#", justify="right")
        table.add_column("model")
        table.add_column("rating", justify="right")
        table.add_column(f"{level} CI", justify="right")
        table.add_column("battles", justify="right")
        table.add_column("win rate", justify="right")
        table.add_column("vs next", justify="right")
        for rank, row in enumerate(ranked, start=1):
            following = ranked[rank]["model"] if rank < len(ranked) else None
            table.add_row(
                str(rank),
                row["model"],
                _fmt(row["rating"], ".0f"),
                f"{_fmt(row['ci_low'], '.0f')} to {_fmt(row['ci_high'], '.0f')}",
                str(row["battles"]),
                _fmt(row["win_rate"], ".1%"),
                _gap_to_next(pairs, row["model"], following) if following else "",
            )
        console.print(table)
        console.print(
            "vs next: Holm-adjusted p-value of the gap to the model below; * = significant at 0.05."
        )
    else:
        console.print(
            "No model has a firm rating yet: each has too few battles or no finite rating."
        )
    if provisional:
        console.print("Provisional (not ranked):")
        apart = Table()
        for column in ("model", "rating", "battles", "win rate", "why"):
            apart.add_column(column)
        for row in provisional:
            apart.add_row(
                row["model"],
                _fmt(row["rating"], ".0f"),
                str(row["battles"]),
                _fmt(row["win_rate"], ".1%"),
                "; ".join(row.get("provisional_reasons") or []),
            )
        console.print(apart)
    significant = sum(1 for pair in pairs if pair["significant"])
    console.print(
        f"{significant} of {len(pairs)} model pairs differ significantly; --json for all."
    )


class Sampling(StrEnum):
    """How the arena draws the two models of a battle."""

    UNIFORM = "uniform"
    BALANCED = "balanced"
    ACTIVE = "active"


@app.command()
def simulate(
    models: Annotated[
        str, typer.Option(help="How many models (N) or their names (NAME,NAME,...).")
    ],
    votes: Annotated[int, typer.Option(min=1, help="How many battles to draw.")],
    out: Annotated[Path, typer.Option(help="Output JSONL file.")],
    seed: Annotated[int, typer.Option(help="Seed for strengths and outcomes.")] = 0,
    study: Annotated[
        bool,
        typer.Option(
            "--study",
            help="As the study ran it: participants casting 10 votes each on one pair, with a "
            "preference of their own (sd 0.8 log-odds); query transcripts and vote reasons.",
        ),
    ] = False,
    tie_rate: Annotated[float, typer.Option(min=0.0, max=1.0)] = 0.1,
    length_effect: Annotated[
        float, typer.Option(help="Elo points gained by the longer reply (style bias).")
    ] = 0.0,
    latency_effect: Annotated[
        float, typer.Option(help="Elo points lost by the slower first token (style bias).")
    ] = 0.0,
    sampling: Annotated[
        Sampling,
        typer.Option(
            help="How pairs are drawn, as serve --sampling (the adaptive ones refit every 50 "
            "votes); each battle records its pair's probability."
        ),
    ] = Sampling.UNIFORM,
    as_json: JsonOption = False,
) -> None:
    """Draw battles from known strengths and write them as battle-record JSONL."""
    from lamarena.simulation import parse_strengths, simulate_battles
    from lamarena.store import records_from_frame, write_battle_records

    if out.suffix != ".jsonl":
        raise InvalidInputError(f"--out {out}: simulated votes are written as .jsonl")
    strengths = parse_strengths(models, seed=seed)
    battles = simulate_battles(
        strengths,
        votes,
        seed=seed,
        tie_rate=tie_rate,
        length_effect=length_effect,
        latency_effect=latency_effect,
        study=study,
        feedback=study,
        votes_per_participant=STUDY_VOTES_PER_PARTICIPANT if study else None,
        participant_sd=STUDY_PARTICIPANT_SD if study else 0.0,
        sampling=sampling.value,
    )
    written = write_battle_records(records_from_frame(battles), out)
    summary = {
        "out": str(out),
        "battles": written,
        "strengths": dict(strengths),
        "sampling": sampling.value,
    }
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
    else:
        typer.echo(f"wrote {written} simulated battles among {len(strengths)} models to {out}")


STUDY_VOTES_PER_PARTICIPANT = 10
"""Votes each simulated participant casts with ``simulate --study`` (the study's design)."""
STUDY_PARTICIPANT_SD = 0.8
"""Standard deviation of a simulated participant's own preference (log-odds)."""


@app.command()
def serve(
    config: ConfigOption = None,
    db: DbOption = None,
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(min=0, max=65535, help="Port to listen on.")] = None,
    workers: Annotated[
        int | None, typer.Option(min=1, help="Worker processes (use PostgreSQL for >1).")
    ] = None,
    sampling: Annotated[
        Sampling | None,
        typer.Option(
            help="uniform, balanced (favour rarely seen pairs), or active (votes where they "
            "sharpen the top of the ranking; every pair keeps a floor; each battle records its "
            "pair's probability)."
        ),
    ] = None,
    completion_code: Annotated[
        str | None, typer.Option(help="Code a study participant gets after enough votes.")
    ] = None,
    completion_votes: Annotated[
        int | None, typer.Option(min=0, help="Votes that earn the completion code.")
    ] = None,
    equal_pace: Annotated[
        bool | None,
        typer.Option(
            "--equal-pace/--free-pace",
            help="Show both replies at one pace once both have started (hides speed).",
        ),
    ] = None,
    forwarded_allow_ips: Annotated[
        str | None,
        typer.Option(
            help="Proxy addresses (comma-separated) trusted to name the client in "
            "X-Forwarded-For; default none."
        ),
    ] = None,
) -> None:
    """Run the web arena (SQLite and the built-in offline models by default)."""
    from lamarena.arena import run

    settings = load_settings(
        models_config=config,
        database_url=db,
        host=host,
        port=port,
        workers=workers,
        sampling=sampling.value if sampling else None,
        completion_code=completion_code,
        completion_votes=completion_votes,
        equal_pace=equal_pace,
        forwarded_allow_ips=forwarded_allow_ips,
    )
    run(settings)


@models_app.command("list")
def models_list(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """List the models of models.yaml, or the built-in offline models."""
    from lamarena.models.registry import model_entries

    entries = model_entries(load_settings(models_config=config))
    rows = [entry.describe() for entry in entries]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        label = "offline" if row["offline"] else "remote"
        typer.echo(f"{row['name']:<28} {row['kind']:<9} {label:<8} {row['model']}")
        if row.get("description"):
            typer.echo(f"{'':<28} {row['description']}")


@models_app.command("check")
def models_check(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Ask every model a short spoken question and report whether and how fast it answers."""
    import asyncio

    from lamarena.models.registry import check_models

    settings = load_settings(models_config=config)
    results = asyncio.run(check_models(settings))
    if as_json:
        typer.echo(json.dumps(results, indent=2))
    else:
        for row in results:
            if row["ok"]:
                typer.echo(
                    f"{row['name']:<28} ok    ttft {row['ttft_s']:.2f} s  total "
                    f"{row['total_s']:.2f} s  {row['reply']!r}"
                )
            else:
                typer.echo(f"{row['name']:<28} FAIL  {row['error']}")
    if not all(row["ok"] for row in results):
        raise typer.Exit(1)


@app.command()
def ask(
    model: Annotated[str, typer.Argument(help="A model name (see `lamarena models list`).")],
    audio: Annotated[Path, typer.Argument(help="The spoken query: wav, flac, ogg, mp3, webm.")],
    config: ConfigOption = None,
    prompt: Annotated[
        str | None, typer.Option(help="Text sent with the audio (default: the model's prompt).")
    ] = None,
) -> None:
    """Stream one model's reply to a recorded query; timings go to stderr."""
    import asyncio

    from lamarena.audio import AudioLimits, load_audio
    from lamarena.models.registry import ask_model

    settings = load_settings(models_config=config)
    clip = load_audio(audio, limits=AudioLimits(max_duration_s=None, max_bytes=None))

    def show(delta: str) -> None:
        typer.echo(delta, nl=False)

    reply = asyncio.run(ask_model(settings, model, clip, prompt=prompt, on_delta=show))
    typer.echo("")
    if reply.transcript is not None:
        typer.echo(f"transcript: {reply.transcript}", err=True)
    ttft = "-" if reply.ttft_s is None else f"{reply.ttft_s:.2f} s"
    typer.echo(f"ttft {ttft}, total {reply.total_s:.2f} s, {reply.chars} chars", err=True)
    if reply.error is not None:
        raise ModelError(model, reply.error.removeprefix(f"model '{model}': "))


@votes_app.command("import")
def votes_import(
    file: Annotated[Path, typer.Argument(help="The votes file to import.")],
    from_: Annotated[VoteFormat, typer.Option("--from", help="Format of the file.")],
    db: DbOption = None,
) -> None:
    """Import a votes file into the store, all or nothing."""
    from lamarena.store import import_votes

    settings = load_settings(database_url=db)
    engine = _open_store(settings)
    try:
        count = import_votes(engine, file, from_.value)
    finally:
        engine.dispose()
    typer.echo(f"imported {count} battles from {file}")


@votes_app.command("export")
def votes_export(
    out: Annotated[Path, typer.Argument(help="OUT.jsonl or OUT.parquet.")],
    db: DbOption = None,
) -> None:
    """Export every stored battle to JSONL or Parquet."""
    from lamarena.store import export_votes

    settings = load_settings(database_url=db)
    engine = _open_store(settings)
    try:
        count = export_votes(engine, out)
    finally:
        engine.dispose()
    typer.echo(f"exported {count} battles to {out}")


@votes_app.command("audit")
def votes_audit(db: DbOption = None, as_json: JsonOption = False) -> None:
    """Voter signals per session and per address, and the flags they raise."""
    from lamarena.store import audit_votes

    settings = load_settings(database_url=db)
    engine = _open_store(settings)
    try:
        audit = audit_votes(engine)
    finally:
        engine.dispose()
    document = audit.to_dict()
    if as_json:
        typer.echo(json.dumps(document, indent=2))
        return
    _print_audit(document)


_ADDRESS_SHOWN = 16  # hex digits of an address hash in the text table


def _print_audit(document: dict[str, Any]) -> None:
    """Render the audit document: a table of sessions, then one of addresses (plain text)."""
    limits = document["thresholds"]
    for kind, title in (("session", "sessions"), ("address", "addresses")):
        rows = document[title]
        flagged = sum(1 for row in rows if row["flags"])
        typer.echo(f"{len(rows)} {title}, {flagged} flagged")
        if not rows:
            continue
        shown = _ADDRESS_SHOWN if kind == "address" else None
        keys = [row[kind][:shown] for row in rows]
        width = max(len(kind), *map(len, keys))
        header = f"{kind:<{width}} {'votes':>6} {'battles':>7} {'median s':>8} {'side':>6}"
        header += f" {'dup audio':>9} {'uncounted':>9}"
        if kind == "address":
            header += f" {'sessions/24h':>12}"
        typer.echo(header + "  flags")
        for key, row in zip(keys, rows, strict=True):
            side = "-" if row["side"] is None else f"{row['side']} {row['side_share']:.0%}"
            line = (
                f"{key:<{width}} {row['votes']:>6} {row['battles']:>7} "
                f"{_fmt(row['median_seconds_after_replies'], '.1f'):>8} {side:>6} "
                f"{row['duplicate_audio']:>9} {row['uncounted']:>9}"
            )
            if kind == "address":
                line += f" {row['sessions_per_day']:>12}"
            typer.echo(f"{line}  {', '.join(row['flags'])}".rstrip())
    typer.echo(
        f"fast: median under {limits['fast_median_s']:g} s over at least "
        f"{limits['fast_min_votes']} timed votes; one_sided: at least "
        f"{limits['one_sided_share']:.0%} for one side over at least "
        f"{limits['one_sided_min_votes']} votes; many_sessions: more than "
        f"{limits['many_sessions_per_day']} sessions within 24 h."
    )
    typer.echo(f"leaderboard --exclude-flagged leaves out {document['flagged']['votes']} votes.")


@battles_app.command("prune")
def battles_prune(
    older_than: Annotated[
        str,
        typer.Option(
            "--older-than", help="Age of what goes: 7d (days), 24h (hours) or 90m (minutes)."
        ),
    ],
    db: DbOption = None,
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", help="Where kept audio lives (default: LAMARENA_DATA_DIR)."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Report what would go; delete nothing.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Delete unvoted battles older than --older-than, their replies and audio, and old events."""
    from lamarena.store import parse_duration, prune_battles

    age = parse_duration(older_than)
    settings = load_settings(database_url=db, data_dir=data_dir)
    engine = _open_store(settings)
    try:
        report = prune_battles(engine, age, settings.data_dir, dry_run=dry_run)
    finally:
        engine.dispose()
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
        return
    verb = "would remove" if dry_run else "removed"
    typer.echo(
        f"{verb} {report.battles} unvoted battles created before {report.cutoff:%Y-%m-%d %H:%M} "
        f"UTC ({report.replies} replies), {report.audio_files} kept audio files "
        f"({report.audio_bytes} bytes) and {report.client_events} client events"
    )
    if report.audio_missing:
        typer.echo(f"{report.audio_missing} kept audio files were already gone")
    if report.audio_outside:
        typer.echo(
            f"{report.audio_outside} kept audio files lie outside {settings.data_dir}: left "
            "in place"
        )


def _debug_requested() -> bool:
    """Whether ``LAMARENA_DEBUG`` asks for tracebacks; a broken environment means no."""
    try:
        return load_settings().debug
    except LamarenaError:
        return False


def main() -> None:
    """Run the CLI: usage errors and lamarena errors become one ``error:`` line on stderr.

    Exit status: 0 on success, 1 for a lamarena error (bad data, bad file, bad settings,
    database unreachable), 2 for a usage error (unknown option, missing argument).
    """
    debug = _debug_requested()
    try:
        status = app(standalone_mode=False)
    except typer.TyperException as exc:
        message = exc.format_message()
        if type(exc).__name__ == "NoArgsIsHelpError":
            # The "error" is the help text, which the rich formatter may already have printed.
            if message.strip():
                typer.echo(message, err=True)
        else:
            typer.echo(f"error: {' '.join(message.split())}", err=True)
        sys.exit(exc.exit_code)
    except typer.Abort:
        typer.echo("aborted", err=True)
        sys.exit(130)
    except LamarenaError as exc:
        if debug:
            raise
        typer.echo(f"error: {' '.join(str(exc).split())}", err=True)
        sys.exit(1)
    except OSError as exc:
        if debug:
            raise
        where = f": {exc.filename}" if exc.filename else ""
        typer.echo(f"error: {exc.strerror or exc}{where}", err=True)
        sys.exit(1)
    sys.exit(status if isinstance(status, int) else 0)
