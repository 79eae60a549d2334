"""Statistics over battles and scores: pure functions over DataFrames, no database, no web.

- ``battles``: validation of the battle frame, win rates and the win-rate matrix;
- ``ranking``: Bradley-Terry ratings with analytic, bootstrap and clustered intervals, the two
  kinds of significance (rating differences and head-to-head records), ties, style control, pair
  designs and the leaderboard document;
- ``gap``: static benchmarks against the interactive ranking (Kendall tau, the vote regression,
  PCA of the static table);
- ``text``: topics of the spoken queries and themes of the vote reasons.

The vote simulator lives in :mod:`lamarena.simulation`, above this package.
"""

from lamarena.analysis.battles import validate_battles, win_rate_matrix, win_rates
from lamarena.analysis.ranking.bradley_terry import (
    BootstrapResult,
    BradleyTerryResult,
    bootstrap_bradley_terry,
    bootstrap_bradley_terry_result,
    fit_bradley_terry,
    fit_bradley_terry_result,
    pairwise_tests,
)
from lamarena.analysis.ranking.leaderboard import LeaderboardResult, build_leaderboard

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
    "validate_battles",
    "win_rate_matrix",
    "win_rates",
]
