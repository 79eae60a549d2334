"""The report page: one self-contained HTML file (plotly.js inlined) beside ``numbers.json``.

The page is rendered with Jinja2 from ``templates/report.html``; the figures travel as plotly
JSON in one ``<script type="application/json">`` element and are drawn by the inlined plotly.js,
so the file opens anywhere with no network. When every figure has been drawn the page sets
``data-rendered`` (the number of figures) on ``<body>``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from lamarena.errors import InvalidInputError
from lamarena.report.figures import FIGURES, build_figures

__all__ = ["ReportFiles", "render_report", "write_report"]

_NOTED_ELSEWHERE = {"topics", "feedback"}
"""Sections whose missing-data note the template shows itself."""


@lru_cache(maxsize=1)
def _plotly_js() -> tuple[str, str]:
    """plotly.js (minified) and its version, to inline in the page."""
    import plotly  # type: ignore[import-untyped]
    import plotly.offline  # type: ignore[import-untyped]

    script = str(plotly.offline.get_plotlyjs())
    return script.replace("</script", "<\\/script"), str(plotly.__version__)


@lru_cache(maxsize=1)
def _template() -> jinja2.Template:
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("lamarena.report", "templates"),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    return environment.get_template("report.html")


def _number(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def render_report(doc: Mapping[str, Any]) -> str:
    """The report page for a ``numbers.json`` document.

    Args:
        doc: from :func:`lamarena.report.numbers.compute_study`.

    Returns:
        The HTML text (plotly.js inlined; no external reference).
    """
    from lamarena import __version__

    figures = build_figures(doc)
    sections = {spec.id: spec.section for spec in FIGURES}
    notes: Mapping[str, str] = doc.get("notes") or {}

    def figure(figure_id: str) -> Markup:
        if figure_id in figures:
            return Markup('<div class="figure" id="{}"></div>').format(figure_id)
        section = sections[figure_id]
        if section in notes and section not in _NOTED_ELSEWHERE:
            return Markup('<p class="note">{}</p>').format(notes[section])
        return Markup("")

    payload = [
        {"id": figure_id, "figure": json.loads(figure.to_json())}
        for figure_id, figure in figures.items()
    ]
    figures_json = json.dumps(payload, allow_nan=False, separators=(",", ":"))
    script, plotly_version = _plotly_js()
    return _template().render(
        doc=doc,
        figure=figure,
        num=_number,
        figures_json=_script_safe(figures_json),
        plotly_js=script,
        plotly_version=plotly_version,
        version=__version__,
    )


def _script_safe(text: str) -> str:
    """JSON that can sit inside a ``<script>`` element whatever strings it holds.

    Escaping ``</`` alone is not enough: ``<!--<script>`` in a transcript puts the HTML parser
    in its "double-escaped" state and the element's own ``</script>`` no longer ends it. With
    ``<``, ``>`` and ``&`` as JSON escapes (what Jinja's ``tojson`` does) no markup survives.
    """
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


@dataclass(frozen=True)
class ReportFiles:
    """What :func:`write_report` wrote.

    Attributes:
        html: the page.
        numbers: the numbers.
    """

    html: Path
    numbers: Path


def write_report(doc: Mapping[str, Any], out_dir: Path) -> ReportFiles:
    """Write ``index.html`` and ``numbers.json`` into ``out_dir`` (created if needed).

    Each file is written to a temporary name and renamed, so a reader never sees half a file.

    Args:
        doc: from :func:`lamarena.report.numbers.compute_study`.
        out_dir: the report directory.

    Returns:
        The two paths.

    Raises:
        InvalidInputError: ``out_dir`` is a file or cannot be written.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise InvalidInputError(f"--out {out_dir}: is a file; give a directory for the report")
    numbers_text = json.dumps(doc, indent=2, allow_nan=False) + "\n"
    html_text = render_report(doc)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        numbers = _write_atomic(out_dir / "numbers.json", numbers_text)
        html = _write_atomic(out_dir / "index.html", html_text)
    except OSError as exc:
        raise InvalidInputError(
            f"--out {out_dir}: cannot write the report ({exc.strerror or exc})"
        ) from exc
    return ReportFiles(html=html, numbers=numbers)


def _write_atomic(path: Path, text: str) -> Path:
    """Write ``text`` beside ``path`` under a temporary name, then rename it into place."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temporary.write_text(text, encoding="utf-8")  # mode from the umask, like any file
        temporary.replace(path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path
