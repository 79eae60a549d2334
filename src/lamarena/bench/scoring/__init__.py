"""How answers are scored: reading a label out of a reply, the metrics, the result files.

``parsing`` reads a label or option letter out of free text, ``metrics`` computes macro-F1,
accuracy, WER and means with bootstrap intervals, ``pedants`` wraps PEDANTS, ``results`` reads
and writes a run's files, ``aggregate`` turns ``samples.jsonl`` rows into ``scores.json``, and
``table`` prints the study's Table 1.
"""

__all__: list[str] = []
