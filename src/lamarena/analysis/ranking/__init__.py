"""Ratings from votes: Bradley-Terry with honest uncertainty, and where to collect the votes.

- ``bradley_terry``: the maximum-likelihood fit on the Elo scale with provisional models,
  analytic and bootstrap intervals, pairwise rating tests; its numerics in ``bt_solver`` and
  ``bootstrap``;
- ``clusters``: which votes belong together (participants, sessions) for clustered intervals;
- ``head_to_head``: the study's paired bootstrap of each pair's own record;
- ``pairwise``: rating-difference tests with Holm's adjustment;
- ``davidson``: Bradley-Terry-Davidson, ties with their own parameter;
- ``style_control``: ratings adjusted for reply length, latency, time to first audio and audio
  duration;
- ``modes``: text-out and speech-out votes, never pooled; ``grouped``: a leaderboard per reply
  mode or per conversation depth, side by side;
- ``pair_design``: uniform, balanced and active pair designs and the inverse-probability-weighted
  fit that undoes an adaptive design;
- ``leaderboard``: the ``leaderboard --json`` document built from all of the above.
"""

__all__: list[str] = []  # the modules above are the public surface
