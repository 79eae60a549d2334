"""The study report: every number in ``numbers.json`` and one offline HTML page of figures.

``lamarena analyze`` loads the battles and a static score table, then calls
:func:`compute_study` (the numbers), and :func:`write_report` (``index.html`` with plotly.js
inlined, and ``numbers.json``). :func:`load_static_input` reads a ``static run`` results
directory or a CSV table.
"""

from lamarena.report.html import ReportFiles, render_report, write_report
from lamarena.report.numbers import SECTIONS, StudyOptions, compute_study
from lamarena.report.static_input import load_static_input, read_scores_json

__all__ = [
    "SECTIONS",
    "ReportFiles",
    "StudyOptions",
    "compute_study",
    "load_static_input",
    "read_scores_json",
    "render_report",
    "write_report",
]
