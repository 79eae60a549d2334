"""Votes from a truth you set: the arena simulator, for studies, demos and calibration checks.

- ``battles``: battles from known strengths (:func:`simulate_battles`, ``lamarena simulate``),
  with ``--study`` participants, query transcripts and vote reasons;
- ``queries``: the query transcripts by topic and sub-topic and the reasons by theme;
- ``adaptive``: votes drawn under an adaptive pair design, and the ratings a uniform design
  targets, to check the inverse-probability-weighted fit.

It sits above :mod:`lamarena.analysis` (it uses the pair designs and the solver) and below the
CLI; nothing in the analysis imports it.
"""

from lamarena.simulation.battles import (
    DEFAULT_REFRESH_EVERY,
    DEFAULT_SPREAD_ELO,
    parse_strengths,
    simulate_battles,
)
from lamarena.simulation.queries import FEEDBACK_SHARES, TOPIC_SHARES, simulate_queries

__all__ = [
    "DEFAULT_REFRESH_EVERY",
    "DEFAULT_SPREAD_ELO",
    "FEEDBACK_SHARES",
    "TOPIC_SHARES",
    "parse_strengths",
    "simulate_battles",
    "simulate_queries",
]
