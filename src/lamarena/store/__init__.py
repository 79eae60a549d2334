"""Persistence of battles: SQLAlchemy tables, Alembic migrations, repositories and file formats.

Start-up: ``engine = make_engine(url)`` then ``migrate_to_head(engine)``. The arena writes through
:mod:`lamarena.store.repo` inside its own transactions; the CLI uses :func:`import_votes`,
:func:`export_votes`, :func:`load_battles_frame`, :func:`audit_votes`, :func:`check_counts` and
:func:`prune_battles`; a live leaderboard reads the counts kept as votes arrive
(:func:`read_pair_counts`, :func:`read_cluster_pair_counts`).
Exports carry arena sessions as salted hashes (:mod:`lamarena.store.hashing`). Imports only
:mod:`lamarena.errors` from lamarena.
"""

from lamarena.store.audio_files import AudioExport, export_audio, reply_audio_path
from lamarena.store.audit import VoteAudit, audit_votes
from lamarena.store.db import make_engine, make_sessionmaker, migrate_to_head
from lamarena.store.exporters import write_battle_records
from lamarena.store.hashing import salted_hash, session_hash, store_salt
from lamarena.store.importers import BattleFormat, read_battle_records
from lamarena.store.prune import PruneReport, parse_duration, prune_battles
from lamarena.store.records import (
    FRAME_COLUMNS,
    BattleRecord,
    Latency,
    Winner,
    records_from_frame,
    records_to_frame,
)
from lamarena.store.vote_counts_check import CountsCheck, VoteCounts, check_counts, recount
from lamarena.store.vote_counts_read import read_cluster_pair_counts, read_pair_counts
from lamarena.store.votes import export_votes, import_votes, load_battle_records, load_battles_frame

__all__ = [
    "FRAME_COLUMNS",
    "AudioExport",
    "BattleFormat",
    "BattleRecord",
    "CountsCheck",
    "Latency",
    "PruneReport",
    "VoteAudit",
    "VoteCounts",
    "Winner",
    "audit_votes",
    "check_counts",
    "export_audio",
    "export_votes",
    "import_votes",
    "load_battle_records",
    "load_battles_frame",
    "make_engine",
    "make_sessionmaker",
    "migrate_to_head",
    "parse_duration",
    "prune_battles",
    "read_battle_records",
    "read_cluster_pair_counts",
    "read_pair_counts",
    "records_from_frame",
    "records_to_frame",
    "recount",
    "reply_audio_path",
    "salted_hash",
    "session_hash",
    "store_salt",
    "write_battle_records",
]
