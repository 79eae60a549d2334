"""One round in a real browser: headless Chromium with a fake microphone playing real speech.

Chromium comes from Debian (``apt-get install -y chromium``) and is driven by the ``playwright``
pip package; ``playwright install`` is never needed. The fake microphone plays an espeak-ng WAV
(16-bit PCM, 48 kHz mono, as Chromium wants it).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile
import soxr
from playwright import sync_api
from sqlalchemy import select

from helpers.speech import speak
from lamarena.store.tables import Battle, Reply, Vote
from lamarena.store.tables import Session as SessionRow

from .conftest import Harness

pytestmark = pytest.mark.parametrize("databases", ["sqlite"], indirect=True)

CHROMIUM = "/usr/bin/chromium"
TIMEOUT_MS = 15_000
RECORD_MS = 2_000
REPLIES = {"alpha": "Paris is the capital.", "beta": "The capital of France is Paris!"}


@pytest.fixture(scope="module")
def microphone_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("microphone")
    spoken = speak("What is the capital of France?", directory / "spoken.wav")
    samples, rate = soundfile.read(spoken, dtype="float32", always_2d=True)
    mono = samples.mean(axis=1)
    resampled = soxr.resample(mono, rate, 48_000)
    path = directory / "microphone.wav"
    soundfile.write(path, np.clip(resampled, -1, 1), 48_000, subtype="PCM_16")
    return path


@pytest.fixture(scope="module")
def browser(microphone_wav: Path) -> Iterator[sync_api.Browser]:
    if shutil.which(CHROMIUM) is None:
        pytest.fail("Chromium is needed: apt-get install -y chromium", pytrace=False)
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-audio-capture={microphone_wav}",
            ],
        )
        try:
            yield launched
        finally:
            launched.close()


def test_a_round_in_the_browser_records_streams_votes_and_reveals(
    harness: Harness, browser: sync_api.Browser, tmp_path: Path
) -> None:
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    expect = sync_api.expect
    try:
        page.goto(f"{harness.url}/?pid=P123")
        page.check("#consent")
        page.click("#start")
        page.wait_for_url("**/arena?pid=P123&consent=true")
        expect(page.locator("#consent-state")).to_have_text("yes")

        page.click("#record")
        expect(page.locator("#stop")).to_be_enabled()
        expect(page.locator("#recording")).to_be_visible()
        page.wait_for_timeout(RECORD_MS)  # the length of the recording, not a synchronisation
        page.click("#stop")

        # Both replies stream into their panels, then the vote opens.
        replies = sorted(REPLIES.values())
        expect(page.locator("#reply-a")).to_have_text(
            [re.compile(f"^({'|'.join(map(re.escape, replies))})$")]
        )
        expect(page.locator("#reply-b")).to_have_text(
            [re.compile(f"^({'|'.join(map(re.escape, replies))})$")]
        )
        expect(page.locator("#message")).to_be_hidden()
        vote_a = page.locator("button.vote[data-winner='model_a']")
        expect(vote_a).to_be_enabled()
        said = {side: page.locator(f"#reply-{side}").text_content() for side in "ab"}
        assert sorted(said.values()) == replies

        page.fill("#reason", "shorter <b>and</b> right")
        vote_a.click()
        expect(page.locator("#reveal")).to_be_visible()
        expect(page.locator("#reveal-text")).to_contain_text("Model A was")
        names = {side: page.locator(f"#name-{side}").text_content() for side in "ab"}
        assert set(names.values()) == set(REPLIES)
        for side in "ab":
            assert said[side] == REPLIES[names[side] or ""]
            expect(page.locator(f"#latency-{side}")).to_contain_text("first token")
        expect(page.locator("#new-round")).to_be_visible()
        page.screenshot(path=str(tmp_path / "arena.png"), full_page=True)

        page.goto(f"{harness.url}/leaderboard")
        expect(page.locator("#summary")).to_have_text("1 voted battle.")
        expect(page.locator("#provisional tbody tr")).to_have_count(2)
        expect(page.locator("#ranked tbody")).to_have_text("No model has a rating yet.")
        page.screenshot(path=str(tmp_path / "leaderboard.png"), full_page=True)
    finally:
        context.close()
    assert problems == []

    with harness.engine.connect() as connection:
        battle = connection.execute(select(Battle)).one()
        replies_rows = connection.execute(select(Reply).where(Reply.battle_id == battle.id)).all()
        vote = connection.execute(select(Vote).where(Vote.battle_id == battle.id)).one()
        session = connection.execute(
            select(SessionRow).where(SessionRow.id == battle.session_id)
        ).one()
    by_side = {reply.side: reply for reply in replies_rows}
    assert {side: by_side[side].text for side in "ab"} == said
    assert all(by_side[side].error is None for side in "ab")
    assert (battle.model_a, battle.model_b) == (names["a"], names["b"])
    assert vote.winner == "model_a"
    assert vote.feedback_text == "shorter <b>and</b> right"
    assert session.participant_id == "P123"
    assert session.consent_keep_audio is True
    assert battle.audio_kept is True and battle.kept_audio_path is not None
    kept = Path(battle.kept_audio_path)
    assert kept.suffix == ".webm" and kept.stat().st_size > 1_000
