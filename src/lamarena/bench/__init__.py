"""Static evaluation: the study's task registry, dataset loading, scoring, the runner and Table 1.

Imports nothing heavy: ``datasets``, scikit-learn, jiwer and Dask load when first used.
"""

from lamarena.bench.data.registry import TABLE_TASKS, Registry, load_registry
from lamarena.bench.data.spec import DatasetSpec, Metric, TaskSpec

__all__ = [
    "TABLE_TASKS",
    "DatasetSpec",
    "Metric",
    "Registry",
    "TaskSpec",
    "load_registry",
]
