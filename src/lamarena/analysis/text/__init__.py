"""What people ask and say: topics of the spoken queries and themes of the vote reasons.

- ``embeddings``: the packaged sentence embedder (all-MiniLM-L6-v2, offline);
- ``topics``: a two-level topic tree of the query transcripts with a leaderboard per topic;
- ``feedback``: themes of the typed or spoken reasons for a vote.
"""

__all__: list[str] = []  # the modules above are the public surface
