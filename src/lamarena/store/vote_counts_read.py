"""Reading the vote counts (``pair_counts``, ``cluster_pair_counts``) into DataFrames.

A live leaderboard reads these small tables of aggregates, kept as votes arrive by
:mod:`lamarena.store.vote_counts`, instead of every vote: :func:`read_pair_counts` and
:func:`read_cluster_pair_counts`, one ``SELECT`` each, run on the driver's cursor.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine, Select, Table, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from lamarena.errors import InvalidInputError
from lamarena.store.db import database_errors, reader
from lamarena.store.vote_counts import (
    _CLUSTERS,
    _PAIRS,
    CLUSTER_COLUMNS,
    CLUSTER_KEY,
    IPW_COLUMNS,
    OUTCOMES,
    PAIR_COLUMNS,
    PAIR_KEY,
)

__all__ = ["read_cluster_pair_counts", "read_pair_counts"]

_INT_COLUMNS = frozenset({"n_turns", *OUTCOMES, "missing_probability"})
_FLOAT_COLUMNS = frozenset({*IPW_COLUMNS, "min_probability", "max_probability"})

Source = Session | Engine | Connection


def _frame(rows: Sequence[Any], names: Sequence[str]) -> pd.DataFrame:
    """A DataFrame of plain columns: int64 counts, float64 weights (NaN: none), object keys."""
    table = np.array(rows, dtype=object).reshape(len(rows), len(names))
    data: dict[str, Any] = {}
    for index, name in enumerate(names):
        column = table[:, index]
        if name in _INT_COLUMNS:
            data[name] = column.astype(np.int64)
        elif name in _FLOAT_COLUMNS:
            data[name] = column.astype(np.float64)  # None becomes NaN
        else:  # Python str, kept as object: no conversion to a string dtype
            data[name] = pd.Series(np.ascontiguousarray(column), dtype=object, copy=False)
    return pd.DataFrame(data, columns=list(names), copy=False)


def _engine_of(source: Source) -> Engine:
    if isinstance(source, Engine):
        return source
    if isinstance(source, Connection):
        return source.engine
    bind = source.get_bind()
    return bind if isinstance(bind, Engine) else bind.engine


def _fetch(connection: Connection, statement: Select[Any]) -> list[Any]:
    """Run ``statement`` on the driver's cursor: its plain tuples, without SQLAlchemy's rows.

    At 300,000 rows building SQLAlchemy's row objects costs about a quarter of the read. The
    columns read need no result processing (strings, integers and floats), and a driver error
    is wrapped as SQLAlchemy would wrap it (so :func:`database_errors` reports it).
    """
    compiled = statement.compile(dialect=connection.dialect)
    parameters: Any = compiled.params
    if compiled.positional:
        parameters = tuple(parameters[name] for name in compiled.positiontup or ())
    sql = str(compiled)
    driver_error = connection.dialect.loaded_dbapi.Error
    cursor = connection.connection.cursor()
    try:
        cursor.execute(sql, parameters)
        return list(cursor.fetchall())
    except driver_error as exc:
        raise DBAPIError.instance(sql, parameters, exc, driver_error) from exc
    finally:
        cursor.close()


def _columns(table: Table, wanted: Sequence[str] | None) -> tuple[str, ...]:
    """The key columns, then those of ``wanted`` (all when None), in the table's order."""
    names = CLUSTER_COLUMNS if table is _CLUSTERS else PAIR_COLUMNS
    keys = CLUSTER_KEY if table is _CLUSTERS else PAIR_KEY
    if wanted is None:
        return names
    unknown = sorted(set(wanted) - set(names))
    if unknown:
        raise InvalidInputError(
            f"{table.name} has no column {', '.join(unknown)}; its columns are {', '.join(names)}"
        )
    return tuple(name for name in names if name in keys or name in wanted)


def _read(
    source: Source, table: Table, mode: str | None, wanted: Sequence[str] | None
) -> pd.DataFrame:
    keys = CLUSTER_KEY if table is _CLUSTERS else PAIR_KEY
    names = _columns(table, wanted)
    statement = select(*(table.c[name] for name in names)).order_by(
        *(table.c[name] for name in keys)
    )
    if mode is not None:
        statement = statement.where(table.c.mode == mode)
    engine = _engine_of(source)
    with database_errors(
        engine,
        f"reading {table.name}",
        "check that --db names a lamarena database migrated to revision 0007 or later",
    ):
        if isinstance(source, Engine):
            with reader(source).connect() as connection:
                rows = _fetch(connection, statement)
        elif isinstance(source, Connection):
            rows = _fetch(source, statement)
        else:
            rows = _fetch(source.connection(), statement)
    return _frame(rows, names)


def read_pair_counts(
    source: Source, *, mode: str | None = None, columns: Sequence[str] | None = None
) -> pd.DataFrame:
    """The ``pair_counts`` rows, read with one ``SELECT``, ordered by their key.

    Args:
        source: a session or connection (read in its transaction) or an engine (a read of
            its own).
        mode: only this mode's rows (``text`` or ``speech``); all when None.
        columns: only these value columns (the key columns always come); all when None.

    Returns:
        Columns :data:`~lamarena.store.vote_counts.PAIR_COLUMNS` (in that order): ``mode``,
        ``model_first`` and ``model_second`` as Python str (object dtype), ``n_turns`` and the
        four counts as int64.

    Raises:
        InvalidInputError: ``columns`` names a column the table does not have.
        DatabaseError: the database cannot be reached or refused the read.
    """
    return _read(source, _PAIRS, mode, columns)


def read_cluster_pair_counts(
    source: Source, *, mode: str | None = None, columns: Sequence[str] | None = None
) -> pd.DataFrame:
    """The ``cluster_pair_counts`` rows, read with one ``SELECT``, ordered by their key.

    Every value is a Python object made by the driver, so the time grows with rows times
    columns: on SQLite 300,000 rows of all 16 columns take about 0.6 s in the driver alone on a
    2-core virtual machine, and about half that with ``columns=OUTCOMES``.

    Args:
        source: a session or connection (read in its transaction) or an engine (a read of
            its own).
        mode: only this mode's rows (``text`` or ``speech``); all when None.
        columns: only these value columns (the key columns always come); all when None.

    Returns:
        Columns :data:`~lamarena.store.vote_counts.CLUSTER_COLUMNS` (in that order): the key
        columns as in :func:`read_pair_counts` plus ``cluster`` (str), the counts and
        ``missing_probability`` as int64, the ``*_ipw`` sums and ``min_probability`` and
        ``max_probability`` as float64 (NaN where no probability is known).

    Raises:
        InvalidInputError: ``columns`` names a column the table does not have.
        DatabaseError: the database cannot be reached or refused the read.
    """
    return _read(source, _CLUSTERS, mode, columns)
