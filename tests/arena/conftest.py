"""An arena under real uvicorn (lifespan on) with two loopback OpenAI-compatible models."""

from __future__ import annotations

import io
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx
import numpy as np
import pytest
import soundfile
import uvicorn
from fastapi import FastAPI
from sqlalchemy import Engine, func, select

from helpers.arena_server import ServeProcess
from helpers.databases import DatabaseFactory
from helpers.fake_openai import FakeOpenAI
from helpers.servers import unused_port
from helpers.speech import speak
from lamarena.arena import ArenaOptions, create_app
from lamarena.models.base import Transcriber
from lamarena.models.openai_compat import OpenAIChatModel, OpenAITranscriber
from lamarena.models.registry import ModelEntry
from lamarena.settings import Settings
from lamarena.store.tables import Battle, Participant, Reply, Vote
from lamarena.store.tables import Session as SessionRow

_START_TIMEOUT_S = 15.0


class ArenaServer:
    """Real uvicorn on 127.0.0.1 in a thread, with the app's lifespan running."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        config = uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,
            lifespan="on",
            ws="none",
            http="h11",
            timeout_graceful_shutdown=1,
            proxy_headers=False,  # as `serve` without --forwarded-allow-ips
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    def __enter__(self) -> ArenaServer:
        self._thread.start()
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self._sock.close()
                raise RuntimeError("the arena did not start")
            time.sleep(0.005)
        return self

    def __exit__(self, *_exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(15)
        self._sock.close()


@dataclass
class SseEvent:
    name: str
    data: dict[str, Any]
    at: float


def read_events(client: httpx.Client, battle_id: str, turn: int | None = None) -> list[SseEvent]:
    """Every event of a battle's stream (its latest turn, or ``turn``), up to ``end``."""
    events: list[SseEvent] = []
    name: str | None = None
    data = ""
    params = {} if turn is None else {"turn": turn}
    url = f"/api/battles/{battle_id}/stream"
    with client.stream("GET", url, params=params, timeout=30) as response:
        assert response.status_code == 200, response.read()
        for line in response.iter_lines():
            if line.startswith("event:"):
                name = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                data += line.split(":", 1)[1].strip()
            elif not line and name is not None:
                events.append(SseEvent(name, json.loads(data) if data else {}, time.monotonic()))
                if name == "end":
                    break
                name, data = None, ""
    return events


@dataclass
class Harness:
    """A running arena: its URL, a client with a cookie jar, its database and its fakes."""

    url: str
    engine: Engine
    fakes: dict[str, FakeOpenAI]
    data_dir: Path
    settings: Settings
    entries: list[ModelEntry]
    clients: list[httpx.Client] = field(default_factory=list)
    app: FastAPI | None = None
    asr: FakeOpenAI | None = None
    transcriber: Transcriber | None = None

    def client(self) -> httpx.Client:
        """A new client (a new browser: its own cookie jar)."""
        client = httpx.Client(base_url=self.url, timeout=30)
        self.clients.append(client)
        return client

    def counts(self) -> dict[str, int]:
        with self.engine.connect() as connection:
            return {
                table.__tablename__: connection.scalar(select(func.count()).select_from(table)) or 0
                for table in (Participant, SessionRow, Battle, Reply, Vote)
            }

    def wait_for_replies(self, battle_id: str, timeout_s: float = 15) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self.engine.connect() as connection:
                n = connection.scalar(
                    select(func.count()).select_from(Reply).where(Reply.battle_id == battle_id)
                )
            if n == 2:
                return
            time.sleep(0.02)
        raise AssertionError(f"battle {battle_id} did not get its two replies")


@pytest.fixture(scope="session")
def speech_wav(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("speech") / "question.wav"
    return speak("What is the capital of France?", path).read_bytes()


@pytest.fixture(scope="session")
def silent_wav() -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, np.zeros(16_000, dtype=np.float32), 16_000, format="WAV")
    return buffer.getvalue()


def make_entry(name: str, base_url: str, *, speaks: bool = False) -> ModelEntry:
    """A loopback OpenAI-compatible model; ``speaks`` asks it for audio (``output: audio``)."""
    output: Literal["text", "audio"] = "audio" if speaks else "text"
    return ModelEntry(
        name=name,
        kind="openai",
        model="fake-model",
        offline=False,
        system_prompt="Answer in one sentence.",
        build=lambda: OpenAIChatModel(
            name, "fake-model", base_url=base_url, api_key="k", output=output
        ),
        speaks=speaks,
    )


def start_arena(
    stack: ExitStack, harness: Harness, *, options: ArenaOptions | None = None
) -> ArenaServer:
    app = create_app(
        harness.settings,
        entries=harness.entries,
        engine=harness.engine,
        options=options or ArenaOptions(seed=0),
        transcriber=harness.transcriber,
    )
    return stack.enter_context(ArenaServer(app))


@pytest.fixture
def harness_factory(databases: DatabaseFactory, tmp_path: Path) -> Iterator[Any]:
    """Builds arenas: ``harness_factory(options=...)`` returns a running :class:`Harness`."""
    with ExitStack() as stack:

        def build(
            *,
            options: ArenaOptions | None = None,
            asr: bool = False,
            fakes: dict[str, FakeOpenAI] | None = None,
            speaking: bool = False,
            wrap_entry: Callable[[ModelEntry], ModelEntry] | None = None,
            **overrides: Any,
        ) -> Harness:
            """An arena on the test database; ``asr`` adds a loopback speech recogniser.

            ``fakes`` replaces the two default models (alpha and beta) by name; ``speaking``
            makes them answer with audio (pair it with ``mode="speech"``); ``wrap_entry``
            changes each model's registry entry (e.g. to give its adapter an audio limit).
            """
            # Deltas 0.2 s apart, offset by 0.1 s: the two sides' deltas alternate.
            fakes = fakes or {
                "alpha": FakeOpenAI(
                    deltas=("Paris", " is the", " capital."),
                    first_token_delay_s=0.05,
                    delta_delay_s=0.2,
                ),
                "beta": FakeOpenAI(
                    deltas=("The capital", " of France", " is Paris!"),
                    first_token_delay_s=0.15,
                    delta_delay_s=0.2,
                ),
            }
            entries = [
                make_entry(name, stack.enter_context(fake.serve()).base_url, speaks=speaking)
                for name, fake in fakes.items()
            ]
            if wrap_entry is not None:
                entries = [wrap_entry(entry) for entry in entries]
            engine = databases.engine()
            data_dir = overrides.pop("data_dir", tmp_path / "data")
            settings = Settings(
                database_url=engine.url.render_as_string(hide_password=False),
                data_dir=data_dir,
                model_first_token_timeout_s=10,
                model_total_timeout_s=20,
                min_battles=1,
                # tests store votes once the arena runs and expect its first answer to count
                # them; test_leaderboard_refresh.py tests the fit at start
                **{"leaderboard_fit_at_start": False, **overrides},
            )
            harness = Harness("", engine, fakes, data_dir, settings, entries)
            if asr:
                harness.asr = FakeOpenAI()
                asr_url = stack.enter_context(harness.asr.serve()).base_url
                harness.transcriber = OpenAITranscriber("arena/asr", base_url=asr_url, api_key="k")
            server = start_arena(stack, harness, options=options)
            harness.url, harness.app = server.url, server.app
            stack.callback(lambda: [client.close() for client in harness.clients])
            return harness

        yield build


@pytest.fixture
def harness(harness_factory: Any) -> Harness:
    built: Harness = harness_factory()
    return built


@pytest.fixture
def offline_database(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'arena.db'}"


@pytest.fixture
def offline_served(tmp_path: Path, offline_database: str) -> Iterator[str]:
    """``lamarena serve`` as a user starts it: SQLite and the built-in offline models.

    serve loads the models before it answers, converting SmolLM2's GGUF into a fresh cache
    directory first (about 50 s on two CPU threads), hence the long wait.
    """
    server = ServeProcess(
        config=None, database_url=offline_database, port=unused_port(), workdir=tmp_path
    )
    with server:
        try:
            server.wait_healthy(timeout_s=180)
        except RuntimeError as exc:
            pytest.fail(str(exc), pytrace=False)
        yield server.url
