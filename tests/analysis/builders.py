"""Builders shared by the analysis tests (imported as ``analysis.builders``, like ``helpers``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.optimize import minimize

ELO_PER_LOGIT = 400.0 / np.log(10.0)


def frame(rows: list[tuple[str, str, str]]) -> pd.DataFrame:
    """A battles DataFrame from (model_a, model_b, winner) tuples."""
    return pd.DataFrame(rows, columns=["model_a", "model_b", "winner"])


def outcome(winner: pd.Series) -> np.ndarray:
    """1 / 0 / 0.5 for model_a / model_b / tie-or-both-bad."""
    values = winner.to_numpy(dtype=object)
    return np.where(values == "model_a", 1.0, np.where(values == "model_b", 0.0, 0.5))


def scipy_ratings(battles: pd.DataFrame, models: list[str]) -> pd.Series:
    """Independent MLE: scipy BFGS on per-battle fractional outcomes among ``models``."""
    index = {name: i for i, name in enumerate(models)}
    inside = battles["model_a"].isin(models) & battles["model_b"].isin(models)
    sub = battles[inside]
    a = sub["model_a"].map(index).to_numpy()
    b = sub["model_b"].map(index).to_numpy()
    y = outcome(sub["winner"])
    size = len(models)

    def loss(free: np.ndarray) -> tuple[float, np.ndarray]:
        theta = np.concatenate([[0.0], free])
        eta = theta[a] - theta[b]
        slope = 1.0 / (1.0 + np.exp(-eta)) - y
        grad = np.bincount(a, slope, minlength=size) - np.bincount(b, slope, minlength=size)
        value = np.sum(y * np.logaddexp(0, -eta) + (1 - y) * np.logaddexp(0, eta))
        return float(value), grad[1:]

    result = minimize(loss, np.zeros(size - 1), jac=True, method="BFGS", options={"gtol": 1e-10})
    theta = np.concatenate([[0.0], result.x])
    return pd.Series(1000.0 + ELO_PER_LOGIT * (theta - theta.mean()), index=models)
