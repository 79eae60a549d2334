"""App-level behaviour: start-up checks, the live fan-out, errors that must not leak details."""

from __future__ import annotations

import asyncio
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

import lamarena.arena
from lamarena.arena import ArenaOptions, create_app
from lamarena.arena.live import Event, LiveBattle
from lamarena.errors import ConfigError
from lamarena.settings import Settings
from lamarena.store.db import make_engine

from .conftest import ArenaServer, make_entry


def test_public_names_exist() -> None:
    assert sorted(lamarena.arena.__all__) == lamarena.arena.__all__
    for name in lamarena.arena.__all__:
        assert hasattr(lamarena.arena, name)


async def test_late_follower_sees_every_event() -> None:
    live = LiveBattle()
    early: list[str] = []

    async def follow(into: list[str]) -> None:
        async for event in live.follow():
            into.append(event.name)

    first = asyncio.create_task(follow(early))
    await live.publish(Event("delta", {"side": "a", "text": "hi"}))
    await asyncio.sleep(0)
    await live.publish(Event("done", {"side": "a"}))
    late: list[str] = []
    second = asyncio.create_task(follow(late))
    await live.finish()
    await asyncio.gather(first, second)
    assert early == late == ["delta", "done", "end"]


async def test_fewer_than_two_models_fails_at_start(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'x.db'}", data_dir=tmp_path)
    app = create_app(settings, entries=[make_entry("only", "http://127.0.0.1:9/v1")])
    with pytest.raises(ConfigError, match="at least two models"):
        async with app.router.lifespan_context(app):
            pass


def test_unreachable_database_gives_503_without_details(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-dir" / "secret-name.db"
    engine = make_engine(f"sqlite:///{missing}")
    settings = Settings(database_url=f"sqlite:///{missing}", data_dir=tmp_path)
    entries = [make_entry(name, "http://127.0.0.1:9/v1") for name in ("alpha", "beta")]
    app = create_app(settings, entries=entries, engine=engine, options=ArenaOptions(seed=0))
    try:
        with ExitStack() as stack:
            server = stack.enter_context(ArenaServer(app))
            for path in ("/healthz", "/api/leaderboard"):
                answer = httpx.get(f"{server.url}{path}", timeout=10)
                assert answer.status_code == 503
                assert answer.json()["error"] == "database_error"
                assert "secret-name" not in answer.text
    finally:
        engine.dispose()
