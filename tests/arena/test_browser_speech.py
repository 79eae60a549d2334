"""A speech battle in a real browser: both spoken replies play, the vote waits for listening.

Headless Chromium (Debian's, driven by pip ``playwright``; test_browser.py's fixture) with a fake
microphone playing espeak-ng speech and autoplay allowed; the arena runs in speech mode with two
loopback OpenAI-compatible models that stream pcm16 audio with their transcripts, as OpenAI's
chat completions do.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from playwright import sync_api
from sqlalchemy import select

from lamarena.store.tables import Battle, Reply

from .conftest import Harness
from .test_browser import ON_SQLITE, TIMEOUT_MS, _offline_only, _record
from .test_browser import browser as browser  # the fixtures, shared (autoplay allowed)
from .test_browser import microphone_wav as microphone_wav
from .test_speech_battles import CHUNK_S, _speaking_fakes

MIN_LISTEN_S = 1.5


_HEARD = re.compile(r"^heard (\d+\.\d) s$")


def _heard_s(page: sync_api.Page, side: str) -> float:
    match = _HEARD.match(page.locator(f"#heard-{side}").inner_text())
    return float(match.group(1)) if match else 0.0


@ON_SQLITE
def test_a_speech_battle_in_the_browser_plays_both_sides_before_the_vote(
    harness_factory: Any, browser: sync_api.Browser, tmp_path: Path
) -> None:
    harness: Harness = harness_factory(
        fakes=_speaking_fakes(), speaking=True, mode="speech", min_listen_s=MIN_LISTEN_S
    )
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    outside = _offline_only(context, harness.url)
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    expect = sync_api.expect
    vote_a = page.locator("button.vote[data-winner='model_a']")
    try:
        page.goto(f"{harness.url}/arena")
        expect(page.locator("#listen-rule")).to_contain_text("1.5 s of each")
        _record(page)
        for side in "ab":
            expect(page.locator(f"#play-{side}")).to_be_visible()
            expect(page.locator(f"#heard-{side}")).to_have_text("not played yet")
            expect(page.locator(f"#reply-{side} .transcript")).to_be_hidden()
        expect(page.locator("#status")).to_contain_text("play each")
        expect(vote_a).to_be_disabled()
        # the server refuses a vote sent before listening, whatever the page does
        with harness.engine.connect() as connection:
            battle_id = connection.execute(select(Battle.id)).scalar_one()
        early = page.evaluate(
            """async (id) => {
                const response = await fetch('/api/battles/' + id + '/vote', {
                    method: 'POST', headers: {'Content-Type': 'application/json'},
                    body: JSON.stringify({winner: 'model_b'}), credentials: 'same-origin'});
                return [response.status, (await response.json()).error];
            }""",
            battle_id,
        )
        assert early == [409, "listen_first"]
        page.click("#play-a")
        page.wait_for_function(
            "() => /heard ([1-9]|[2-9])\\.\\d s/.test(document.getElementById('heard-a')"
            ".textContent) && parseFloat(document.getElementById('heard-a').textContent"
            f".slice(6)) >= {MIN_LISTEN_S}"
        )
        expect(page.locator("#reply-a .transcript")).to_be_visible()  # heard: its text shows
        expect(page.locator("#reply-b .transcript")).to_be_hidden()
        expect(vote_a).to_be_disabled()  # B not heard yet
        page.click("#play-b")  # pauses A, plays B
        expect(vote_a).to_be_enabled(timeout=TIMEOUT_MS)
        expect(page.locator("#reply-b .transcript")).to_be_visible()
        heard = {side: _heard_s(page, side) for side in "ab"}
        page.screenshot(path=str(tmp_path / "arena-speech.png"), full_page=True)
        texts = {side: page.locator(f"#reply-{side} .transcript").inner_text() for side in "ab"}
        vote_a.click()
        expect(page.locator("#reveal-text")).to_contain_text("(1 turn)")
        expect(page.locator("#latency-a")).to_contain_text("first audio")
        expect(page.locator("#latency-a")).to_contain_text("audio 3.00 s")
        page.screenshot(path=str(tmp_path / "arena-speech-revealed.png"), full_page=True)
    finally:
        context.close()
    assert problems == []
    assert outside == []
    assert all(MIN_LISTEN_S <= value <= 3 * CHUNK_S + 0.2 for value in heard.values()), heard
    assert sorted(texts.values()) == ["Paris is the capital.", "The capital is Paris!"]
    with harness.engine.connect() as connection:
        assert len(connection.execute(select(Reply.audio_sha256)).scalars().all()) == 2
