"""Fixtures of the analysis tests: the golden data set and its reference ratings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

DATA = Path(__file__).parent / "data"


@pytest.fixture
def small_battles() -> pd.DataFrame:
    """400 battles among five models plus unbeaten, winless, detached and rare models."""
    return pd.read_csv(DATA / "battles_small.csv")


@pytest.fixture
def golden() -> dict[str, Any]:
    """Reference ratings of ``small_battles`` from an independent scipy fit (see its source)."""
    return json.loads((DATA / "golden_ratings.json").read_text())
