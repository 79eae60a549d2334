"""A small simulated study over the model names of the study's Table 1, analysed once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from lamarena.report import StudyOptions, compute_study, load_static_input
from lamarena.simulation import parse_strengths, simulate_battles

PAPER_TABLE = Path(__file__).parents[2] / "src/lamarena/data/study/paper_table1_static.csv"
PAPER_MODELS = "GPT4o,Gemini,Qwen2-audio,Typhoon,DiVA,Qwen-audio,NExTGPT,PandaGPT,ASR Pipeline"
QUICK = StudyOptions(n_resamples=200, topic_resamples=100, tau_rounds=100, seed=1)


@pytest.fixture(scope="session")
def study_battles() -> pd.DataFrame:
    return simulate_battles(parse_strengths(PAPER_MODELS), 1200, seed=4, study=True, feedback=True)


@pytest.fixture(scope="session")
def study_document(study_battles: pd.DataFrame) -> dict[str, Any]:
    static = load_static_input(PAPER_TABLE)
    return compute_study(study_battles, static, options=QUICK, static_source=str(PAPER_TABLE))
