"""Statistics over battles and scores: pure functions over DataFrames, no database, no web.

Ratings (``ranking``): Bradley-Terry maximum likelihood on the Elo scale with provisional models,
analytic and batched-bootstrap intervals, pairwise tests (``bt_solver``, ``bootstrap`` and
``style_control`` hold the numerics); ``battles``: validation and win rates; ``leaderboard``: the
``leaderboard --json`` document; ``simulate``: battles from known strengths; ``pair_design``
and ``adaptive``: uniform, balanced and active pair designs, votes drawn under them, and the
inverse-probability-weighted fit that undoes them.
"""

from lamarena.analysis.battles import validate_battles, win_rate_matrix, win_rates
from lamarena.analysis.leaderboard import LeaderboardResult, build_leaderboard
from lamarena.analysis.ranking import (
    BootstrapResult,
    BradleyTerryResult,
    bootstrap_bradley_terry,
    bootstrap_bradley_terry_result,
    fit_bradley_terry,
    fit_bradley_terry_result,
    pairwise_tests,
)
from lamarena.analysis.simulate import parse_strengths, simulate_battles

__all__ = [
    "BootstrapResult",
    "BradleyTerryResult",
    "LeaderboardResult",
    "bootstrap_bradley_terry",
    "bootstrap_bradley_terry_result",
    "build_leaderboard",
    "fit_bradley_terry",
    "fit_bradley_terry_result",
    "pairwise_tests",
    "parse_strengths",
    "simulate_battles",
    "validate_battles",
    "win_rate_matrix",
    "win_rates",
]
