"""Arena integrity (issue 11): flags keep votes out, limits per address, faults lose nothing.

Every test runs a real arena (uvicorn on 127.0.0.1, loopback fake models) on SQLite and
PostgreSQL unless it says otherwise.
"""

from __future__ import annotations

import contextlib
import errno
import http.client
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, select, text

from arena.conftest import Harness, read_events, start_arena
from helpers.fake_openai import FakeOpenAI
from lamarena.arena import ArenaOptions
from lamarena.arena.battles import LOST_ERROR
from lamarena.arena.deps import SESSION_COOKIE
from lamarena.audio import AudioLimits
from lamarena.store.db import make_sessionmaker
from lamarena.store.repo import create_battle, create_session
from lamarena.store.tables import Battle, ClientEvent, Reply, Vote

ALPHA_NAMES_ITSELF = ("As GPT-4o, an AI model", " developed by OpenAI,", " I say Paris.")
PLAIN = ("The capital", " of France", " is Paris!")


def _create(client: httpx.Client, audio: bytes, **form: str) -> httpx.Response:
    return client.post(
        "/api/battles", files={"audio": ("question.wav", audio, "audio/wav")}, data=form
    )


def _fresh(harness: Harness) -> httpx.Client:
    """A client with no cookie: every request a new session, as a script would send."""
    return harness.client()


def _battle(engine: Engine, battle_id: str) -> Battle:
    with make_sessionmaker(engine)() as session:
        row = session.get(Battle, battle_id)
        assert row is not None
        session.expunge(row)
        return row


def _open_and_finish(harness: Harness, client: httpx.Client, audio: bytes, **form: str) -> str:
    created = _create(client, audio, **form)
    assert created.status_code == 201, created.text
    battle_id: str = created.json()["battle_id"]
    harness.wait_for_replies(battle_id)
    return battle_id


def _declare_too_large(url: str) -> int:
    """POST a body that says it is 1 GB without sending it; the status of the answer."""
    parts = httpx.URL(url)
    connection = http.client.HTTPConnection(parts.host, parts.port, timeout=10)
    try:
        connection.putrequest("POST", "/api/battles")
        connection.putheader("Content-Type", "multipart/form-data; boundary=x")
        connection.putheader("Content-Length", str(10**9))
        connection.endheaders()
        return connection.getresponse().status
    finally:
        connection.close()


def _quick_fakes(first: tuple[str, ...] = PLAIN, second: tuple[str, ...] = PLAIN) -> Any:
    return {
        "alpha": FakeOpenAI(deltas=first, first_token_delay_s=0.01, delta_delay_s=0.01),
        "beta": FakeOpenAI(deltas=second, first_token_delay_s=0.01, delta_delay_s=0.01),
    }


# -- flags that keep a vote out of the leaderboard --------------------------------------------


def test_a_reply_naming_its_model_is_stored_but_not_counted(
    harness_factory: Any, speech_wav: bytes
) -> None:
    harness = harness_factory(fakes=_quick_fakes(ALPHA_NAMES_ITSELF, PLAIN))
    client = harness.client()
    battle_id = _open_and_finish(harness, client, speech_wav)

    reveal = client.post(f"/api/battles/{battle_id}/vote", json={"winner": "model_a"})
    assert reveal.status_code == 200, reveal.text
    body = reveal.json()
    assert (body["counted"], body["flag"], body["flags"]) == (
        False,
        "self_identified",
        ["self_identified"],
    )
    row = _battle(harness.engine, battle_id)
    assert (row.counted, row.flags) == (False, "self_identified")

    board = client.get("/api/leaderboard").json()
    assert board["n_battles"] == 0  # the one vote is flagged


def test_plain_replies_are_counted(harness_factory: Any, speech_wav: bytes) -> None:
    harness = harness_factory(fakes=_quick_fakes())
    client = harness.client()
    battle_id = _open_and_finish(harness, client, speech_wav)
    body = client.post(f"/api/battles/{battle_id}/vote", json={"winner": "tie"}).json()
    assert (body["counted"], body["flag"], body["flags"]) == (True, None, [])
    assert client.get("/api/leaderboard").json()["n_battles"] == 1


def test_the_same_audio_from_another_session_is_flagged_duplicate(
    harness_factory: Any, speech_wav: bytes
) -> None:
    harness = harness_factory(fakes=_quick_fakes())
    first = harness.client()
    own = [_open_and_finish(harness, first, speech_wav) for _ in range(2)]
    other = _open_and_finish(harness, harness.client(), speech_wav)

    assert [_battle(harness.engine, b).flags for b in own] == [None, None]  # one person, twice
    assert _battle(harness.engine, other).flags == "duplicate_audio"
    assert _battle(harness.engine, other).counted is False


# -- limits per address, shared through the database -----------------------------------------


def test_battles_without_a_cookie_are_limited_per_address(
    harness_factory: Any, speech_wav: bytes
) -> None:
    harness = harness_factory(fakes=_quick_fakes(), address_battles_per_minute=3)
    answers = [_create(_fresh(harness), speech_wav) for _ in range(5)]

    assert [a.status_code for a in answers] == [201, 201, 201, 429, 429]
    refused = answers[3]
    assert refused.json()["error"] == "rate_limited"
    assert "address" in refused.json()["message"]
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert harness.counts()["battles"] == 3


def test_refused_uploads_count_toward_the_address_limit(
    harness_factory: Any, speech_wav: bytes, silent_wav: bytes
) -> None:
    limits = AudioLimits(max_bytes=len(speech_wav) + 10)
    harness = harness_factory(
        fakes=_quick_fakes(),
        address_battles_per_minute=3,
        options=ArenaOptions(seed=0, audio_limits=limits),
    )
    client = _fresh(harness)
    assert _create(client, silent_wav).status_code == 422
    two_files = [("audio", ("a.wav", speech_wav, "audio/wav")), ("x", ("b.wav", b"1", "audio/wav"))]
    assert client.post("/api/battles", files=two_files).status_code == 400
    assert _declare_too_large(harness.url) == 413  # refused from its Content-Length alone

    good = _create(client, speech_wav)
    assert good.status_code == 429, good.text
    assert harness.counts()["battles"] == 0
    with harness.engine.connect() as connection:
        kinds = connection.scalars(select(ClientEvent.kind)).all()
    assert sorted(kinds) == ["refused", "refused", "refused"]


def test_an_address_sending_only_refused_uploads_waits_before_its_battle_budget_is_spent(
    harness_factory: Any, speech_wav: bytes, silent_wav: bytes
) -> None:
    harness = harness_factory(
        fakes=_quick_fakes(), address_battles_per_minute=60, address_refusals_per_minute=2
    )
    client = _fresh(harness)
    refused = [_create(client, silent_wav).status_code for _ in range(2)]

    good = _create(client, speech_wav)
    assert refused == [422, 422]
    assert good.status_code == 429, good.text
    assert "refused uploads" in good.json()["message"]
    assert 1 <= int(good.headers["Retry-After"]) <= 60
    assert harness.counts()["battles"] == 0


def test_the_whole_arena_has_a_ceiling(harness_factory: Any, speech_wav: bytes) -> None:
    harness = harness_factory(fakes=_quick_fakes(), global_battles_per_minute=2)
    answers = [_create(_fresh(harness), speech_wav) for _ in range(3)]
    assert [a.status_code for a in answers] == [201, 201, 429]
    assert "the arena is at its limit" in answers[2].json()["message"]
    assert "Retry-After" in answers[2].headers


def test_votes_are_limited_per_address(harness_factory: Any, speech_wav: bytes) -> None:
    harness = harness_factory(fakes=_quick_fakes(), address_votes_per_minute=1)
    voters = [harness.client() for _ in range(2)]
    battles = [_open_and_finish(harness, voter, speech_wav) for voter in voters]

    first = voters[0].post(f"/api/battles/{battles[0]}/vote", json={"winner": "model_a"})
    second = voters[1].post(f"/api/battles/{battles[1]}/vote", json={"winner": "model_b"})
    assert (first.status_code, second.status_code) == (200, 429)
    assert "Retry-After" in second.headers
    with harness.engine.connect() as connection:
        stored = connection.execute(select(Vote.battle_id, Vote.client_hash)).all()
    assert [row.battle_id for row in stored] == [battles[0]]
    assert stored[0].client_hash is not None and len(stored[0].client_hash) == 64


def test_spoken_reasons_are_bounded_per_battle_and_per_address(
    harness_factory: Any, speech_wav: bytes
) -> None:
    harness = harness_factory(
        fakes=_quick_fakes(),
        asr=True,
        transcriptions_per_battle=2,
        address_transcriptions_per_minute=3,
    )
    client = harness.client()
    battles = [_open_and_finish(harness, client, speech_wav) for _ in range(2)]
    assert harness.asr is not None
    # Each query is transcribed too, after its stream ends: wait for both before counting.
    deadline = time.monotonic() + 10
    while any(_battle(harness.engine, b).query_transcript is None for b in battles):
        assert time.monotonic() < deadline, "the queries were never transcribed"
        time.sleep(0.02)
    before = len(harness.asr.transcription_requests)

    def reason(battle_id: str) -> httpx.Response:
        return client.post(
            f"/api/battles/{battle_id}/feedback-audio",
            files={"audio": ("why.wav", speech_wav, "audio/wav")},
        )

    on_first = [reason(battles[0]).status_code for _ in range(3)]
    assert on_first == [200, 200, 429]  # the battle's two
    on_second = [reason(battles[1]).status_code for _ in range(2)]
    assert on_second == [200, 429]  # the address's third, then its limit
    assert len(harness.asr.transcription_requests) - before == 3  # paid calls made


def test_a_session_holds_a_bounded_number_of_streams(
    harness_factory: Any, speech_wav: bytes
) -> None:
    slow = {
        "alpha": FakeOpenAI(deltas=PLAIN, first_token_delay_s=0.05, delta_delay_s=1.0),
        "beta": FakeOpenAI(deltas=PLAIN, first_token_delay_s=0.05, delta_delay_s=1.0),
    }
    harness = harness_factory(fakes=slow, streams_per_session=1)
    client = harness.client()
    created = _create(client, speech_wav)
    battle_id = created.json()["battle_id"]
    url = f"/api/battles/{battle_id}/stream"
    with client.stream("GET", url) as first:
        assert first.status_code == 200
        second = client.get(url)
        assert second.status_code == 429, second.text
        assert second.json()["error"] == "rate_limited"
    harness.wait_for_replies(battle_id)
    deadline = time.monotonic() + 5
    while (again := client.get(url)).status_code == 429 and time.monotonic() < deadline:
        time.sleep(0.05)  # the server notices the first stream closed
    assert again.status_code == 200


# -- participants and sessions ---------------------------------------------------------------


def test_participant_is_stored_on_each_battle(harness_factory: Any, speech_wav: bytes) -> None:
    harness = harness_factory(fakes=_quick_fakes())
    browser = harness.client()
    first = _open_and_finish(harness, browser, speech_wav, pid="p-one")
    second = _open_and_finish(harness, browser, speech_wav, pid="p-two")
    third = _open_and_finish(harness, browser, speech_wav)  # the cookie's participant
    owners = [_battle(harness.engine, b).participant_id for b in (first, second, third)]
    assert owners == ["p-one", "p-two", "p-two"]


def test_a_session_expires(harness_factory: Any, speech_wav: bytes) -> None:
    harness = harness_factory(fakes=_quick_fakes(), session_max_age_h=1.5 / 3600)
    client = harness.client()
    created = _create(client, speech_wav)
    assert "Max-Age=1" in created.headers["set-cookie"]
    cookie = created.cookies[SESSION_COOKIE]
    again = _create(client, speech_wav)
    assert again.cookies.get(SESSION_COOKIE, cookie) == cookie  # still the same session
    time.sleep(1.6)
    later = client.post(
        "/api/battles",
        files={"audio": ("q.wav", speech_wav, "audio/wav")},
        headers={"Cookie": f"{SESSION_COOKIE}={cookie}"},
    )
    assert later.status_code == 201
    assert later.cookies[SESSION_COOKIE] != cookie


# -- nothing acknowledged that is not stored -------------------------------------------------


def _refuse_battle_inserts(engine: Engine) -> None:
    with engine.begin() as connection:
        if engine.dialect.name == "sqlite":
            connection.execute(
                text(
                    "CREATE TRIGGER refuse BEFORE INSERT ON battles "
                    "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
                )
            )
        else:
            connection.execute(
                text(
                    "CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN "
                    "RAISE EXCEPTION 'refused by the test'; END $$ LANGUAGE plpgsql"
                )
            )
            connection.execute(
                text(
                    "CREATE TRIGGER refuse BEFORE INSERT ON battles "
                    "FOR EACH ROW EXECUTE FUNCTION refuse()"
                )
            )


def test_consented_audio_is_not_kept_when_the_commit_fails(
    harness_factory: Any, speech_wav: bytes
) -> None:
    harness = harness_factory(fakes=_quick_fakes())
    _refuse_battle_inserts(harness.engine)
    answer = _create(harness.client(), speech_wav, consent="true")
    assert answer.status_code == 503
    assert answer.json()["error"] == "database_error"
    audio_dir = harness.data_dir / "audio"
    assert not audio_dir.exists() or list(audio_dir.iterdir()) == []
    assert harness.counts()["battles"] == 0


def test_consented_audio_appears_only_with_its_battle(
    harness_factory: Any, speech_wav: bytes
) -> None:
    harness = harness_factory(fakes=_quick_fakes())
    battle_id = _open_and_finish(harness, harness.client(), speech_wav, consent="true")
    kept = _battle(harness.engine, battle_id).kept_audio_path
    assert kept is not None and Path(kept).read_bytes() == speech_wav
    assert [p.name for p in (harness.data_dir / "audio").iterdir()] == [Path(kept).name]


@contextlib.contextmanager
def _tiny_disk(path: Path) -> Iterator[bool]:
    """A 64 KiB tmpfs at ``path``; False when this machine may not mount (not root)."""
    path.mkdir(parents=True)
    mounted = (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(path)],
            capture_output=True,
            check=False,
        ).returncode
        == 0
    )
    try:
        yield mounted
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(path)], check=False)


def test_a_full_disk_gives_a_json_503_and_stores_nothing(
    harness_factory: Any, speech_wav: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert len(speech_wav) > 64 * 1024  # more than the disk holds
    with _tiny_disk(tmp_path / "disk") as mounted:
        if not mounted:  # no mount permission: the disk fills at the first write instead
            real_fdopen = os.fdopen

            def full(fd: int, *args: Any, **kwargs: Any) -> Any:
                handle = real_fdopen(fd, *args, **kwargs)

                def write(_data: bytes) -> int:
                    raise OSError(errno.ENOSPC, "No space left on device")

                handle.write = write
                return handle

            monkeypatch.setattr("lamarena.arena.battles.os.fdopen", full)
        harness = harness_factory(fakes=_quick_fakes(), data_dir=tmp_path / "disk")
        answer = _create(harness.client(), speech_wav, consent="true")
        assert answer.status_code == 503
        assert answer.headers["content-type"] == "application/json"
        assert answer.json()["error"] == "storage_full"
        assert "disk is full" in answer.json()["message"]
        assert harness.counts()["battles"] == 0
        audio_dir = tmp_path / "disk" / "audio"
        assert not audio_dir.exists() or list(audio_dir.iterdir()) == []


@pytest.mark.parametrize("databases", ["sqlite"], indirect=True)
def test_a_vote_is_refused_once_the_database_file_is_gone(
    harness_factory: Any, speech_wav: bytes
) -> None:
    harness = harness_factory(fakes=_quick_fakes())
    client = harness.client()
    battle_id = _open_and_finish(harness, client, speech_wav)
    database = Path(str(harness.engine.url.database))
    for suffix in ("", "-wal", "-shm"):
        Path(f"{database}{suffix}").unlink(missing_ok=True)

    answer = client.post(f"/api/battles/{battle_id}/vote", json={"winner": "model_a"})
    assert answer.status_code == 503
    assert answer.json()["error"] == "database_error"
    assert _create(client, speech_wav).status_code == 503


def test_battles_an_earlier_run_left_generating_are_lost_at_start(harness_factory: Any) -> None:
    harness = harness_factory(fakes=_quick_fakes(), server_run_id="this-run")
    with make_sessionmaker(harness.engine).begin() as session:
        session_id = create_session(session)
        earlier = create_battle(
            session, model_a="alpha", model_b="beta", session_id=session_id, server_run="old"
        )
        current = create_battle(
            session, model_a="alpha", model_b="beta", session_id=session_id, server_run="this-run"
        )
    # another worker of this run starts on the same database
    with contextlib.ExitStack() as stack:
        start_arena(stack, harness)
    with make_sessionmaker(harness.engine)() as session:
        stored = {(row.battle_id, row.side): row.error for row in session.scalars(select(Reply))}
    assert stored[(earlier, "a")] == LOST_ERROR and stored[(earlier, "b")] == LOST_ERROR
    assert (current, "a") not in stored  # this run's own battles are left alone

    cookie = {SESSION_COOKIE: session_id}
    with httpx.Client(base_url=harness.url, cookies=cookie, timeout=10) as client:
        started = time.monotonic()
        body = client.get(f"/api/battles/{earlier}/stream").text
        assert time.monotonic() - started < 5  # not at the loss deadline
        assert "was lost" in body
        vote = client.post(f"/api/battles/{earlier}/vote", json={"winner": "tie"})
        assert vote.status_code == 422 and "lost" in vote.json()["message"]


# -- equal pace ------------------------------------------------------------------------------


def test_equal_pace_hides_which_model_is_faster(harness_factory: Any, speech_wav: bytes) -> None:
    fakes = {
        "alpha": FakeOpenAI(deltas=("Paris is the capital of France.",), first_token_delay_s=0.01),
        "beta": FakeOpenAI(
            deltas=("The capital ", "of France ", "is Paris, yes."),
            first_token_delay_s=0.01,
            delta_delay_s=0.4,
        ),
    }
    harness = harness_factory(fakes=fakes, equal_pace=True, pace_chars_per_s=60)
    client = harness.client()
    battle_id = _create(client, speech_wav).json()["battle_id"]
    events = read_events(client, battle_id)

    reveal = client.post(f"/api/battles/{battle_id}/vote", json={"winner": "tie"}).json()
    sides = {reveal["model_a"]: "a", reveal["model_b"]: "b"}
    texts = {"a": "", "b": ""}
    done_at: dict[str, float] = {}
    first_delta = min(e.at for e in events if e.name == "delta")
    for event in events:
        if event.name == "delta":
            texts[event.data["side"]] += event.data["text"]
        elif event.name == "done":
            done_at[event.data["side"]] = event.at - first_delta
    assert texts[sides["alpha"]] == "Paris is the capital of France."
    assert texts[sides["beta"]] == "The capital of France is Paris, yes."
    # Unpaced, alpha's done comes ~0.8 s before beta's; paced, both end together.
    assert done_at[sides["alpha"]] >= 0.6
    assert abs(done_at["a"] - done_at["b"]) < 0.3
    assert reveal["equal_pace"] is True
    assert _battle(harness.engine, battle_id).equal_pace is True
