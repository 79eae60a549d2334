"""The web pages: they render, carry the participant id, escape what the URL holds."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from lamarena.arena import create_app
from lamarena.arena.routes.pages import STATIC_DIR
from lamarena.settings import Settings

HOSTILE = '<script>alert("x")</script>'


@pytest.fixture
def pages(tmp_path) -> TestClient:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'unused.db'}", data_dir=tmp_path)
    return TestClient(create_app(settings, entries=[]))


def test_welcome_has_instructions_unticked_consent_and_start(pages: TestClient) -> None:
    response = pages.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    assert "Speak any request" in html and "Two anonymous assistants" in html and "Vote" in html
    consent = re.search(r"<input[^>]*id=\"consent\"[^>]*>", html)
    assert consent is not None and 'type="checkbox"' in consent.group(0)
    assert "checked" not in consent.group(0)
    assert re.search(r'<form[^>]*action="/arena"', html)
    assert 'id="start"' in html
    assert 'name="pid"' not in html  # nothing to carry


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
