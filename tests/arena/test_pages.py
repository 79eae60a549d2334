"""The web pages: they render, carry the participant id, escape what the URL holds."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from lamarena.arena import create_app
from lamarena.arena.routes.pages import STATIC_DIR
from lamarena.settings import Settings

from .conftest import make_entry

HOSTILE = '<script>alert("x")</script>'
# Adapters are built but never called by these tests: nothing listens on port 9.
ENTRIES = [
    make_entry("alpha", "http://127.0.0.1:9/v1"),
    make_entry("beta", "http://127.0.0.1:9/v1"),
]


def _client(tmp_path: Path, **settings: object) -> Iterator[TestClient]:
    config = Settings(
        database_url=f"sqlite:///{tmp_path / 'pages.db'}",
        data_dir=tmp_path,
        **settings,  # type: ignore[arg-type]
    )
    with TestClient(create_app(config, entries=ENTRIES)) as client:
        yield client


@pytest.fixture
def pages(tmp_path: Path) -> Iterator[TestClient]:
    yield from _client(tmp_path)


@pytest.fixture
def study_pages(tmp_path: Path) -> Iterator[TestClient]:
    yield from _client(tmp_path, completion_votes=10, completion_code="C0DE-42")


def test_welcome_has_instructions_unticked_consent_and_start(pages: TestClient) -> None:
    response = pages.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    assert "Speak any request" in html and "Two anonymous assistants" in html and "Vote" in html
    consent = re.search(r"<input[^>]*id=\"consent\"[^>]*>", html)
    assert consent is not None and 'type="checkbox"' in consent.group(0)
    assert "checked" not in consent.group(0)
    # what is kept without consent is said, not only what consent adds (issue 11)
    kept = re.search(r'<details id="what-is-kept".*?</details>', html, re.S)
    assert kept is not None
    assert "transcript" in kept.group(0) and "fingerprint" in kept.group(0)
    assert "network address" in kept.group(0) and "the recording itself" in kept.group(0)
    assert "only a fingerprint" not in html
    assert re.search(r'<form[^>]*action="/arena"', html)
    assert 'id="start"' in html
    assert 'name="pid"' not in html  # nothing to carry
    assert "completion code" not in html  # no code configured


def test_a_study_tells_how_many_votes_earn_the_completion_code(study_pages: TestClient) -> None:
    assert "After 10 votes you will get a completion code" in study_pages.get("/").text
    html = study_pages.get("/arena").text
    assert re.search(r'Votes: <strong id="votes-cast">0</strong> of 10', html)
    assert 'id="completion"' in html and 'id="completion-code"' in html
    assert "C0DE-42" not in html  # the code comes with the tenth vote, not before


def test_spoken_reasons_need_a_recogniser(pages: TestClient) -> None:
    # OpenAI chat models have no ASR of their own and no `transcriber` is configured.
    html = pages.get("/arena").text
    assert 'id="reason"' in html
    assert 'id="reason-record"' not in html


def test_welcome_carries_pid_into_the_start_form(pages: TestClient) -> None:
    html = pages.get("/", params={"pid": "P123"}).text
    assert '<input type="hidden" id="pid" name="pid" value="P123">' in html
    assert 'href="/arena?pid=P123"' in html


@pytest.mark.parametrize("path", ["/", "/arena"])
def test_user_text_in_the_url_is_escaped(pages: TestClient, path: str) -> None:
    html = pages.get(path, params={"pid": HOSTILE}).text
    assert HOSTILE not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html


def test_arena_page_has_recorder_panels_votes_and_carries_pid_and_consent(
    pages: TestClient,
) -> None:
    response = pages.get("/arena", params={"pid": "P123", "consent": "true"})
    assert response.status_code == 200
    html = response.text
    for element in ('id="record"', 'id="stop"', 'id="file"', 'id="upload"', 'id="reason"'):
        assert element in html
    assert "Model A" in html and "Model B" in html
    assert 'id="reply-a"' in html and 'id="reply-b"' in html
    winners = re.findall(r'class="vote" data-winner="(\w+)" disabled', html)
    assert winners == ["model_a", "model_b", "tie", "both_bad"]
    assert '<input type="hidden" id="pid" value="P123">' in html
    assert '<input type="hidden" id="consent" value="true">' in html
    assert 'id="new-round"' in html
    assert "/static/arena.js" in html and "/static/style.css" in html


def test_arena_page_without_consent_keeps_nothing(pages: TestClient) -> None:
    html = pages.get("/arena").text
    assert '<input type="hidden" id="consent" value="false">' in html
    assert '<input type="hidden" id="pid" value="">' in html


def test_leaderboard_page_has_its_tables(pages: TestClient) -> None:
    response = pages.get("/leaderboard")
    assert response.status_code == 200
    html = response.text
    assert 'id="ranked"' in html and 'id="provisional"' in html
    for header in ("Rating", "95% CI", "Battles", "Win rate"):
        assert f"<th>{header}</th>" in html
    assert "/static/leaderboard.js" in html
    assert 'id="intervals-plot"' in html and 'id="matrix-plot"' in html
    assert '<script src="/vendor/plotly.min.js">' in html
    assert "cdn" not in html.lower()  # every script comes from the arena itself


def test_plotly_is_served_from_the_installed_package(pages: TestClient) -> None:
    response = pages.get("/vendor/plotly.min.js")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/javascript")
    assert "max-age" in response.headers["cache-control"]
    assert len(response.content) > 1_000_000 and b"plotly" in response.content[:2_000].lower()


@pytest.mark.parametrize(
    ("name", "media_type"),
    [
        ("arena.js", "text/javascript"),
        ("leaderboard.js", "text/javascript"),
        ("style.css", "text/css"),
    ],
)
def test_static_files_are_served(pages: TestClient, name: str, media_type: str) -> None:
    response = pages.get(f"/static/{name}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(media_type)


def test_scripts_never_write_html() -> None:
    # Model replies, error messages and model names are set as text, so nothing is interpreted.
    for script in STATIC_DIR.glob("*.js"):
        source = script.read_text()
        assert "innerHTML" not in source and "outerHTML" not in source, script.name
        assert "insertAdjacentHTML" not in source and "document.write" not in source, script.name
