"""How well static benchmarks predict the interactive ranking: the study's "gap" analyses.

- ``static_table``: the model x benchmark scores (:class:`StaticTable`, the study's CSV layout,
  orientation, PCA standardised and raw);
- ``kendall``: Kendall tau between the ratings and each benchmark's ranking;
- ``vote_regression``: the regression of votes on benchmark differences, whose numerics live in
  ``logistic_mixed`` (the primary logistic mixed model and model-level permutation p-values) and
  ``linear_mixed`` (VIF screening and the linear probability mixed model, the sensitivity fit).
"""

from lamarena.analysis.gap.kendall import MIN_SHARED_MODELS, kendall_tau_rows, kendall_tau_table
from lamarena.analysis.gap.linear_mixed import screen_by_vif, variance_inflation_factors
from lamarena.analysis.gap.static_table import (
    PcaResult,
    StaticTable,
    is_lower_better,
    load_static_table,
    require_static_table,
    static_pca,
    static_table_from_frame,
)
from lamarena.analysis.gap.vote_regression import RegressionResult, regress_votes_on_benchmarks

__all__ = [
    "MIN_SHARED_MODELS",
    "PcaResult",
    "RegressionResult",
    "StaticTable",
    "is_lower_better",
    "kendall_tau_rows",
    "kendall_tau_table",
    "load_static_table",
    "regress_votes_on_benchmarks",
    "require_static_table",
    "screen_by_vif",
    "static_pca",
    "static_table_from_frame",
    "variance_inflation_factors",
]
