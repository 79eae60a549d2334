"""Integer codes renumbered in order of first appearance (shared by the store and the analysis)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import NDArray

__all__ = ["first_appearance"]


def first_appearance(codes: NDArray[np.intp]) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """Codes renumbered in order of first appearance (-1 stays -1), and the old code of each.

    Numbering by first appearance keeps seeded bootstraps the same whichever way the votes were
    read (the record loader numbers participants and sessions as it meets them).

    Returns:
        ``(new, old)``: ``new[i]`` is row ``i``'s new code and ``old[k]`` the code that new code
        ``k`` replaces.
    """
    out = np.full(codes.size, -1, dtype=np.intp)
    seen = codes >= 0
    if not seen.any():
        return out, np.zeros(0, dtype=np.intp)
    new, old = pd.factorize(codes[seen], sort=False)
    out[seen] = new
    return out, np.asarray(old, dtype=np.intp)
