"""How a static run executes: models x datasets x prompt variants, cached and resumable.

``targets`` resolves the models, ``cache`` keeps every call, ``judge`` asks an LLM judge,
``execution`` evaluates one unit's samples, ``runner`` plans and runs in process,
``distributed`` spreads shards over Dask, ``record`` writes ``run.json``, and ``progress``
shows a progress bar.
"""

__all__: list[str] = []
