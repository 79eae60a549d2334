"""``lamarena votes import|export|audit|check-counts`` and ``lamarena battles prune``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from lamarena.cli.common import (
    DbOption,
    JsonOption,
    VoteFormat,
    format_number,
    open_store,
)
from lamarena.settings import load_settings

__all__ = ["battles_app", "votes_app"]


votes_app = typer.Typer(help="Import, export and audit battle votes.", no_args_is_help=True)
battles_app = typer.Typer(help="Maintain the stored battles.", no_args_is_help=True)


@votes_app.command("import")
def votes_import(
    file: Annotated[Path, typer.Argument(help="The votes file to import.")],
    from_: Annotated[VoteFormat, typer.Option("--from", help="Format of the file.")],
    db: DbOption = None,
) -> None:
    """Import a votes file into the store, all or nothing."""
    from lamarena.store import import_votes

    settings = load_settings(database_url=db)
    engine = open_store(settings)
    try:
        count = import_votes(engine, file, from_.value)
    finally:
        engine.dispose()
    typer.echo(f"imported {count} battles from {file}")


@votes_app.command("export")
def votes_export(
    out: Annotated[Path, typer.Argument(help="OUT.jsonl or OUT.parquet.")],
    db: DbOption = None,
    with_audio: Annotated[
        Path | None,
        typer.Option(
            help="Also copy the voted battles' audio into this folder, each file named by the "
            "sha256 the records carry: spoken replies (<sha256>.wav) and queries kept with "
            "consent.",
        ),
    ] = None,
) -> None:
    """Export every stored battle to JSONL or Parquet (and, with --with-audio, its audio)."""
    from lamarena.store import export_audio, export_votes

    settings = load_settings(database_url=db)
    engine = open_store(settings)
    try:
        count = export_votes(engine, out)
        audio = None if with_audio is None else export_audio(engine, settings.data_dir, with_audio)
    finally:
        engine.dispose()
    typer.echo(f"exported {count} battles to {out}")
    if audio is not None:
        typer.echo(
            f"copied {audio.reply_files} reply and {audio.query_files} query audio files to "
            f"{with_audio}" + (f"; {audio.missing} were no longer on disk" if audio.missing else "")
        )


@votes_app.command("audit")
def votes_audit(db: DbOption = None, as_json: JsonOption = False) -> None:
    """Voter signals per session and per address, and the flags they raise."""
    from lamarena.store import audit_votes

    settings = load_settings(database_url=db)
    engine = open_store(settings)
    try:
        audit = audit_votes(engine)
    finally:
        engine.dispose()
    document = audit.to_dict()
    if as_json:
        typer.echo(json.dumps(document, indent=2))
        return
    _print_audit(document)


@votes_app.command("check-counts")
def votes_check_counts(
    db: DbOption = None,
    repair: Annotated[
        bool,
        typer.Option("--repair", help="Rewrite the vote counts from the votes if any differ."),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Compare the vote counts kept as votes arrive with a recount (exit 1 if they differ)."""
    from lamarena.store import check_counts

    settings = load_settings(database_url=db)
    engine = open_store(settings)
    try:
        check = check_counts(engine, repair=repair)
    finally:
        engine.dispose()
    if as_json:
        typer.echo(json.dumps(check.to_dict(), indent=2))
    else:
        _print_counts_check(check.to_dict())
    if check.drift and not check.repaired:
        raise typer.Exit(1)


_DRIFT_SHOWN = 20  # rows that differ listed in the text output


def _print_counts_check(document: dict[str, Any]) -> None:
    """Render a counts check: the rows checked, then each row that differs (plain text)."""
    drift = document["drift"]
    typer.echo(f"checked {document['rows_checked']} vote count rows: {len(drift)} differ")
    for entry in drift[:_DRIFT_SHOWN]:
        key = " ".join(f"{name}={value}" for name, value in entry["key"].items())
        typer.echo(f"{entry['table']} {key}")
        for side in ("stored", "recounted"):
            values = entry[side]
            shown = "no row" if values is None else _counts_text(values)
            typer.echo(f"  {side:<9} {shown}")
    if len(drift) > _DRIFT_SHOWN:
        typer.echo(f"... and {len(drift) - _DRIFT_SHOWN} more (--json lists them all)")
    if document["repaired"]:
        typer.echo("repaired: both tables were rewritten from the votes")
    elif drift:
        typer.echo("run with --repair to rewrite them from the votes")


def _counts_text(values: dict[str, Any]) -> str:
    return " ".join(
        f"{name}={value if isinstance(value, int) else format_number(value, '.6g')}"
        for name, value in values.items()
    )


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
                f"{format_number(row['median_seconds_after_replies'], '.1f'):>8} {side:>6} "
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
    engine = open_store(settings)
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
