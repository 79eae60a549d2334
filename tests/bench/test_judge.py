"""The LLM judge's strict rating parser and its pinned prompt."""

from __future__ import annotations

import hashlib

import pytest

from lamarena.bench.run.judge import JUDGE_PROMPT_SHA256, JUDGE_SYSTEM, JUDGE_TEMPLATE, parse_rating


@pytest.mark.parametrize(
    ("reply", "rating"),
    [
        ("Rating: 4", 4),
        ("rating: 0\nThe answer is unrelated.", 0),
        ("5", 5),
        (" 3/5 - mostly correct", 3),
        ("**Rating:** 2", 2),
        ("Rating: 6", None),
        ("4.5", None),
        ("I would rate it 4.", None),
        ("Rating: four", None),
        ("", None),
        ("10", None),
    ],
)
def test_only_a_leading_rating_is_accepted(reply: str, rating: int | None) -> None:
    assert parse_rating(reply) == rating


def test_the_prompt_is_pinned_by_its_hash() -> None:
    text = JUDGE_SYSTEM + "\n\n" + JUDGE_TEMPLATE
    assert hashlib.sha256(text.encode()).hexdigest() == JUDGE_PROMPT_SHA256
    assert set(JUDGE_TEMPLATE.split("{")[1:]) and "{answer}" in JUDGE_TEMPLATE
