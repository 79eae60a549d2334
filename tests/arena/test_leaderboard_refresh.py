"""The leaderboard is refitted in the background: a request never waits for a fit.

Each test runs a real arena (uvicorn, lifespan on) with a short ``leaderboard_refresh_s`` and
wraps the fit (:func:`lamarena.arena.leaderboard.leaderboard_document`) to count its calls, to make
it slow, or to make it fail.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import httpx
import pandas as pd
import pytest
from playwright import sync_api
from sqlalchemy.orm import Session

import lamarena.arena.leaderboard as leaderboard_module
from lamarena.arena import ArenaOptions, create_app
from lamarena.errors import DatabaseError, LamarenaError
from lamarena.simulation import simulate_battles
from lamarena.store.bulk import insert_battle_records
from lamarena.store.records import records_from_frame

from .conftest import ArenaServer, Harness

ON_SQLITE = pytest.mark.parametrize("databases", ["sqlite"], indirect=True)
STRENGTHS = {"alpha": 1100.0, "beta": 1000.0, "gamma": 900.0}
REFRESH_S = 0.2
QUICK_S = 1.0
"""A request that waited for the slow fit (several seconds) would take far longer than this."""
CHROMIUM = "/usr/bin/chromium"


class Fit:
    """Wraps the real fit: counts calls, sleeps ``delay_s`` first, raises ``error`` if set."""

    def __init__(self) -> None:
        self.real = leaderboard_module.leaderboard_document
        self.calls = 0
        self.finished = 0
        self.delay_s = 0.0
        self.error: LamarenaError | None = None
        self._lock = threading.Lock()

    def __call__(self, frame: pd.DataFrame, **options: Any) -> dict[str, Any]:
        with self._lock:
            self.calls += 1
        try:
            time.sleep(self.delay_s)
            if self.error is not None:
                raise self.error
            document: dict[str, Any] = self.real(frame, **options)
            return document
        finally:
            with self._lock:
                self.finished += 1


@pytest.fixture
def fit(monkeypatch: pytest.MonkeyPatch) -> Fit:
    wrapped = Fit()
    monkeypatch.setattr(leaderboard_module, "leaderboard_document", wrapped)
    return wrapped


def _insert(harness: Harness, n_battles: int, *, seed: int) -> None:
    """Store ``n_battles`` counted votes (battle ids unique per seed)."""
    frame = simulate_battles(STRENGTHS, n_battles, seed=seed)
    frame = frame.assign(battle_id=[f"s{seed}-{index}" for index in range(len(frame))])
    with harness.engine.begin() as connection, Session(bind=connection) as session:
        insert_battle_records(session, records_from_frame(frame))
        session.commit()


def _get(client: httpx.Client) -> tuple[dict[str, Any], float]:
    """The leaderboard document and the seconds the request took."""
    started = time.perf_counter()
    answer = client.get("/api/leaderboard")
    elapsed = time.perf_counter() - started
    assert answer.status_code == 200, answer.text
    document: dict[str, Any] = answer.json()
    return document, elapsed


def _wait_for(condition: Callable[[], bool], timeout_s: float = 20.0) -> float:
    """Poll ``condition`` until it holds; the seconds it took."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout_s:
            raise AssertionError("the condition did not hold in time")
        time.sleep(0.02)
    return time.monotonic() - started


def test_a_request_gets_the_last_document_at_once_while_a_fit_runs(
    harness_factory: Any, fit: Fit
) -> None:
    harness: Harness = harness_factory(
        leaderboard_fit_at_start=False, leaderboard_refresh_s=REFRESH_S
    )
    _insert(harness, 60, seed=1)
    client = harness.client()
    first, _ = _get(client)  # the first request waits for the first fit
    assert (first["status"], first["n_battles"], first["n_votes"]) == ("ready", 60, 60)
    assert first["refresh_error"] is None and first["fit_s"] >= 0

    fit.delay_s = 3.0
    _insert(harness, 20, seed=2)
    _wait_for(lambda: fit.calls == 2)  # the refit has started and sleeps
    for _ in range(3):
        document, elapsed = _get(client)
        assert elapsed < QUICK_S
        assert fit.finished == 1  # still fitting: this is the previous document
        assert document["n_battles"] == 60 and document["computed_at"] == first["computed_at"]
    _wait_for(lambda: _get(client)[0]["n_battles"] == 80)
    refreshed, elapsed = _get(client)
    assert elapsed < QUICK_S and refreshed["n_votes"] == 80 and refreshed["fit_s"] >= 3.0


def test_the_document_refreshes_after_votes_within_refresh_and_fit_time(
    harness_factory: Any, fit: Fit
) -> None:
    harness: Harness = harness_factory(leaderboard_refresh_s=0.5)
    client = harness.client()
    empty, _ = _get(client)
    assert empty["n_battles"] == 0 and empty["n_votes"] == 0
    assert empty["models"] == [] and empty["by_mode"] is None

    fit.delay_s = 0.5
    _insert(harness, 40, seed=3)
    waited = _wait_for(lambda: _get(client)[0]["n_battles"] == 40)
    document, _ = _get(client)
    # one check interval, one fit (its own time includes the read), and slack for a busy machine
    assert waited < 0.5 + document["fit_s"] + 2.0
    assert {row["model"] for row in document["models"]} == set(STRENGTHS)
    for key in ("pairwise", "head_to_head", "mode", "battles_by_mode", "by_mode", "by_turns"):
        assert key in document


def test_the_age_grows_between_refreshes_and_no_refit_while_the_count_stays(
    harness_factory: Any, fit: Fit
) -> None:
    harness: Harness = harness_factory(leaderboard_refresh_s=0.05)
    _insert(harness, 30, seed=4)
    client = harness.client()
    first, _ = _get(client)
    time.sleep(1.0)  # about 20 checks of the count
    later, _ = _get(client)
    assert fit.calls == 1
    assert later["computed_at"] == first["computed_at"]
    assert later["age_s"] >= first["age_s"] + 0.9


def test_a_failing_fit_keeps_the_last_document_and_reports_it_once(
    harness_factory: Any, fit: Fit, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=leaderboard_module.__name__)
    harness: Harness = harness_factory(leaderboard_refresh_s=0.05)
    _insert(harness, 30, seed=5)
    client = harness.client()
    good, _ = _get(client)
    assert good["n_battles"] == 30

    fit.error = DatabaseError("the server at db.example closed the connection")
    _insert(harness, 10, seed=6)
    _wait_for(lambda: fit.calls >= 4)  # three failed refits at least
    failed, _ = _get(client)
    assert failed["refresh_error"] == {
        "error": "database_error",
        "message": "the votes could not be read; the ratings are from the last refresh",
    }
    assert (failed["n_battles"], failed["n_votes"]) == (30, 30)
    assert failed["models"] == good["models"] and failed["computed_at"] == good["computed_at"]
    assert "db.example" not in str(failed)
    logged = [r for r in caplog.records if "refreshing the leaderboard failed" in r.getMessage()]
    assert len(logged) == 1 and "db.example" in logged[0].getMessage()

    fit.error = None
    _wait_for(lambda: _get(client)[0]["n_battles"] == 40)
    recovered, _ = _get(client)
    assert recovered["refresh_error"] is None
    assert any("works again" in r.getMessage() for r in caplog.records)


def test_before_the_first_fit_ends_a_request_is_told_computing(
    harness_factory: Any, fit: Fit, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(leaderboard_module, "FIRST_WAIT_S", 1.5)
    harness: Harness = harness_factory(
        leaderboard_fit_at_start=False, leaderboard_refresh_s=REFRESH_S
    )
    _insert(harness, 30, seed=7)
    fit.delay_s = 4.0
    client = harness.client()
    computing, elapsed = _get(client)  # waited FIRST_WAIT_S for the first fit, then gave up
    assert computing["status"] == "computing" and "models" not in computing
    assert computing["age_s"] is None and 1.0 < elapsed < 3.5
    again, elapsed = _get(client)  # the first fit is waited for once per process, not per request
    assert again["status"] == "computing" and elapsed < QUICK_S
    _wait_for(lambda: _get(client)[0]["status"] == "ready")
    assert _get(client)[0]["n_battles"] == 30


def test_no_document_yet_and_a_failed_fit_answers_with_the_error(
    harness_factory: Any, fit: Fit
) -> None:
    fit.error = DatabaseError("the server at db.example closed the connection")
    harness: Harness = harness_factory(
        leaderboard_fit_at_start=False, leaderboard_refresh_s=REFRESH_S
    )
    answer = harness.client().get("/api/leaderboard")
    assert answer.status_code == 503
    assert answer.json()["error"] == "database_error" and "db.example" not in answer.text


def test_refresh_zero_refits_on_the_request_as_before(harness_factory: Any, fit: Fit) -> None:
    harness: Harness = harness_factory(leaderboard_refresh_s=0)
    client = harness.client()
    assert _get(client)[0]["n_battles"] == 0
    _insert(harness, 25, seed=8)
    assert _get(client)[0]["n_battles"] == 25  # at once, no background check
    _get(client)
    assert fit.calls == 2  # the count did not change: no third fit


@ON_SQLITE
def test_shutting_down_does_not_wait_for_a_fit(
    harness_factory: Any, fit: Fit, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(leaderboard_module, "FIRST_WAIT_S", 0.2)
    harness: Harness = harness_factory(
        leaderboard_fit_at_start=False, leaderboard_refresh_s=REFRESH_S
    )
    _insert(harness, 30, seed=9)
    app = create_app(
        harness.settings,
        entries=harness.entries,
        engine=harness.engine,
        options=ArenaOptions(seed=0),
    )
    with ExitStack() as stack:
        server = stack.enter_context(ArenaServer(app))
        fit.delay_s = 5.0
        with httpx.Client(base_url=server.url, timeout=30) as client:
            assert client.get("/api/leaderboard").json()["status"] == "computing"
        _wait_for(lambda: fit.calls == 1)
        started = time.monotonic()
    assert time.monotonic() - started < 4.0  # the 5 s fit was abandoned, not awaited


@pytest.fixture(scope="module")
def browser() -> Iterator[sync_api.Browser]:
    if shutil.which(CHROMIUM) is None:
        pytest.fail("Chromium is needed: apt-get install -y chromium", pytrace=False)
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            yield launched
        finally:
            launched.close()


@ON_SQLITE
def test_the_page_shows_the_age_of_the_document(
    harness_factory: Any, browser: sync_api.Browser
) -> None:
    harness: Harness = harness_factory(
        leaderboard_fit_at_start=False, leaderboard_refresh_s=REFRESH_S
    )
    _insert(harness, 50, seed=10)
    page = browser.new_page()
    try:
        page.goto(f"{harness.url}/leaderboard")
        sync_api.expect(page.locator("#summary")).to_contain_text("50 voted battles.")
        age = page.locator("#age")
        sync_api.expect(age).to_contain_text(" s ago")
        sync_api.expect(age).to_contain_text("Computed 2 s ago", timeout=10_000)  # it ticks
    finally:
        page.close()


@ON_SQLITE
def test_a_process_fits_as_it_starts_so_its_first_request_does_not_wait(
    harness_factory: Any, fit: Fit
) -> None:
    harness: Harness = harness_factory(leaderboard_refresh_s=REFRESH_S)  # not fitting at start
    _insert(harness, 30, seed=11)
    time.sleep(0.5)
    assert fit.calls == 0  # a process that does not fit at start and nobody asks never fits
    fit.delay_s = 2.0
    settings = harness.settings.model_copy(update={"leaderboard_fit_at_start": True})
    app = create_app(
        settings, entries=harness.entries, engine=harness.engine, options=ArenaOptions(seed=0)
    )
    with ArenaServer(app) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        assert fit.finished == 1  # the process began to serve once its first fit ended
        document, elapsed = _get(client)
        assert (document["status"], document["n_battles"], document["n_votes"]) == (
            "ready",
            30,
            30,
        )
        assert elapsed < QUICK_S and fit.calls == 1
