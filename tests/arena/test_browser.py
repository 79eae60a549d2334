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
from typing import Any

import numpy as np
import pytest
import soundfile
import soxr
from playwright import sync_api
from sqlalchemy import select
from sqlalchemy.orm import Session

from helpers.speech import speak
from lamarena.simulation import simulate_battles
from lamarena.store.bulk import insert_battle_records
from lamarena.store.records import records_from_frame
from lamarena.store.tables import Battle, Reply, Vote
from lamarena.store.tables import Session as SessionRow

from .conftest import Harness

ON_SQLITE = pytest.mark.parametrize("databases", ["sqlite"], indirect=True)

CHROMIUM = "/usr/bin/chromium"
TIMEOUT_MS = 15_000
OFFLINE_TIMEOUT_MS = 180_000  # CPU models on a busy two-core machine
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
                "--autoplay-policy=no-user-gesture-required",  # spoken replies play at once
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-audio-capture={microphone_wav}",
            ],
        )
        try:
            yield launched
        finally:
            launched.close()


def _record(page: sync_api.Page, start: str = "#record", stop: str = "#stop") -> None:
    page.click(start)
    sync_api.expect(page.locator(stop)).to_be_enabled()
    page.wait_for_timeout(RECORD_MS)  # the length of the recording, not a synchronisation
    page.click(stop)


def _offline_only(context: sync_api.BrowserContext, base_url: str) -> list[str]:
    """Abort every request that does not go to the arena; return what was attempted."""
    attempted: list[str] = []

    def route(request_route: sync_api.Route) -> None:
        url = request_route.request.url
        if url.startswith(base_url) or url.startswith("data:") or url.startswith("blob:"):
            request_route.continue_()
        else:
            attempted.append(url)
            request_route.abort()

    context.route("**/*", route)
    return attempted


@ON_SQLITE
def test_a_round_in_the_browser_records_streams_votes_and_reveals(
    harness_factory: Any, browser: sync_api.Browser, tmp_path: Path
) -> None:
    harness: Harness = harness_factory(asr=True, completion_votes=2, completion_code="STUDY-7")
    assert harness.asr is not None
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    outside = _offline_only(context, harness.url)
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    expect = sync_api.expect
    replies = sorted(REPLIES.values())
    either_reply = [re.compile(f"^({'|'.join(map(re.escape, replies))})$")]
    try:
        page.goto(f"{harness.url}/?pid=P123")
        expect(page.locator("#completion-info")).to_contain_text("After 2 votes")
        page.check("#consent")
        page.click("#start")
        page.wait_for_url("**/arena?pid=P123&consent=true")
        expect(page.locator("#consent-state")).to_have_text("yes")

        _record(page)
        expect(page.locator("#recording")).to_be_hidden()

        # Both replies stream into their panels, then the vote opens.
        expect(page.locator("#reply-a .bubble.model")).to_have_text(either_reply)
        expect(page.locator("#reply-b .bubble.model")).to_have_text(either_reply)
        expect(page.locator("#message")).to_be_hidden()
        vote_a = page.locator("button.vote[data-winner='model_a']")
        expect(vote_a).to_be_enabled()
        said = {side: page.locator(f"#reply-{side} .bubble.model").text_content() for side in "ab"}
        assert sorted(said.values()) == replies
        # No timing, name or hint of who answered before the vote.
        for side in "ab":
            assert not (page.locator(f"#latency-{side}").text_content() or "").strip()
            assert not (page.locator(f"#name-{side}").text_content() or "").strip()
        assert "first token" not in page.locator("body").inner_text()
        assert not re.search(r"\d+(\.\d+)?\s*s\b", page.locator("body").inner_text())

        page.fill("#reason", "shorter <b>and</b> right")
        vote_a.click()
        expect(page.locator("#reveal")).to_be_visible()
        expect(page.locator("#reveal-text")).to_contain_text("Model A was")
        names = {side: page.locator(f"#name-{side}").text_content() for side in "ab"}
        assert set(names.values()) == set(REPLIES)
        for side in "ab":
            assert said[side] == REPLIES[names[side] or ""]
            expect(page.locator(f"#latency-{side}")).to_contain_text("first token")
        expect(page.locator("#votes-cast")).to_have_text("1")
        expect(page.locator("#completion")).to_be_hidden()
        page.screenshot(path=str(tmp_path / "arena.png"), full_page=True)

        # Round two: the reason is spoken, transcribed, and the second vote earns the code.
        page.click("#new-round")
        expect(page.locator("#reply-a")).to_have_text("")
        _record(page)
        expect(page.locator("#reply-a .bubble.model")).to_have_text(either_reply)
        expect(page.locator("#reply-b .bubble.model")).to_have_text(either_reply)
        expect(page.locator("#reason-record")).to_be_enabled()
        harness.asr.transcript = "The second one sounded more natural."
        _record(page, "#reason-record", "#reason-stop")
        expect(page.locator("#reason")).to_have_value("The second one sounded more natural.")
        expect(page.locator("#reason-status")).to_contain_text("Transcribed")
        page.locator("button.vote[data-winner='model_b']").click()
        expect(page.locator("#completion")).to_be_visible()
        expect(page.locator("#completion-code")).to_have_text("STUDY-7")
        expect(page.locator("#votes-cast")).to_have_text("2")
        page.screenshot(path=str(tmp_path / "arena-completed.png"), full_page=True)

        page.goto(f"{harness.url}/leaderboard")
        expect(page.locator("#summary")).to_contain_text("2 voted battles.")
        expect(page.locator("#provisional tbody tr")).to_have_count(2)
        expect(page.locator("#ranked tbody")).to_have_text("No model has a rating yet.")
        page.screenshot(path=str(tmp_path / "leaderboard.png"), full_page=True)
    finally:
        context.close()
    assert problems == []
    assert outside == []

    with harness.engine.connect() as connection:
        battles = connection.execute(select(Battle).order_by(Battle.created_at)).all()
        assert len(battles) == 2
        battle = battles[0]
        replies_rows = connection.execute(select(Reply).where(Reply.battle_id == battle.id)).all()
        votes = {vote.battle_id: vote for vote in connection.execute(select(Vote)).all()}
        session = connection.execute(
            select(SessionRow).where(SessionRow.id == battle.session_id)
        ).one()
    by_side = {reply.side: reply for reply in replies_rows}
    assert {side: by_side[side].text for side in "ab"} == said
    assert all(by_side[side].error is None for side in "ab")
    assert (battle.model_a, battle.model_b) == (names["a"], names["b"])
    assert votes[battle.id].winner == "model_a"
    assert votes[battle.id].feedback_text == "shorter <b>and</b> right"
    assert votes[battles[1].id].winner == "model_b"
    assert votes[battles[1].id].feedback_text == "The second one sounded more natural."
    assert battles[1].session_id == battle.session_id
    assert session.participant_id == "P123"
    assert session.consent_keep_audio is True
    assert battle.audio_kept is True and battle.kept_audio_path is not None
    kept = Path(battle.kept_audio_path)
    assert kept.suffix == ".webm" and kept.stat().st_size > 1_000
    assert battle.query_transcript == "What is the capital of France?"


@ON_SQLITE
def test_a_two_turn_conversation_in_the_browser(
    harness_factory: Any, browser: sync_api.Browser, tmp_path: Path
) -> None:
    harness: Harness = harness_factory(max_turns=2)
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    outside = _offline_only(context, harness.url)
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    expect = sync_api.expect
    either_reply = re.compile(f"^({'|'.join(map(re.escape, REPLIES.values()))})$")
    try:
        page.goto(f"{harness.url}/arena")
        _record(page)
        vote_a = page.locator("button.vote[data-winner='model_a']")
        expect(vote_a).to_be_enabled()
        # after turn 1 the person may vote or speak again
        expect(page.locator("#record")).to_have_text("Speak again")
        expect(page.locator("#record")).to_be_enabled()
        _record(page)
        for side in "ab":
            bubbles = page.locator(f"#reply-{side} .bubble.model")
            expect(bubbles).to_have_count(2)
            expect(bubbles.nth(1)).to_have_text(either_reply)
            expect(page.locator(f"#reply-{side} .bubble.user")).to_have_text(
                ["You (turn 1)", "You (turn 2)"]
            )
        expect(vote_a).to_be_enabled()
        expect(page.locator("#record")).to_be_disabled()  # at --max-turns 2: vote now
        said = {
            side: page.locator(f"#reply-{side} .bubble.model").all_text_contents() for side in "ab"
        }
        page.screenshot(path=str(tmp_path / "arena-two-turns.png"), full_page=True)
        vote_a.click()
        expect(page.locator("#reveal-text")).to_contain_text("(2 turns)")
    finally:
        context.close()
    assert problems == []
    assert outside == []
    # each side's conversation: its own reply in both turns, the other side's never
    for side in "ab":
        assert said[side][0] == said[side][1]
    for name, fake in harness.fakes.items():
        (_, second) = fake.chat_requests
        assert [m["role"] for m in second.json["messages"]][-3:] == ["user", "assistant", "user"]
        assert second.json["messages"][-2]["content"] == REPLIES[name]
    with harness.engine.connect() as connection:
        assert connection.execute(select(Reply).where(Reply.turn == 2)).all() != []


@ON_SQLITE
def test_the_leaderboard_draws_intervals_and_the_win_rate_matrix_offline(
    harness: Harness, browser: sync_api.Browser, tmp_path: Path
) -> None:
    strengths = {"alpha": 1100.0, "beta": 1000.0, "gamma": 950.0, "delta": 900.0}
    frame = simulate_battles(strengths, 400, seed=3)
    with harness.engine.begin() as connection, Session(bind=connection) as session:
        insert_battle_records(session, records_from_frame(frame))
        session.commit()
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    outside = _offline_only(context, harness.url)
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    expect = sync_api.expect
    try:
        page.goto(f"{harness.url}/leaderboard")
        expect(page.locator("#summary")).to_contain_text("400 voted battles.")
        expect(page.locator("#ranked tbody tr")).to_have_count(4)
        expect(page.locator("#ranked tbody tr").first).to_contain_text("alpha")
        # One point (with its interval) per rated model.
        points = page.locator("#intervals-plot .scatterlayer .point")
        expect(points).to_have_count(4)
        expect(page.locator("#intervals-plot .errorbar")).to_have_count(4)
        # A 4 x 4 heatmap with a labelled cell for each of the 12 ordered pairs.
        expect(
            page.locator("#matrix-plot .heatmaplayer image, #matrix-plot .hm image")
        ).to_have_count(1)
        labels = page.locator("#matrix-plot .heatmaplayer text, #matrix-plot .hm text")
        expect(labels).to_have_count(12)
        assert all(re.fullmatch(r"\d+%\*? \(\d+\)", t) for t in labels.all_text_contents())
        y_ticks = page.locator("#intervals-plot .ytick text").all_text_contents()
        assert y_ticks[-1] == "alpha"  # the best at the top
        box = page.locator("#matrix-plot").bounding_box()
        assert box is not None and box["height"] > 200
        page.screenshot(path=str(tmp_path / "leaderboard-plots.png"), full_page=True)
    finally:
        context.close()
    assert problems == []
    assert outside == []


@ON_SQLITE
def test_the_leaderboard_shows_each_reply_mode_and_depth_apart(
    harness: Harness, browser: sync_api.Browser, tmp_path: Path
) -> None:
    text = simulate_battles({"alpha": 1100.0, "beta": 1000.0, "gamma": 900.0}, 150, seed=5)
    # A model name with markup in it must show as text.
    speech = simulate_battles({"alpha": 900.0, "beta": 1000.0, "<i>gamma</i>": 1100.0}, 90, seed=6)
    records = [
        record.model_copy(update={"mode": "speech"}) for record in records_from_frame(speech)
    ]
    records += records_from_frame(text.assign(battle_id=[f"t{i}" for i in range(len(text))]))
    with harness.engine.begin() as connection, Session(bind=connection) as session:
        insert_battle_records(session, records)
        session.commit()
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    outside = _offline_only(context, harness.url)
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    expect = sync_api.expect
    try:
        page.goto(f"{harness.url}/leaderboard")
        expect(page.locator("#summary")).to_contain_text(
            "240 voted battles: 150 on text replies, 90 on spoken replies."
        )
        expect(page.locator("#summary")).to_contain_text("never pooled")
        expect(page.locator("#by-mode-section")).to_be_visible()
        expect(page.locator("#by-turns-section")).to_be_hidden()  # every vote after one turn
        tables = page.locator("#by-mode table")
        expect(tables).to_have_count(2)
        expect(tables.nth(0).locator("caption")).to_have_text("Text-out votes (150 battles)")
        expect(tables.nth(1).locator("caption")).to_have_text("Speech-out votes (90 battles)")
        expect(tables.nth(0).locator("tbody tr").first).to_contain_text("alpha")
        expect(tables.nth(1).locator("tbody tr").first).to_contain_text("<i>gamma</i>")
        expect(page.locator("#by-mode i")).to_have_count(0)
        expect(page.locator("#ranked tbody tr").first).to_contain_text("alpha")  # text-out
        page.screenshot(path=str(tmp_path / "leaderboard-modes.png"), full_page=True)
    finally:
        context.close()
    assert problems == []
    assert outside == []


def test_a_browser_round_on_the_builtin_offline_models(
    offline_served: str, browser: sync_api.Browser, tmp_path: Path
) -> None:
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    context.set_default_timeout(OFFLINE_TIMEOUT_MS)
    outside = _offline_only(context, offline_served)
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    expect = sync_api.expect
    try:
        page.goto(f"{offline_served}/arena")
        _record(page)
        expect(page.locator("#panel-a.done")).to_be_visible(timeout=OFFLINE_TIMEOUT_MS)
        expect(page.locator("#panel-b.done")).to_be_visible(timeout=OFFLINE_TIMEOUT_MS)
        for side in "ab":
            assert (page.locator(f"#reply-{side}").text_content() or "").strip()
        page.locator("button.vote[data-winner='tie']").click()
        expect(page.locator("#reveal-text")).to_contain_text("offline-whisper-smollm2")
        names = {page.locator(f"#name-{side}").text_content() for side in "ab"}
        assert names == {"offline-whisper-smollm2", "offline-whisper-smollm2-concise"}
        page.screenshot(path=str(tmp_path / "arena-offline.png"), full_page=True)
    finally:
        context.close()
    assert problems == []
    assert outside == []
