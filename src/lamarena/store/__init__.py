"""Persistence of battles: SQLAlchemy tables, Alembic migrations, repositories and file formats.

Start-up: ``engine = make_engine(url)`` then ``migrate_to_head(engine)``. The arena writes through
:mod:`lamarena.store.repo` inside its own transactions; the CLI uses :func:`import_votes`,
:func:`export_votes` and :func:`load_battles_frame`. Imports only :mod:`lamarena.errors` from
lamarena.
"""

from lamarena.store.db import make_engine, make_sessionmaker, migrate_to_head
from lamarena.store.exporters import write_battle_records
from lamarena.store.importers import BattleFormat, read_battle_records
from lamarena.store.records import (
    FRAME_COLUMNS,
    BattleRecord,
    Latency,
    Winner,
    records_from_frame,
    records_to_frame,
)
from lamarena.store.votes import export_votes, import_votes, load_battle_records, load_battles_frame

__all__ = [
    "FRAME_COLUMNS",
    "BattleFormat",
    "BattleRecord",
    "Latency",
    "Winner",
    "export_votes",
    "import_votes",
    "load_battle_records",
    "load_battles_frame",
    "make_engine",
    "make_sessionmaker",
    "migrate_to_head",
    "read_battle_records",
    "records_from_frame",
    "records_to_frame",
    "write_battle_records",
]
