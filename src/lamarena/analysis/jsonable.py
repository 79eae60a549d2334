"""Numbers as JSON documents hold them: finite floats, and None where there is no number."""

from __future__ import annotations

import math

__all__ = ["json_float"]


def json_float(value: float | None) -> float | None:
    """A finite Python float, or None for None, NaN and infinities (JSON has no NaN)."""
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None
