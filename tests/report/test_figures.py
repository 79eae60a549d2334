"""Figures and the page: every figure drawn from numbers.json only; one offline HTML file."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from lamarena.errors import InvalidInputError
from lamarena.report import render_report, write_report
from lamarena.report.figures import FIGURES, build_figures

ALL = {spec.id for spec in FIGURES}


def test_every_figure_is_drawn_from_a_full_document(study_document: dict[str, Any]) -> None:
    figures = build_figures(study_document)
    assert set(figures) == ALL
    for figure_id, figure in figures.items():
        assert figure.data, figure_id
        assert figure.layout.title.text, figure_id


def test_figures_show_the_documents_numbers(study_document: dict[str, Any]) -> None:
    figures = build_figures(study_document)
    heatmap = figures["fig-win-rates"].data[0]
    rates = study_document["win_rates"]
    assert list(heatmap.x) == rates["models"]
    starred = sum(cell.endswith("*") for row in heatmap.text for cell in row)
    assert starred == sum(map(sum, rates["significant"]))
    tau = figures["fig-kendall-tau"].data[0]
    assert sorted(tau.x) == sorted(row["benchmark"] for row in study_document["kendall_tau"])
    assert max(tau.y) == max(row["tau"] for row in study_document["kendall_tau"])
    sunburst = figures["fig-topics"].data[0]
    topics = study_document["topics"]["topics"]
    assert sum(v for v, p in zip(sunburst.values, sunburst.parents, strict=True) if not p) == 1200
    assert len(sunburst.ids) == len(topics) + sum(len(t["subtopics"]) for t in topics)
    ratings = figures["fig-ratings"].data[0]
    assert list(ratings.y) == [row["model"] for row in study_document["leaderboard"]["models"]]
    feedback = figures["fig-feedback"].data
    assert sum(sum(bar.y) for bar in feedback) == study_document["feedback"]["n_feedback"]


def test_missing_sections_draw_no_figure(study_document: dict[str, Any]) -> None:
    document = copy.deepcopy(study_document)
    for section in ("topics", "regression", "pca", "feedback"):
        document[section] = None
        document["notes"][section] = f"no {section} here"
    document["kendall_tau"] = []
    assert set(build_figures(document)) == {"fig-ratings", "fig-win-rates"}
    html = render_report(document)
    for section in ("topics", "regression", "pca", "feedback"):
        assert f"no {section} here" in html
    assert 'id="fig-topics"' not in html and 'id="fig-ratings"' in html


def test_the_page_holds_plotly_and_every_figure_and_refers_to_nothing_outside(
    study_document: dict[str, Any],
) -> None:
    html = render_report(study_document)
    assert html.count("<script") == 3 and "<script src" not in html
    before, plotly_and_after = html.split("<script>", 1)
    page = before + plotly_and_after.split("</script>", 1)[1]  # the page without plotly.js
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "<link" not in page and "@import" not in page
    payload = html.split('<script type="application/json" id="figure-data">')[1]
    figures = json.loads(payload.split("</script>")[0].replace("<\\/", "</"))
    assert {figure["id"] for figure in figures} == ALL
    for figure_id in ALL:
        assert f'<div class="figure" id="{figure_id}"></div>' in html
    assert "Plotly.newPlot" in html and len(html) > 3_000_000  # plotly.js inlined
    assert "GPT4o" in html and "asr_wer" in html


def test_text_from_the_data_is_escaped(study_document: dict[str, Any]) -> None:
    document = copy.deepcopy(study_document)
    document["topics"]["topics"][0]["examples"] = ["<script>alert(1)</script>"]
    html = render_report(document)
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_the_report_directory_gets_the_page_and_the_numbers(
    study_document: dict[str, Any], tmp_path: Path
) -> None:
    files = write_report(study_document, tmp_path / "report" / "nested")
    assert files.html.name == "index.html" and files.numbers.name == "numbers.json"
    assert json.loads(files.numbers.read_text()) == study_document
    assert files.html.read_text().startswith("<!doctype html>")
    assert sorted(p.name for p in files.html.parent.iterdir()) == ["index.html", "numbers.json"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(InvalidInputError, match="is a file"):
        write_report(study_document, tmp_path / "file")


def test_figure_data_cannot_end_its_script_element() -> None:
    import json
    import re

    from lamarena.report.html import _script_safe

    hostile = "<!--<script>alert(1)</script> & more"
    safe = _script_safe(json.dumps([{"text": hostile}]))
    assert re.search(r"[<>&]", safe) is None
    assert json.loads(safe) == [{"text": hostile}]
