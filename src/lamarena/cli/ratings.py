"""``lamarena leaderboard``: ratings with their intervals and tests, printed or as JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from lamarena.cli.common import (
    VOTES_FOLDER_HELP,
    CiMethod,
    ClusterBy,
    DbOption,
    GroupBy,
    JsonOption,
    ReplyMode,
    SchedulerOption,
    TieModel,
    VoteFormat,
    Weighting,
    format_number,
    load_battles,
    load_encoded_battles,
)
from lamarena.errors import InsufficientData, InvalidInputError
from lamarena.settings import load_settings

__all__ = ["leaderboard", "register"]


def _parse_controls(control: str | None) -> tuple[str, ...]:
    """``"length,latency"`` -> ``("length", "latency")``, rejecting unknown names."""
    from lamarena.analysis.ranking.style_control import CONTROL_COLUMNS

    if not control:
        return ()
    names = tuple(part.strip() for part in control.split(",") if part.strip())
    unknown = sorted(set(names) - set(CONTROL_COLUMNS))
    if unknown:
        raise InvalidInputError(
            f"--control: unknown control {', '.join(unknown)}; use any of "
            f"{', '.join(CONTROL_COLUMNS)} (comma-separated)"
        )
    return names


_GROUP_TITLES = {
    "mode": {
        "text": "Text-out votes (text replies)",
        "speech": "Speech-out votes (spoken replies)",
    },
    "turns": {depth: f"Votes after {depth} turn(s)" for depth in ("1", "2", "3+")},
}


def leaderboard(
    db: DbOption = None,
    votes: Annotated[
        Path | None,
        typer.Option(
            help=f"Rank the votes in this file instead of the database, or in {VOTES_FOLDER_HELP}."
        ),
    ] = None,
    from_: Annotated[
        VoteFormat | None,
        typer.Option("--from", help="Format of the --votes file (or of a folder's shards)."),
    ] = None,
    scheduler: SchedulerOption = None,
    bootstrap: Annotated[
        int | None, typer.Option(min=0, help="Bootstrap rounds (default 10,000).")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the bootstrap.")] = None,
    min_battles: Annotated[
        int | None, typer.Option(min=0, help="Fewer battles than this: provisional.")
    ] = None,
    control: Annotated[
        str | None,
        typer.Option(
            help="Adjust ratings for reply style, comma-separated: length (characters), latency "
            "(time to first token), ttfab (time to first audio byte) and audio (audio "
            "duration); the last two exist for spoken replies only (use with --mode speech)."
        ),
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
    weights: Annotated[
        Weighting,
        typer.Option(
            help="auto: inverse-probability weights when the battles were drawn with unequal "
            "pair probabilities (serve --sampling active|balanced), else none; ipw; none."
        ),
    ] = Weighting.AUTO,
    by: Annotated[
        GroupBy | None,
        typer.Option(
            help="mode: one leaderboard per reply mode (text-out, speech-out); turns: one per "
            "conversation depth (votes after 1, 2, 3+ turns), side by side."
        ),
    ] = None,
    mode: Annotated[
        ReplyMode | None,
        typer.Option(
            help="Rank only the votes on text replies or on spoken replies. Votes of both modes "
            "are never pooled: with both in the votes, give --mode or --by mode."
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Bradley-Terry ratings with confidence intervals and pairwise tests.

    Only the votes that count are ranked (the arena leaves flagged battles uncounted);
    ``n_battles`` counts the battles ranked. Text-out and speech-out votes are never pooled:
    votes of both modes need ``--mode`` (one of them) or ``--by mode`` (each apart).

    ``--votes`` may name a folder of Parquet or JSONL shards, ranked as one file of their
    records in name order; with ``--scheduler`` each shard is read and checked on that Dask
    cluster (with ``--control`` or ``--by``, each shard's records are read into the battles
    table there).
    """
    from lamarena.analysis.ranking.leaderboard import build_leaderboard
    from lamarena.analysis.ranking.modes import mode_counts, select_mode

    if db is not None and votes is not None:
        raise InvalidInputError("give either --db or --votes, not both")
    if by is GroupBy.MODE and mode is not None:
        raise InvalidInputError(
            "--by mode ranks each mode apart and --mode keeps one: give one of them "
            "(--mode with --by turns ranks one mode's conversation depths)"
        )
    settings = load_settings(
        database_url=db, bootstrap_rounds=bootstrap, seed=seed, min_battles=min_battles
    )
    options: dict[str, Any] = {
        "n_resamples": settings.bootstrap_rounds,
        "seed": settings.seed,
        "min_battles": settings.min_battles,
        "ci": ci.value,
        "holm_head_to_head": holm,
        "cluster": cluster.value,
        "anchor": anchor,
        "ties": ties.value,
        "weights": weights.value,
    }
    if control is None and by is None:
        # the columnar path: no object per vote (style control needs the replies' columns)
        document = _encoded_leaderboard(
            settings,
            votes,
            from_,
            mode,
            include_flagged=include_flagged,
            exclude_flagged=exclude_flagged,
            scheduler=scheduler,
            options=options,
        )
    else:
        battles = load_battles(
            settings,
            votes,
            from_,
            include_flagged=include_flagged,
            exclude_flagged=exclude_flagged,
            scheduler=scheduler,
        )
        if mode is not None:
            _require_mode(mode, len(battles), mode_counts(battles))
            battles = select_mode(battles, mode.value)
        options["control"] = _parse_controls(control)
        if by is not None:
            from lamarena.analysis.ranking.grouped import grouped_leaderboards

            grouped = grouped_leaderboards(battles, by.value, **options)
            if as_json:
                typer.echo(json.dumps(grouped, indent=2))
                return
            for group in grouped["groups"]:
                typer.echo(f"\n{_GROUP_TITLES[by.value][group['group']]}")
                if group["leaderboard"] is None:
                    typer.echo(f"  {group['note']}")
                else:
                    _print_leaderboard(group["leaderboard"])
            return
        document = build_leaderboard(battles, **options).to_dict()
    if as_json:
        typer.echo(json.dumps(document, indent=2))
    else:
        _print_leaderboard(document)


def _require_mode(mode: ReplyMode, n_battles: int, counts: dict[str, int]) -> None:
    """Refuse ``--mode`` when the battles hold none of that mode's votes.

    Raises:
        InsufficientData: there are battles, but none of ``mode``.
    """
    if n_battles and not counts[mode.value]:
        raise InsufficientData(
            f"no {mode.value}-out votes among the {n_battles} battles "
            f"({', '.join(f'{n} {name}-out' for name, n in counts.items())})"
        )


def _encoded_leaderboard(
    settings: Any,
    votes: Path | None,
    from_: VoteFormat | None,
    mode: ReplyMode | None,
    *,
    include_flagged: bool,
    exclude_flagged: bool,
    scheduler: str | None,
    options: dict[str, Any],
) -> dict[str, Any]:
    """The leaderboard document of the votes loaded as integer columns."""
    from lamarena.analysis.encoded import MODE_CODES
    from lamarena.analysis.ranking.leaderboard import build_leaderboard

    encoded = load_encoded_battles(
        settings,
        votes,
        from_,
        include_flagged=include_flagged,
        exclude_flagged=exclude_flagged,
        scheduler=scheduler,
    )
    if mode is not None:
        _require_mode(mode, encoded.n_battles, encoded.mode_counts())
        encoded = encoded.take(encoded.mode == MODE_CODES[mode.value])
    document: dict[str, Any] = build_leaderboard(encoded, **options).to_dict()
    return document


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
    mode = document.get("mode") or "text"
    console.print(f"lamarena leaderboard: {document['n_battles']} battles ({mode}-out votes)")
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
                format_number(row["rating"], ".0f"),
                f"{format_number(row['ci_low'], '.0f')} to {format_number(row['ci_high'], '.0f')}",
                str(row["battles"]),
                format_number(row["win_rate"], ".1%"),
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
                format_number(row["rating"], ".0f"),
                str(row["battles"]),
                format_number(row["win_rate"], ".1%"),
                "; ".join(row.get("provisional_reasons") or []),
            )
        console.print(apart)
    significant = sum(1 for pair in pairs if pair["significant"])
    console.print(
        f"{significant} of {len(pairs)} model pairs differ significantly; --json for all."
    )


def register(app: typer.Typer) -> None:
    """Add ``leaderboard`` to the ``lamarena`` app."""
    app.command()(leaderboard)
