"""What a benchmark dataset is and how it loads.

``spec`` declares tasks and datasets, ``registry`` reads the study's 20 (``registry.yaml``),
``local`` reads a folder's ``task.yaml``, ``loading`` opens a dataset and yields its samples,
and ``prompts`` fills a prompt variant for one sample.
"""

__all__: list[str] = []
