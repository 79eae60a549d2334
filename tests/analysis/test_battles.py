"""Validation of battle tables, pair counts and empirical win rates."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.builders import frame
from lamarena.analysis.battles import count_pairs, validate_battles, win_rate_matrix, win_rates
from lamarena.errors import InvalidInputError


def test_missing_column_is_named() -> None:
    battles = pd.DataFrame({"model_a": ["x"], "model_b": ["y"]})
    with pytest.raises(InvalidInputError, match="winner"):
        validate_battles(battles)


def test_unknown_winner_names_column_row_and_value() -> None:
    battles = frame([("x", "y", "model_a"), ("x", "y", "draw"), ("y", "x", "draw")])
    with pytest.raises(InvalidInputError) as info:
        validate_battles(battles)
    message = str(info.value)
    assert "'winner'" in message
    assert "'draw'" in message
    assert "row 1" in message
    assert "2 invalid" in message


def test_model_paired_with_itself_is_rejected() -> None:
    battles = frame([("x", "y", "tie"), ("z", "z", "model_a")])
    with pytest.raises(InvalidInputError, match=r"with itself.*'z'"):
        validate_battles(battles)


@pytest.mark.parametrize("bad", [None, np.nan, 3, "", "   "])
def test_missing_or_non_string_model_name_is_rejected(bad: object) -> None:
    battles = pd.DataFrame({"model_a": ["x", bad], "model_b": ["y", "y"], "winner": ["tie"] * 2})
    with pytest.raises(InvalidInputError, match="'model_a'"):
        validate_battles(battles)


def test_not_a_dataframe_is_rejected() -> None:
    with pytest.raises(InvalidInputError, match="DataFrame"):
        validate_battles([("x", "y", "tie")])  # type: ignore[arg-type]


def test_win_rates_count_ties_and_both_bad_as_half() -> None:
    battles = frame(
        [("x", "y", "model_a"), ("y", "x", "model_a"), ("x", "y", "tie"), ("z", "x", "both_bad")]
    )
    table = win_rates(battles)
    assert list(table.index) == ["x", "y", "z"]
    assert table.loc["x", "battles"] == 4
    assert table.loc["x", "wins"] == 1
    assert table.loc["x", "losses"] == 1
    assert table.loc["x", "ties"] == 1
    assert table.loc["x", "both_bad"] == 1
    assert table.loc["x", "win_rate"] == pytest.approx((1 + 0.5 + 0.5) / 4)
    assert table.loc["z", "win_rate"] == pytest.approx(0.5)


def test_win_rate_matrix_is_complementary_and_blank_where_models_never_met() -> None:
    battles = frame(
        [("x", "y", "model_a"), ("y", "x", "model_b"), ("y", "x", "tie"), ("y", "z", "model_b")]
    )
    matrix = win_rate_matrix(battles)
    assert matrix.loc["x", "y"] == pytest.approx(2.5 / 3)
    assert matrix.loc["y", "x"] == pytest.approx(0.5 / 3)
    assert matrix.loc["z", "y"] == pytest.approx(1.0)
    assert np.isnan(matrix.loc["x", "z"])
    assert np.isnan(matrix.loc["x", "x"])


def test_pair_counts_ignore_row_order_and_sides() -> None:
    battles = frame([("x", "y", "model_a"), ("z", "y", "tie"), ("y", "x", "model_a")] * 3)
    swapped = battles.rename(columns={"model_a": "model_b", "model_b": "model_a"})
    swapped["winner"] = swapped["winner"].map(
        {"model_a": "model_b", "model_b": "model_a", "tie": "tie"}
    )
    for other in (battles.sample(frac=1.0, random_state=1), swapped):
        left, right = count_pairs(validate_battles(battles)), count_pairs(validate_battles(other))
        assert left.models == right.models
        np.testing.assert_array_equal(left.first_wins, right.first_wins)
        np.testing.assert_array_equal(left.second_wins, right.second_wins)
        np.testing.assert_array_equal(left.ties, right.ties)


def test_string_dtype_columns_are_accepted() -> None:
    battles = frame([("x", "y", "model_a"), ("y", "x", "tie")]).astype("string")
    assert win_rates(battles).loc["x", "win_rate"] == pytest.approx(0.75)
