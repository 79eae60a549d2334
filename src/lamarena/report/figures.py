"""The report's figures, drawn with plotly from the ``numbers.json`` document only.

Each builder takes the document of :func:`lamarena.report.numbers.compute_study` and returns a
plotly figure, or None when its section is missing (the page then shows the section's note).
Nothing here computes a statistic: every number drawn is one of the document's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import plotly.graph_objects as go  # type: ignore[import-untyped]
from plotly.subplots import make_subplots  # type: ignore[import-untyped]

__all__ = [
    "FIGURES",
    "FigureSpec",
    "build_figures",
    "feedback_figure",
    "kendall_tau_figure",
    "pca_figure",
    "rating_intervals",
    "regression_figure",
    "topic_leaderboard_figure",
    "topic_sunburst",
    "win_rate_heatmap",
]

Document = Mapping[str, Any]
Figure = Any
"""A ``plotly.graph_objects.Figure`` (plotly ships no type information)."""

_HEIGHT = 460
_BLUE = "#2f6db5"
_GREY = "#9aa3ad"
_RED = "#c0392b"


def _layout(figure: Figure, title: str, *, height: int = _HEIGHT) -> Figure:
    figure.update_layout(
        title={"text": title, "x": 0.0, "xanchor": "left"},
        template="plotly_white",
        height=height,
        margin={"l": 70, "r": 30, "t": 60, "b": 70},
        font={"family": "system-ui, sans-serif", "size": 13},
    )
    return figure


def _bounds(
    values: Sequence[float | None], lows: Sequence[float | None], highs: Sequence[float | None]
) -> tuple[list[float], list[float]]:
    """Error bar lengths above and below each value (0 where a bound is unknown)."""
    plus, minus = [], []
    for value, low, high in zip(values, lows, highs, strict=True):
        plus.append(0.0 if value is None or high is None else max(high - value, 0.0))
        minus.append(0.0 if value is None or low is None else max(value - low, 0.0))
    return plus, minus


def topic_sunburst(doc: Document) -> Figure | None:
    """Topics and their sub-topics, sized by their number of queries."""
    topics = doc.get("topics")
    if not topics or not topics.get("topics"):
        return None
    ids, labels, parents, values, hover = [], [], [], [], []
    for topic in topics["topics"]:
        ids.append(topic["id"])
        labels.append(f"{topic['id']}. {topic['label']}")
        parents.append("")
        values.append(topic["count"])
        hover.append("<br>".join(topic["examples"]))
        for sub in topic.get("subtopics") or []:
            ids.append(sub["id"])
            labels.append(sub["label"])
            parents.append(topic["id"])
            values.append(sub["count"])
            hover.append("<br>".join(sub["examples"]))
    figure = go.Figure(
        go.Sunburst(
            ids=ids,
            labels=labels,
            parents=parents,
            values=values,
            branchvalues="total",
            customdata=hover,
            textinfo="label+percent root",
            hovertemplate="%{label}<br>%{value} queries (%{percentRoot:.1%})"
            "<br><i>%{customdata}</i><extra></extra>",
            insidetextorientation="radial",
        )
    )
    return _layout(figure, f"Topics of {topics['n_queries']} spoken queries", height=560)


def win_rate_heatmap(doc: Document) -> Figure | None:
    """Share of head-to-head battles each row model won, * where that record is significant.

    The star is the study's: a paired bootstrap of the pair's own battles, p < 0.05.
    """
    rates = doc.get("win_rates")
    if not rates or len(rates["models"]) < 2:
        return None
    models = rates["models"]
    text = [
        [
            "" if value is None else f"{value:.2f}{'*' if rates['significant'][i][j] else ''}"
            for j, value in enumerate(row)
        ]
        for i, row in enumerate(rates["matrix"])
    ]
    figure = go.Figure(
        go.Heatmap(
            z=rates["matrix"],
            x=models,
            y=models,
            text=text,
            texttemplate="%{text}",
            colorscale="RdBu",
            zmin=0.0,
            zmax=1.0,
            zmid=0.5,
            colorbar={"title": {"text": "win rate"}},
            hovertemplate="%{y} vs %{x}: %{z:.3f}<extra></extra>",
        )
    )
    figure.update_yaxes(autorange="reversed", title_text="model", automargin=True)
    figure.update_xaxes(title_text="opponent", tickangle=-30, automargin=True)
    title = "Win rate of row against column (* p < 0.05, paired bootstrap of the pair's battles)"
    return _layout(figure, title, height=520)


def rating_intervals(doc: Document) -> Figure | None:
    """Bradley-Terry ratings with their intervals; provisional models apart."""
    rows = [row for row in doc["leaderboard"]["models"] if row["rating"] is not None]
    if not rows:
        return None
    figure = go.Figure()
    level = f"{doc['leaderboard'].get('confidence', 0.95):.0%}"
    for provisional, name, colour in ((False, "rated", _BLUE), (True, "provisional", _GREY)):
        chosen = [row for row in rows if row["provisional"] == provisional]
        if not chosen:
            continue
        ratings = [row["rating"] for row in chosen]
        plus, minus = _bounds(
            ratings, [row["ci_low"] for row in chosen], [row["ci_high"] for row in chosen]
        )
        figure.add_trace(
            go.Scatter(
                x=ratings,
                y=[row["model"] for row in chosen],
                mode="markers",
                name=name,
                marker={"size": 11, "color": colour},
                error_x={"type": "data", "array": plus, "arrayminus": minus, "thickness": 2},
                customdata=[[row["battles"], row["win_rate"]] for row in chosen],
                hovertemplate="%{y}: %{x:.0f}<br>%{customdata[0]} battles, win rate "
                "%{customdata[1]:.1%}<extra></extra>",
            )
        )
    figure.update_yaxes(
        autorange="reversed", categoryorder="array", categoryarray=[row["model"] for row in rows]
    )
    figure.update_xaxes(title_text="Elo rating (mean 1000)")
    return _layout(figure, f"Ratings with {level} bootstrap intervals")


def topic_leaderboard_figure(doc: Document) -> Figure | None:
    """Each topic's ratings side by side, provisional ones as open markers."""
    topics = doc.get("topics")
    if not topics or not topics.get("leaderboards"):
        return None
    order = [row["model"] for row in doc["leaderboard"]["models"]]
    figure = go.Figure()
    extent: list[float] = []
    for entry in topics["leaderboards"]:
        board = entry.get("leaderboard")
        if not board:
            continue
        rows = [row for row in board["models"] if row["rating"] is not None]
        if not rows:
            continue
        ratings = [row["rating"] for row in rows]
        plus, minus = _bounds(
            ratings, [row["ci_low"] for row in rows], [row["ci_high"] for row in rows]
        )
        extent += [r - m for r, m in zip(ratings, minus, strict=True)]
        extent += [r + p for r, p in zip(ratings, plus, strict=True)]
        thin = " (thin)" if entry["thin"] else ""
        figure.add_trace(
            go.Scatter(
                x=[row["model"] for row in rows],
                y=ratings,
                mode="markers",
                name=f"{entry['topic']}. {entry['label']}{thin}",
                marker={
                    "size": 9,
                    "symbol": ["circle-open" if row["provisional"] else "circle" for row in rows],
                },
                error_y={"type": "data", "array": plus, "arrayminus": minus},
                hovertemplate="%{x}: %{y:.0f}<extra>" + entry["label"] + "</extra>",
            )
        )
    if not figure.data:
        return None
    figure.update_layout(scattermode="group", legend={"title": {"text": "topic"}})
    figure.update_xaxes(categoryorder="array", categoryarray=order, tickangle=-30, automargin=True)
    pad = 0.05 * (max(extent) - min(extent)) + 10.0
    figure.update_yaxes(
        title_text="Elo rating within the topic", range=[min(extent) - pad, max(extent) + pad]
    )
    return _layout(figure, "Leaderboard per topic (open markers: provisional)", height=520)


def kendall_tau_figure(doc: Document) -> Figure | None:
    """Kendall tau of each benchmark's ranking against the interactive one, with intervals."""
    rows = [row for row in doc.get("kendall_tau") or [] if row.get("tau") is not None]
    if not rows:
        return None
    rows = sorted(rows, key=lambda row: -row["tau"])
    taus = [row["tau"] for row in rows]
    plus, minus = _bounds(taus, [row["ci_low"] for row in rows], [row["ci_high"] for row in rows])
    figure = go.Figure(
        go.Bar(
            x=[row["benchmark"] for row in rows],
            y=taus,
            marker={"color": [_BLUE if tau > 0 else _RED for tau in taus]},
            error_y={"type": "data", "array": plus, "arrayminus": minus},
            customdata=[[row["distance"], row.get("p_value"), row["n_models"]] for row in rows],
            hovertemplate="%{x}: tau %{y:.2f}<br>distance %{customdata[0]:.2f}, p "
            "%{customdata[1]:.3f}, %{customdata[2]} models<extra></extra>",
        )
    )
    figure.update_yaxes(title_text="Kendall tau", range=[-1.05, 1.05])
    figure.update_xaxes(tickangle=-40, automargin=True)
    return _layout(figure, "How well each benchmark predicts the interactive ranking", height=500)


def regression_figure(doc: Document) -> Figure | None:
    """Fixed-effect coefficients of the vote regression with their intervals."""
    regression = doc.get("regression")
    if not regression or not regression.get("coefficients"):
        return None
    rows = regression["coefficients"]
    estimates = [row["estimate"] for row in rows]
    lows = [_bound(row, "ci_low", -1.96) for row in rows]
    highs = [_bound(row, "ci_high", 1.96) for row in rows]
    plus, minus = _bounds(estimates, lows, highs)
    significant = [
        row.get("p_value") is not None and row["p_value"] < 0.05 and row["estimate"] > 0
        for row in rows
    ]
    figure = go.Figure(
        go.Scatter(
            x=estimates,
            y=[row["feature"] for row in rows],
            mode="markers",
            marker={"size": 11, "color": [_BLUE if s else _GREY for s in significant]},
            error_x={"type": "data", "array": plus, "arrayminus": minus},
            customdata=[row.get("p_value") for row in rows],
            hovertemplate="%{y}: %{x:.3f} (p %{customdata:.3f})<extra></extra>",
        )
    )
    figure.add_vline(x=0.0, line={"color": "#555", "dash": "dot"})
    latent = regression.get("scale", "latent") == "latent"
    figure.update_xaxes(
        title_text=(
            "effect of the benchmark difference on the log-odds that A wins"
            if latent
            else "effect of the benchmark difference on P(A wins)"
        )
    )
    r2 = (
        f"R² marginal {_fmt(regression.get('r2_marginal'))}, "
        f"conditional {_fmt(regression.get('r2_conditional'))}, "
        f"{'latent' if latent else 'observed'} scale"
    )
    return _layout(figure, f"Votes regressed on benchmark differences ({r2})")


def _bound(row: Mapping[str, Any], key: str, z: float) -> float | None:
    """The row's interval bound, or the Wald bound ``estimate + z * std_error`` without one."""
    if row.get(key) is not None:
        return float(row[key])
    if row.get("estimate") is None or row.get("std_error") is None:
        return None
    return float(row["estimate"] + z * row["std_error"])


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def pca_figure(doc: Document) -> Figure | None:
    """Variance explained per component, and the models on the first two components."""
    pca = doc.get("pca")
    if not pca or not pca.get("explained_variance_ratio"):
        return None
    ratios = pca["explained_variance_ratio"]
    names = [f"PC{i + 1}" for i in range(len(ratios))]
    cumulative = [sum(ratios[: i + 1]) for i in range(len(ratios))]
    scores = pca.get("scores") or {}
    two = bool(scores) and all(len(v) >= 2 for v in scores.values())
    figure = make_subplots(
        rows=1,
        cols=2 if two else 1,
        subplot_titles=("Explained variance", "Models on PC1 and PC2") if two else None,
    )
    figure.add_trace(go.Bar(x=names, y=ratios, name="per component", marker_color=_BLUE), 1, 1)
    figure.add_trace(
        go.Scatter(x=names, y=cumulative, name="cumulative", mode="lines+markers"), 1, 1
    )
    figure.update_yaxes(title_text="share of variance", range=[0, 1.05], row=1, col=1)
    if two:
        figure.add_trace(
            go.Scatter(
                x=[v[0] for v in scores.values()],
                y=[v[1] for v in scores.values()],
                text=list(scores),
                mode="markers+text",
                textposition="top center",
                name="models",
                marker={"size": 10, "color": _RED},
            ),
            1,
            2,
        )
        figure.update_xaxes(title_text=f"PC1 ({ratios[0]:.0%})", row=1, col=2)
        figure.update_yaxes(title_text=f"PC2 ({ratios[1]:.0%})", row=1, col=2)
    title = "Principal components of the standardised static scores"
    raw = pca.get("raw") or {}
    if pca.get("components_for_95") and raw.get("components_for_95"):
        title += (
            f" ({pca['components_for_95']} explain 95%; of the raw scores, "
            f"{raw['components_for_95']})"
        )
    return _layout(figure, title, height=500)


def feedback_figure(doc: Document) -> Figure | None:
    """Reasons per theme, stacked by the model the voter chose."""
    feedback = doc.get("feedback")
    if not feedback or not feedback.get("themes"):
        return None
    themes = feedback["themes"]
    winners = sorted({w for theme in themes for w in theme["by_winner"]})
    labels = [f"{theme['id']}. {theme['label']}" for theme in themes]
    figure = go.Figure(
        [
            go.Bar(
                name=winner,
                x=labels,
                y=[theme["by_winner"].get(winner, 0) for theme in themes],
                hovertemplate="%{x}<br>" + winner + ": %{y}<extra></extra>",
            )
            for winner in winners
        ]
    )
    figure.update_layout(barmode="stack", legend={"title": {"text": "vote went to"}})
    figure.update_yaxes(title_text="reasons")
    figure.update_xaxes(tickangle=-20)
    return _layout(figure, f"Themes of {feedback['n_feedback']} vote reasons", height=500)


@dataclass(frozen=True)
class FigureSpec:
    """One figure of the page.

    Attributes:
        id: its element id.
        section: the ``numbers.json`` key it draws (its note shows when it is missing).
        build: the builder.
    """

    id: str
    section: str
    build: Callable[[Document], Figure | None]


FIGURES: tuple[FigureSpec, ...] = (
    FigureSpec("fig-ratings", "leaderboard", rating_intervals),
    FigureSpec("fig-win-rates", "leaderboard", win_rate_heatmap),
    FigureSpec("fig-topics", "topics", topic_sunburst),
    FigureSpec("fig-topic-leaderboards", "topics", topic_leaderboard_figure),
    FigureSpec("fig-kendall-tau", "kendall_tau", kendall_tau_figure),
    FigureSpec("fig-regression", "regression", regression_figure),
    FigureSpec("fig-pca", "pca", pca_figure),
    FigureSpec("fig-feedback", "feedback", feedback_figure),
)
"""Every figure, in page order."""


def build_figures(doc: Document) -> dict[str, Figure]:
    """The figures the document supports, by element id (missing sections left out)."""
    out: dict[str, Figure] = {}
    for spec in FIGURES:
        figure = spec.build(doc)
        if figure is not None:
            out[spec.id] = figure
    return out
