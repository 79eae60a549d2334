"""``kill -9`` of a served arena under load loses no acknowledged vote and duplicates none.

A real ``lamarena serve`` process (models.yaml pointing at two loopback OpenAI-compatible
fakes) takes a load of participants, each on a session of its own: upload a query, read the
stream to ``end``, vote. While they run, the whole server process group (with ``--workers``,
the supervisor and every worker) gets SIGKILL. Then the server restarts on the same database
and the test reads the database directly: every vote answered 200 is there exactly once with
the winner that was sent, no battle has two votes, and a vote is stored only for a battle whose
vote was either acknowledged or on the wire at the moment of the crash. After the restart the
server is healthy, still refuses a second vote on every acknowledged battle (409), settles
every unacknowledged vote on retry without duplicating it, and runs a new battle.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from helpers.arena_server import (
    ServeProcess,
    create_battle,
    read_stream,
    send_vote_unanswered,
    vote,
    write_models_yaml,
)
from helpers.databases import DatabaseFactory
from helpers.fake_openai import FakeOpenAI
from helpers.servers import unused_port
from lamarena.arena.deps import SESSION_COOKIE
from lamarena.store.db import make_engine
from lamarena.store.tables import Battle, Vote

PARTICIPANTS = 8
"""Load threads; each runs battles one after another, each battle on a fresh session."""
KILL_AFTER_VOTES = 25
"""Acknowledged votes before the crash (so the crash lands in the middle of steady load)."""
VOTES_ON_THE_WIRE = 3
"""Votes sent, unanswered, just before the crash: stored or not, never twice."""
LOAD_TIMEOUT_S = 30.0
LAB_LIMITS = {
    "LAMARENA_ADDRESS_BATTLES_PER_MINUTE": "100000",
    "LAMARENA_ADDRESS_VOTES_PER_MINUTE": "100000",
}
"""Every participant here shares 127.0.0.1: a lab's limits (one NAT), as the README advises.
The load threads start battles as fast as the server answers until the kill, so with the
default 60 a minute the battle after the restart was refused whenever the load ran fast."""
WINNERS = ("model_a", "model_b", "tie", "both_bad")


@dataclass
class Ledger:
    """What the participants were told, shared by the load threads."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    acknowledged: dict[str, str] = field(default_factory=dict)
    """battle id -> winner, for every vote answered 200."""
    unsettled: dict[str, str] = field(default_factory=dict)
    """battle id -> winner, for every vote sent whose answer never came (the crash)."""
    sessions: dict[str, str] = field(default_factory=dict)
    """battle id -> the session cookie that owns it."""
    unexpected: list[str] = field(default_factory=list)
    crashed_threads: int = 0


def _participant(url: str, audio: bytes, ledger: Ledger, stop: threading.Event, seed: int) -> None:
    """Battle after battle until the server goes away (or ``stop``)."""
    rng = random.Random(seed)
    while not stop.is_set():
        with httpx.Client(base_url=url, timeout=10) as client:
            try:
                created = create_battle(client, audio)
                if created.status_code != 201:
                    with ledger.lock:
                        ledger.unexpected.append(f"create: {created.status_code} {created.text}")
                    return
                battle_id = created.json()["battle_id"]
                with ledger.lock:
                    ledger.sessions[battle_id] = client.cookies[SESSION_COOKIE]
                events = read_stream(client, battle_id, timeout_s=10)
                done = sorted(e.data["side"] for e in events if e.name == "done")
                if done != ["a", "b"]:
                    with ledger.lock:
                        ledger.unexpected.append(f"stream of {battle_id}: {events}")
                    return
                winner = rng.choice(WINNERS)
                with ledger.lock:
                    ledger.unsettled[battle_id] = winner
                answer = vote(client, battle_id, winner)
                with ledger.lock:
                    del ledger.unsettled[battle_id]
                    if answer.status_code == 200:
                        ledger.acknowledged[battle_id] = winner
                    else:
                        ledger.unexpected.append(f"vote: {answer.status_code} {answer.text}")
                        return
            except httpx.TransportError:
                with ledger.lock:
                    ledger.crashed_threads += 1
                return


@pytest.fixture
def fake_models() -> Iterator[dict[str, str]]:
    """Two fast loopback OpenAI-compatible models: name -> base URL."""
    fakes = {
        "alpha": FakeOpenAI(first_token_delay_s=0.03, delta_delay_s=0.01),
        "beta": FakeOpenAI(deltas=("Paris", " it is."), first_token_delay_s=0.05),
    }
    with ExitStack() as stack:
        yield {name: stack.enter_context(fake.serve()).base_url for name, fake in fakes.items()}


def _crash_and_restart(
    database_url: str, workers: int, models: dict[str, str], audio: bytes, workdir: Path
) -> None:
    config = write_models_yaml(workdir / "models.yaml", models)
    port = unused_port()
    ledger = Ledger()
    stop = threading.Event()
    with ExitStack() as stack:
        stack.callback(stop.set)
        server = stack.enter_context(
            ServeProcess(
                config=config,
                database_url=database_url,
                port=port,
                workdir=workdir,
                workers=workers,
                env=LAB_LIMITS,
            )
        )
        server.wait_healthy()
        threads = [
            threading.Thread(
                target=_participant, args=(server.url, audio, ledger, stop, seed), daemon=True
            )
            for seed in range(PARTICIPANTS)
        ]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + LOAD_TIMEOUT_S
        while len(ledger.acknowledged) < KILL_AFTER_VOTES:
            assert not ledger.unexpected, (ledger.unexpected[:3], server.log_tail(1500))
            assert time.monotonic() < deadline, (len(ledger.acknowledged), server.log_tail())
            time.sleep(0.01)

        # Battles whose replies are done, then their votes sent at the last moment: the
        # crash comes before anyone reads the answers.
        pending: list[tuple[str, str]] = []
        for _ in range(VOTES_ON_THE_WIRE):
            with httpx.Client(base_url=server.url, timeout=10) as client:
                created = create_battle(client, audio)
                assert created.status_code == 201, created.text
                battle_id = created.json()["battle_id"]
                events = read_stream(client, battle_id, timeout_s=10)
                assert sorted(e.data["side"] for e in events if e.name == "done") == ["a", "b"]
                pending.append((battle_id, client.cookies[SESSION_COOKIE]))
        for battle_id, session in pending:
            with ledger.lock:
                ledger.sessions[battle_id] = session
                ledger.unsettled[battle_id] = "both_bad"
            sock = send_vote_unanswered(port, battle_id, session, "both_bad")
            stack.callback(sock.close)
        workers_pids = server.serving_pids()
        killed = server.kill9()
        assert len(workers_pids) == workers and workers_pids <= set(killed), (workers_pids, killed)
        for thread in threads:
            thread.join(15)
        assert not any(thread.is_alive() for thread in threads)
        assert not ledger.unexpected, ledger.unexpected
        # Every participant was mid-battle when the server died: the crash hit a busy server.
        assert ledger.crashed_threads == PARTICIPANTS

        server.start()  # same port, same database
        server.wait_healthy()
        assert httpx.get(f"{server.url}/healthz", timeout=5).json() == {"status": "ok"}

        engine = make_engine(database_url)
        stack.callback(engine.dispose)
        with engine.connect() as connection:
            stored = connection.execute(select(Vote.battle_id, Vote.winner)).all()
            duplicated = connection.execute(
                select(Vote.battle_id).group_by(Vote.battle_id).having(func.count() > 1)
            ).all()
            battles = connection.scalar(select(func.count()).select_from(Battle)) or 0
        votes = dict(stored)
        assert duplicated == [] and len(votes) == len(stored)
        for battle_id, winner in ledger.acknowledged.items():
            assert votes.get(battle_id) == winner, (battle_id, winner, votes.get(battle_id))
        unknown = set(votes) - set(ledger.acknowledged) - set(ledger.unsettled)
        assert unknown == set(), "votes stored that no participant sent"
        for battle_id in set(votes) & set(ledger.unsettled):  # committed, answer lost in the crash
            assert votes[battle_id] == ledger.unsettled[battle_id]
        assert battles >= len(ledger.acknowledged) + len(ledger.unsettled)

        # The restarted server knows every acknowledged vote: a second vote is refused.
        for battle_id in ledger.acknowledged:
            cookies = {SESSION_COOKIE: ledger.sessions[battle_id]}
            with httpx.Client(base_url=server.url, timeout=10, cookies=cookies) as client:
                again = vote(client, battle_id, "tie")
            assert again.status_code == 409, again.text
            assert again.json()["error"] == "already_voted"
        # A participant who retries a vote whose answer was lost gets it recorded once, or is
        # told it already is: never a second vote.
        for battle_id, winner in ledger.unsettled.items():
            cookies = {SESSION_COOKIE: ledger.sessions[battle_id]}
            with httpx.Client(base_url=server.url, timeout=10, cookies=cookies) as client:
                retried = vote(client, battle_id, winner)
            if battle_id in votes:
                assert retried.status_code == 409, retried.text
                assert retried.json()["error"] == "already_voted"
            else:
                assert retried.status_code == 200, retried.text
        with engine.connect() as connection:
            count_after = connection.scalar(select(func.count()).select_from(Vote)) or 0
            distinct_after = connection.scalar(select(func.count(func.distinct(Vote.battle_id))))
        assert count_after == distinct_after == len(set(votes) | set(ledger.unsettled))

        # And it runs new battles.
        with httpx.Client(base_url=server.url, timeout=10) as client:
            created = create_battle(client, audio)
            assert created.status_code == 201, created.text
            battle_id = created.json()["battle_id"]
            events = read_stream(client, battle_id)
            assert sorted(e.data["side"] for e in events if e.name == "done") == ["a", "b"]
            assert vote(client, battle_id, "tie").status_code == 200


def test_kill9_under_load_loses_and_duplicates_no_vote(
    databases: DatabaseFactory,
    fake_models: dict[str, str],
    speech_wav: bytes,
    tmp_path: Path,
) -> None:
    _crash_and_restart(databases.url(), 1, fake_models, speech_wav, tmp_path)


@pytest.mark.parametrize(
    "databases", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)
def test_kill9_of_two_workers_loses_and_duplicates_no_vote(
    databases: DatabaseFactory,
    fake_models: dict[str, str],
    speech_wav: bytes,
    tmp_path: Path,
) -> None:
    _crash_and_restart(databases.url(), 2, fake_models, speech_wav, tmp_path)
