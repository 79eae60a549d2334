"""What the replies of a battle were: text (text-out) or spoken audio (speech-out).

A person who hears two spoken answers judges voice, pacing and time to the first sound as well as
content; a person who reads two text answers does not. The two kinds of vote measure different
things, so their ratings are never pooled: :func:`build_leaderboard
<lamarena.analysis.ranking.leaderboard.build_leaderboard>` refuses battles of both modes
(:func:`require_one_mode`), ``leaderboard --mode text|speech`` ranks one of them and
``leaderboard --by mode`` each apart (:mod:`lamarena.analysis.ranking.grouped`).

The ``mode`` column is optional: a frame without it (votes recorded before speech-out existed, or
imported from the study) is all ``text``, and so is a missing value in it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from lamarena.analysis.encoded import EncodedBattles
from lamarena.errors import InvalidInputError

__all__ = [
    "MODES",
    "encoded_one_mode",
    "mode_counts",
    "mode_of",
    "require_one_mode",
    "select_mode",
]

MODES = ("text", "speech")
"""The reply modes, in the order groups and counts list them."""

_LABELS = {"text": "text-out", "speech": "speech-out"}


def mode_of(battles: pd.DataFrame) -> pd.Series:
    """Each battle's reply mode, ``text`` where the ``mode`` column or its value is missing.

    Args:
        battles: battles, with or without a ``mode`` column.

    Returns:
        A string Series on ``battles``' index, every value in :data:`MODES`.

    Raises:
        InvalidInputError: a value that is neither missing nor a mode (naming how many rows, the
            first row label and its value).
    """
    if "mode" not in battles.columns:
        return pd.Series("text", index=battles.index, dtype=object)
    raw = battles["mode"].to_numpy(dtype=object)
    missing = pd.isna(battles["mode"]).to_numpy() | np.array(
        [isinstance(value, str) and not value.strip() for value in raw], dtype=bool
    )
    values = np.where(missing, "text", raw).astype(object)
    bad = np.array([value not in MODES for value in values], dtype=bool)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise InvalidInputError(
            f"column 'mode' has {int(bad.sum())} invalid value(s) (first: row "
            f"{battles.index[row]!r}, value {raw[row]!r}); expected {' or '.join(MODES)} "
            "(missing means text)"
        )
    return pd.Series(values, index=battles.index, dtype=object)


def mode_counts(battles: pd.DataFrame) -> dict[str, int]:
    """How many battles of each mode, every mode of :data:`MODES` listed (0 where none)."""
    modes = mode_of(battles)
    return {mode: int((modes == mode).sum()) for mode in MODES}


def require_one_mode(battles: pd.DataFrame) -> str:
    """The one reply mode of ``battles`` (``text`` when there are none).

    Raises:
        InvalidInputError: battles of both modes (the message gives the count of each and says
            how to rank them apart), or an unknown mode value.
    """
    return _one_mode(mode_counts(battles))


def encoded_one_mode(battles: EncodedBattles) -> str:
    """:func:`require_one_mode` of encoded battles."""
    return _one_mode(battles.mode_counts())


def _one_mode(counts: dict[str, int]) -> str:
    present = [mode for mode in MODES if counts[mode]]
    if len(present) > 1:
        listed = " and ".join(f"{counts[mode]} {_LABELS[mode]}" for mode in MODES)
        raise InvalidInputError(
            f"the votes mix {listed} battles, whose ratings are not comparable (a spoken "
            "reply is judged on more than its words); rank each mode apart with --by mode, or "
            "one of them with --mode text or --mode speech"
        )
    return present[0] if present else "text"


def select_mode(battles: pd.DataFrame, mode: str) -> pd.DataFrame:
    """The battles of one reply mode, on their original index.

    Raises:
        InvalidInputError: ``mode`` is not in :data:`MODES`, or an unknown mode value.
    """
    if mode not in MODES:
        raise InvalidInputError(f"mode must be {' or '.join(MODES)}, got {mode!r}")
    return battles[(mode_of(battles) == mode).to_numpy()]
