"""The report in a real browser: Debian's headless Chromium, no network, every figure drawn.

Chromium comes from Debian (``apt-get install -y chromium``) and is driven by the ``playwright``
pip package; ``playwright install`` is never needed. Every request other than the report file
itself is refused and recorded, and the test asserts there was none.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from playwright import sync_api

from lamarena.report import write_report

CHROMIUM = "/usr/bin/chromium"
TIMEOUT_MS = 60_000

# Per figure: the SVG elements that carry its data, and how many must be drawn at least.
DRAWN = {
    "fig-ratings": (".scatterlayer .point", 9),
    "fig-win-rates": (".heatmaplayer image", 1),
    "fig-topics": ("g.slice path", 4),
    "fig-topic-leaderboards": (".scatterlayer .point", 9),
    "fig-kendall-tau": (".barlayer .point path", 10),  # a tau of 0 is a bar of no height
    "fig-regression": (".scatterlayer .point", 1),
    "fig-pca": (".barlayer .point path", 2),
    "fig-feedback": (".barlayer .point path", 3),
}

_COUNT_DRAWN = """([root, selector]) => {
  const shown = [...document.getElementById(root).querySelectorAll(selector)].filter((node) => {
    const box = node.getBoundingClientRect();
    return box.width > 0 && box.height > 0;
  });
  return shown.length;
}"""


def test_the_report_renders_every_figure_offline(
    study_document: dict[str, Any], tmp_path: Path
) -> None:
    if shutil.which(CHROMIUM) is None:
        pytest.fail("Chromium is needed: apt-get install -y chromium", pytrace=False)
    files = write_report(study_document, tmp_path / "report")
    page_url = files.html.resolve().as_uri()
    refused: list[str] = []
    problems: list[str] = []

    def only_the_file(route: sync_api.Route) -> None:
        if route.request.url == page_url:
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            context = browser.new_context(viewport={"width": 1200, "height": 900}, offline=True)
            context.route("**/*", only_the_file)
            page = context.new_page()
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.on(
                "console",
                lambda message: problems.append(message.text) if message.type == "error" else None,
            )
            page.goto(page_url)
            page.wait_for_selector(f"body[data-rendered='{len(DRAWN)}']", timeout=TIMEOUT_MS)
            counts = {
                figure_id: page.evaluate(_COUNT_DRAWN, [figure_id, selector])
                for figure_id, (selector, _) in DRAWN.items()
            }
            for figure_id in DRAWN:
                box = page.locator(f"#{figure_id} .main-svg").first.bounding_box()
                assert box is not None and box["width"] > 300 and box["height"] > 200, figure_id
            heatmap_text = page.locator("#fig-win-rates").inner_text()
            benchmarks = page.locator("#fig-kendall-tau .xtick text").all_inner_texts()
            regression_rows = page.locator("#regression-table tbody tr").all_inner_texts()
            regression_axis = page.locator("#fig-regression .xtitle").text_content() or ""
            screenshot = tmp_path / "report.png"
            page.screenshot(path=str(screenshot), full_page=True)
            context.close()
        finally:
            browser.close()
    assert refused == []
    assert problems == []
    for figure_id, (_, least) in DRAWN.items():
        assert counts[figure_id] >= least, (figure_id, counts[figure_id])
    assert "*" in heatmap_text  # significance marks drawn on the matrix
    assert len(benchmarks) == len(study_document["kendall_tau"]) == 14
    # each kept benchmark with its Wald and permutation p-values, on the log-odds scale
    assert len(regression_rows) == len(study_document["regression"]["coefficients"]) > 0
    assert "log-odds" in regression_axis
    assert screenshot.stat().st_size > 100_000
