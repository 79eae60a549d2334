"""Answer parsing for every task's label set: exact, word, closest, ambiguous, unparsed."""

from __future__ import annotations

import pytest

from lamarena.bench.parsing import ParsedAnswer, parse_choice, parse_label, reference_letter
from lamarena.bench.registry import load_registry

REGISTRY = load_registry()
LABELLED = sorted(name for name, spec in REGISTRY.datasets.items() if spec.labels is not None)
CHOICE = sorted(name for name, spec in REGISTRY.datasets.items() if spec.is_choice)
OPTIONS = ("Paris", "Berlin", "Madrid", "Rome")


def test_every_classification_task_is_covered() -> None:
    tasks = {REGISTRY.datasets[name].task for name in LABELLED + CHOICE}
    assert tasks == {
        "humor", "sarcasm", "intent", "emotion", "relation", "gender", "age", "accent",
        "grounding", "language", "entity", "qa",
    }  # fmt: skip


@pytest.mark.parametrize("name", LABELLED)
def test_each_label_is_read_exactly_and_inside_a_sentence(name: str) -> None:
    spec = REGISTRY.dataset(name)
    assert spec.labels is not None
    for label in spec.labels:
        assert parse_label(label.upper() + ".", spec.labels, spec.aliases) == ParsedAnswer(
            label, "exact"
        )
        sentence = f"After listening carefully, my answer would be {label} here"
        assert parse_label(sentence, spec.labels, spec.aliases) == ParsedAnswer(label, "word")


@pytest.mark.parametrize("name", LABELLED)
def test_an_answer_naming_two_labels_is_ambiguous_not_guessed(name: str) -> None:
    spec = REGISTRY.dataset(name)
    assert spec.labels is not None
    first, second = spec.labels[0], spec.labels[1]
    answer = f"It could be {first} or {second}"
    assert parse_label(answer, spec.labels, spec.aliases) == ParsedAnswer(None, "ambiguous")


@pytest.mark.parametrize("name", LABELLED)
def test_an_answer_naming_no_label_is_unparsed(name: str) -> None:
    spec = REGISTRY.dataset(name)
    assert spec.labels is not None
    answer = "I am sorry, I cannot determine that from the recording"
    assert parse_label(answer, spec.labels, spec.aliases) == ParsedAnswer(None, "unparsed")


@pytest.mark.parametrize(
    ("answer", "label", "rule"),
    [
        ("Yes.", "yes", "exact"),
        ("The answer is: no", "no", "exact"),
        ("Yes, clearly sarcastic.", "yes", "word"),
        ("It is not sarcastic at all", "no", "word"),  # the longer alias is read first
        ("No. Although some would call it sarcastic.", "no", "word"),  # the first clause decides
        ("sarcastik", "yes", "closest"),
        ("Yes or no, hard to say", None, "ambiguous"),
        ("", None, "unparsed"),
    ],
)
def test_sarcasm_answers(answer: str, label: str | None, rule: str) -> None:
    spec = REGISTRY.dataset("mustard")
    assert spec.labels is not None
    assert parse_label(answer, spec.labels, spec.aliases) == ParsedAnswer(label, rule)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("answer", "label"),
    [
        ("The speaker is a woman.", "female"),
        ("It sounds like a man talking.", "male"),
        ("femail", "female"),
        ("female", "female"),
    ],
)
def test_gender_aliases_and_word_boundaries(answer: str, label: str) -> None:
    spec = REGISTRY.dataset("commonvoice_gender")
    assert spec.labels is not None
    assert parse_label(answer, spec.labels, spec.aliases).label == label


@pytest.mark.parametrize(
    ("answer", "letter", "rule"),
    [
        ("B", "B", "exact"),
        ("(c)", "C", "exact"),
        ("Answer: d", "D", "exact"),
        ("The correct answer is A.", "A", "exact"),
        ("Madrid", "C", "exact"),
        ("B) Berlin", "B", "word"),
        ("I think the city mentioned is Rome.", "D", "word"),
        ("It is C, not B.", "C", "word"),
        ("A dog is barking in the background", None, "unparsed"),  # "A" as an article
        ("Either B or C", None, "ambiguous"),
        ("Pariss", "A", "closest"),
        ("None of them.", None, "unparsed"),
    ],
)
def test_choice_answers(answer: str, letter: str | None, rule: str) -> None:
    assert parse_choice(answer, OPTIONS) == ParsedAnswer(letter, rule)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", CHOICE)
def test_choice_datasets_read_each_letter_and_refuse_two(name: str) -> None:
    assert REGISTRY.dataset(name).is_choice
    for letter, option in zip("ABCD", OPTIONS, strict=True):
        assert parse_choice(f"({letter}) {option}", OPTIONS).label == letter
    assert parse_choice("(A) or (B)", OPTIONS).label is None
    assert parse_choice("no idea", OPTIONS) == ParsedAnswer(None, "unparsed")


def test_a_letter_beyond_the_options_is_not_an_answer() -> None:
    assert parse_choice("D", OPTIONS[:3]) == ParsedAnswer(None, "unparsed")


@pytest.mark.parametrize(
    ("value", "letter"),
    [("Berlin", "B"), ("(C)", "C"), ("d", "D"), ("(A) Paris", "A"), ("Lisbon", None), ("E", None)],
)
def test_reference_letters(value: str, letter: str | None) -> None:
    assert reference_letter(value, OPTIONS) == letter
