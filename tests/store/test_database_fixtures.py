"""The throwaway-database helpers themselves: they fail loudly instead of skipping."""

import pytest
from sqlalchemy import text

from helpers import postgres
from helpers.postgres import PostgresUnavailable, find_postgres_bindir


def test_missing_postgres_binaries_fail_with_the_install_command(monkeypatch):
    monkeypatch.setattr(postgres.shutil, "which", lambda name: None)
    monkeypatch.setattr(postgres.glob, "glob", lambda pattern: [])
    with pytest.raises(PostgresUnavailable, match=r"apt-get install -y postgresql"):
        find_postgres_bindir()


def test_each_test_gets_its_own_database(databases):
    first, second = databases.engine(), databases.engine()
    with first.begin() as connection:
        connection.execute(text("CREATE TABLE scratch (x INTEGER)"))
    with second.connect() as connection:
        tables = {
            "sqlite": "SELECT name FROM sqlite_master WHERE name = 'scratch'",
            "postgresql": "SELECT tablename FROM pg_tables WHERE tablename = 'scratch'",
        }[databases.kind]
        assert connection.execute(text(tables)).first() is None
        assert connection.scalar(text("SELECT version_num FROM alembic_version")) == "0007"
