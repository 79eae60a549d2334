"""Cross-site writes refused, and every error in the arena's own JSON shape."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from lamarena.arena.security import CROSS_SITE_MESSAGE, same_site
from lamarena.store.tables import Battle

from .conftest import Harness


def _battles(harness: Harness) -> int:
    with harness.engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(Battle)).scalar_one())


def _post_battle(client, audio: bytes, **headers: str):
    return client.post(
        "/api/battles",
        files={"audio": ("question.wav", audio, "audio/wav")},
        headers=headers,
    )


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Referer": "https://evil.example/page.html"},
        {"Origin": "http://127.0.0.1:1"},  # the right host, another port: another site
    ],
)
def test_a_battle_posted_from_another_sites_page_is_refused_and_nothing_stored(
    harness: Harness, speech_wav: bytes, headers: dict[str, str]
) -> None:
    client = harness.client()
    response = _post_battle(client, speech_wav, **headers)
    assert response.status_code == 403
    assert response.json() == {"error": "forbidden", "message": CROSS_SITE_MESSAGE}
    assert _battles(harness) == 0
    assert all(not fake.chat_requests for fake in harness.fakes.values())


def test_the_arenas_own_page_and_scripts_may_post(harness: Harness, speech_wav: bytes) -> None:
    client = harness.client()
    own = _post_battle(client, speech_wav, Origin=harness.url, Referer=f"{harness.url}/arena")
    assert own.status_code == 201, own.text
    script = _post_battle(harness.client(), speech_wav)  # no Origin, no Referer
    assert script.status_code == 201, script.text
    assert _battles(harness) == 2


def test_a_vote_from_another_sites_page_is_refused(harness: Harness, speech_wav: bytes) -> None:
    client = harness.client()
    battle_id = _post_battle(client, speech_wav).json()["battle_id"]
    harness.wait_for_replies(battle_id)
    refused = client.post(
        f"/api/battles/{battle_id}/vote",
        json={"winner": "model_a"},
        headers={"Origin": "https://evil.example"},
    )
    assert refused.status_code == 403
    accepted = client.post(f"/api/battles/{battle_id}/vote", json={"winner": "model_a"})
    assert accepted.status_code == 200, accepted.text


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/api/no-such-thing", 404, "not_found"),
        ("DELETE", "/api/leaderboard", 405, "method_not_allowed"),
        ("GET", "/static/no-such-file.js", 404, "not_found"),
    ],
)
def test_the_frameworks_own_errors_use_the_arenas_shape(
    harness: Harness, method: str, path: str, status: int, code: str
) -> None:
    response = harness.client().request(method, path)
    assert response.status_code == status
    body = response.json()
    assert set(body) == {"error", "message"} and body["error"] == code
    assert body["message"]


def test_an_unreadable_multipart_body_is_a_json_400(harness: Harness) -> None:
    response = harness.client().post(
        "/api/battles",
        content=b'--x\r\nContent-Disposition: form-data; name="audio"\r\n\r\nno end',
        headers={"Content-Type": "multipart/form-data; boundary=x"},
    )
    assert response.status_code in (400, 422)
    body = response.json()
    assert set(body) == {"error", "message"}


def test_same_site_compares_host_and_port() -> None:
    assert same_site("http://127.0.0.1:7860", "127.0.0.1:7860")
    assert same_site("https://arena.example", "arena.example:443")
    assert same_site("http://Arena.Example/x", "arena.example")
    assert not same_site("http://arena.example.evil.com", "arena.example")
    assert not same_site("http://127.0.0.1:7861", "127.0.0.1:7860")
    assert not same_site("null", "127.0.0.1:7860")
    assert not same_site("not a url", "127.0.0.1:7860")
