"""``lamarena serve --workers 2`` over PostgreSQL: the workers share battles through the database.

The app says nothing about which worker answered a request, so the test asks the kernel: the
server end of each TCP connection belongs to one worker process (``ServeProcess.pid_serving``,
psutil's socket table). To put a request on a chosen worker, the test opens connections until
that worker accepts one (``ServeProcess.connect_to``) and speaks HTTP/1.0 over it.
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
from sqlalchemy import Engine, func, select

from helpers.arena_server import (
    ServeProcess,
    SseEvent,
    client_port,
    create_battle,
    parse_sse,
    read_response,
    read_stream,
    send_request,
    vote,
    write_models_yaml,
)
from helpers.databases import DatabaseFactory
from helpers.fake_openai import FakeOpenAI
from helpers.servers import unused_port
from lamarena.arena.deps import SESSION_COOKIE
from lamarena.store.db import make_engine
from lamarena.store.tables import Reply, Vote

pytestmark = pytest.mark.parametrize(
    "databases", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)

WORKERS = 2
PARTICIPANTS = 16
WINNERS = ("model_a", "model_b", "tie", "both_bad")
ALPHA = ("Paris", " is the", " capital.")
BETA = ("The capital", " of France", " is Paris!")


@dataclass
class Served:
    """A running two-worker arena and a direct engine on its database."""

    server: ServeProcess
    engine: Engine
    workers: set[int]
    fakes: dict[str, FakeOpenAI]


@pytest.fixture
def served(databases: DatabaseFactory, tmp_path: Path) -> Iterator[Served]:
    fakes = {
        "alpha": FakeOpenAI(deltas=ALPHA, first_token_delay_s=0.2, delta_delay_s=0.15),
        "beta": FakeOpenAI(deltas=BETA, first_token_delay_s=0.3, delta_delay_s=0.1),
    }
    with ExitStack() as stack:
        models = {name: stack.enter_context(fake.serve()).base_url for name, fake in fakes.items()}
        url = databases.url()
        server = stack.enter_context(
            ServeProcess(
                config=write_models_yaml(tmp_path / "models.yaml", models),
                database_url=url,
                port=unused_port(),
                workdir=tmp_path,
                workers=WORKERS,
            )
        )
        server.wait_healthy()
        workers = server.serving_pids()
        assert len(workers) == WORKERS and server.process is not None
        assert server.process.pid not in workers  # the supervisor serves nothing itself
        engine = make_engine(url)
        stack.callback(engine.dispose)
        yield Served(server, engine, workers, fakes)


def _texts(events: list[SseEvent]) -> dict[str, str]:
    texts = {"a": "", "b": ""}
    for event in events:
        if event.name == "delta":
            texts[event.data["side"]] += event.data["text"]
    return texts


def _stored_votes(engine: Engine, battle_ids: list[str]) -> dict[str, list[str]]:
    with engine.connect() as connection:
        rows = connection.execute(
            select(Vote.battle_id, Vote.winner).where(Vote.battle_id.in_(battle_ids))
        ).all()
    votes: dict[str, list[str]] = {}
    for battle_id, winner in rows:
        votes.setdefault(battle_id, []).append(winner)
    return votes


@dataclass
class Round:
    """One participant's battle: what it saw, and which worker answered each step."""

    winner: str
    battle_id: str = ""
    events: list[SseEvent] = field(default_factory=list)
    first: int = 0
    second: tuple[int, str] = (0, "")
    pids: dict[str, int | None] = field(default_factory=dict)


def test_concurrent_participants_are_served_by_both_workers(
    served: Served, speech_wav: bytes
) -> None:
    """Every step of a battle on a new connection: any worker may take any step."""
    server = served.server
    rounds: list[Round] = []
    failures: list[BaseException] = []
    lock = threading.Lock()

    def participant(seed: int) -> None:
        seen = Round(winner=random.Random(seed).choice(WINNERS))

        def note(step: str, response: httpx.Response) -> None:
            seen.pids[step] = server.pid_serving(client_port(response))

        try:
            with httpx.Client(base_url=server.url, timeout=15) as uploader:
                created = create_battle(uploader, speech_wav)
                assert created.status_code == 201, created.text
                note("create", created)
                seen.battle_id = created.json()["battle_id"]
                cookies = {SESSION_COOKIE: uploader.cookies[SESSION_COOKIE]}
            with httpx.Client(base_url=server.url, timeout=15, cookies=cookies) as viewer:
                seen.events = read_stream(
                    viewer, seen.battle_id, on_open=lambda response: note("stream", response)
                )
            with httpx.Client(base_url=server.url, timeout=15, cookies=cookies) as voter:
                first = vote(voter, seen.battle_id, seen.winner)
                note("vote", first)
            with httpx.Client(base_url=server.url, timeout=15, cookies=cookies) as voter:
                second = vote(voter, seen.battle_id, "tie")
                note("second_vote", second)
            seen.first = first.status_code
            seen.second = (second.status_code, second.json().get("error"))
            with lock:
                rounds.append(seen)
        except BaseException as exc:  # reported by the main thread
            with lock:
                failures.append(exc)

    threads = [threading.Thread(target=participant, args=(n,)) for n in range(PARTICIPANTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(thread.is_alive() for thread in threads)
    assert not failures, failures
    assert len(rounds) == PARTICIPANTS

    for seen in rounds:
        assert [event.name for event in seen.events][-1] == "end"
        assert sorted(_texts(seen.events).values()) == sorted(["".join(ALPHA), "".join(BETA)])
        assert seen.first == 200
        assert seen.second == (409, "already_voted")
        assert len(seen.pids) == 4
    pids = [pid for seen in rounds for pid in seen.pids.values()]
    assert set(pids) <= served.workers, pids  # every request answered by a known worker
    assert set(pids) == served.workers, pids  # and both workers answered some
    # Some battle had steps on both workers (e.g. generated by one, voted on by the other).
    assert any(len(set(seen.pids.values())) == WORKERS for seen in rounds)

    votes = _stored_votes(served.engine, [seen.battle_id for seen in rounds])
    assert votes == {seen.battle_id: [seen.winner] for seen in rounds}


def _open_battle(served: Served, audio: bytes) -> tuple[str, str, int]:
    """Upload a query; return the battle id, its session and the worker generating it."""
    with httpx.Client(base_url=served.server.url, timeout=15) as client:
        created = create_battle(client, audio)
        assert created.status_code == 201, created.text
        generator = served.server.pid_serving(client_port(created))
        assert generator in served.workers
        return created.json()["battle_id"], client.cookies[SESSION_COOKIE], generator


def _replies_stored(engine: Engine, battle_id: str) -> int:
    with engine.connect() as connection:
        count = connection.scalar(
            select(func.count()).select_from(Reply).where(Reply.battle_id == battle_id)
        )
    return int(count or 0)


def test_stream_from_the_worker_that_did_not_generate_the_battle(
    served: Served, speech_wav: bytes
) -> None:
    # Both models send their first delta, then wait until the stream has been asked for.
    gates = [fake.hold_after_first() for fake in served.fakes.values()]
    battle_id, session, generator = _open_battle(served, speech_wav)
    (other,) = served.workers - {generator}

    sock = served.server.connect_to(other)
    send_request(sock, "GET", f"/api/battles/{battle_id}/stream", session=session)
    # The generating worker is mid-reply: both models asked, nothing stored yet.
    deadline = time.monotonic() + 5
    while any(not fake.chat_requests for fake in served.fakes.values()):
        assert time.monotonic() < deadline, "the models were never asked"
        time.sleep(0.01)
    assert [len(fake.chat_requests) for fake in served.fakes.values()] == [1, 1]
    assert _replies_stored(served.engine, battle_id) == 0
    for gate in gates:
        gate.set()
    response = read_response(sock)
    assert [fake.gate_timed_out for fake in served.fakes.values()] == [False, False]
    assert response.status == 200, response.body
    assert response.headers["content-type"].startswith("text/event-stream")
    events = parse_sse(response.body)
    assert [e.name for e in events][-1] == "end"
    assert sorted(e.data["side"] for e in events if e.name == "done") == ["a", "b"]
    assert all(set(e.data) == {"side", "turn"} for e in events if e.name == "done")  # no timings
    assert sorted(_texts(events).values()) == sorted(["".join(ALPHA), "".join(BETA)])
    assert _replies_stored(served.engine, battle_id) == 2

    # The same battle streamed again by its own worker, from the database now, agrees.
    sock = served.server.connect_to(generator)
    send_request(sock, "GET", f"/api/battles/{battle_id}/stream", session=session)
    again = parse_sse(read_response(sock).body)
    assert _texts(again) == _texts(events)

    # A stream for another session's battle is refused by the other worker too.
    sock = served.server.connect_to(other)
    send_request(sock, "GET", f"/api/battles/{battle_id}/stream", session="not-this-session")
    assert read_response(sock).status == 404


@pytest.mark.parametrize("first_on", ["generator", "other"])
def test_second_vote_is_409_on_either_worker(
    served: Served, speech_wav: bytes, first_on: str
) -> None:
    battle_id, session, generator = _open_battle(served, speech_wav)
    (other,) = served.workers - {generator}
    first_worker, second_worker = (
        (generator, other) if first_on == "generator" else (other, generator)
    )
    with httpx.Client(base_url=served.server.url, timeout=15) as client:
        client.cookies.set(SESSION_COOKIE, session)
        read_stream(client, battle_id)

    path = f"/api/battles/{battle_id}/vote"
    sock = served.server.connect_to(first_worker)
    send_request(sock, "POST", path, session=session, json_body={"winner": "model_b"})
    first = read_response(sock)
    assert first.status == 200, first.body
    assert first.json()["model_a"] != first.json()["model_b"]

    sock = served.server.connect_to(second_worker)
    send_request(sock, "POST", path, session=session, json_body={"winner": "model_a"})
    second = read_response(sock)
    assert second.status == 409, second.body
    assert second.json()["error"] == "already_voted"
    assert _stored_votes(served.engine, [battle_id]) == {battle_id: ["model_b"]}


def test_simultaneous_votes_on_both_workers_store_one(served: Served, speech_wav: bytes) -> None:
    """The same vote sent to both workers at once: one 200, one 409, one row."""
    battle_ids = []
    for _ in range(5):
        battle_id, session, _generator = _open_battle(served, speech_wav)
        with httpx.Client(base_url=served.server.url, timeout=15) as client:
            client.cookies.set(SESSION_COOKIE, session)
            read_stream(client, battle_id)
        socks = [served.server.connect_to(pid) for pid in sorted(served.workers)]
        for sock, winner in zip(socks, ("model_a", "model_b"), strict=True):
            send_request(
                sock,
                "POST",
                f"/api/battles/{battle_id}/vote",
                session=session,
                json_body={"winner": winner},
            )
        answers = [read_response(sock) for sock in socks]
        assert sorted(answer.status for answer in answers) == [200, 409], answers
        (refused,) = [answer for answer in answers if answer.status == 409]
        assert refused.json()["error"] == "already_voted"
        (accepted,) = [i for i, answer in enumerate(answers) if answer.status == 200]
        votes = _stored_votes(served.engine, [battle_id])
        assert votes == {battle_id: [("model_a", "model_b")[accepted]]}
        battle_ids.append(battle_id)
    assert len(_stored_votes(served.engine, battle_ids)) == 5
