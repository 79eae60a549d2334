"""Study-like votes for the loaders' tests: what real arena exports hold besides clean battles."""

from __future__ import annotations

import numpy as np
import pandas as pd

from lamarena.simulation import simulate_battles

__all__ = ["study_frame"]


def study_frame(n_battles: int) -> pd.DataFrame:
    """Votes of five models by participants of ten votes each, with the awkward parts.

    Unequal pair probabilities (0.05, 0.1 or 0.2), two participants without an id, every 17th
    battle without participant or session, every 13th not counted.
    """
    frame = simulate_battles(
        {"m0": 1070.0, "m1": 1000.0, "m2": 950.0, "m3": 1140.0, "m4": 830.0},
        n_battles,
        seed=5,
        votes_per_participant=10,
        participant_sd=0.5,
    )
    rng = np.random.default_rng(1)
    frame["sampling_probability"] = rng.choice([0.05, 0.1, 0.2], size=len(frame))
    anonymous = frame["participant_id"].isin(["participant-00003", "participant-00011"])
    frame.loc[anonymous, "participant_id"] = None
    frame.loc[frame.index % 17 == 0, ["participant_id", "session_id"]] = None
    frame.loc[frame.index % 13 == 0, "counted"] = False
    return frame
