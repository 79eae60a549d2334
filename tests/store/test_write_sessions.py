"""WriteSessions: SQLite writers of one process queue on a lock, released whatever happens."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import Engine, func, select

from lamarena.store.db import WriteSessions
from lamarena.store.repo import create_session
from lamarena.store.tables import Session as SessionRow


def _count(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.scalar(select(func.count()).select_from(SessionRow)) or 0)


def test_concurrent_writers_all_commit_and_none_overlaps(engine: Engine) -> None:
    writes = WriteSessions(engine)
    inside = 0
    most_inside = 0
    guard = threading.Lock()

    def write(index: int) -> None:
        nonlocal inside, most_inside
        with writes.begin() as session:
            with guard:
                inside += 1
                most_inside = max(most_inside, inside)
            create_session(session, session_id=f"s{index:03d}", participant_id=None)
            with guard:
                inside -= 1

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(write, range(64)))
    assert _count(engine) == 64
    # SQLite: one writer of this process at a time; PostgreSQL lets them run together
    assert (most_inside == 1) == (engine.dialect.name == "sqlite")


def test_a_failed_transaction_rolls_back_and_frees_the_next_writer(engine: Engine) -> None:
    writes = WriteSessions(engine)
    with pytest.raises(RuntimeError, match="boom"), writes.begin() as session:
        create_session(session, session_id="rolled-back", participant_id=None)
        raise RuntimeError("boom")
    done = threading.Event()

    def write() -> None:
        with writes.begin() as session:
            create_session(session, session_id="kept", participant_id=None)
        done.set()

    thread = threading.Thread(target=write)
    thread.start()
    # Well under the busy timeout (5 s) a leaked lock would make it wait for.
    assert done.wait(2.0), "the lock was not released after the failed transaction"
    thread.join()
    with engine.connect() as connection:
        ids = connection.scalars(select(SessionRow.id)).all()
    assert ids == ["kept"]
