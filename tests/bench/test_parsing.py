"""Answer parsing for every task's label set: exact, word, closest, ambiguous, unparsed."""

from __future__ import annotations

import pytest

from lamarena.bench.data.answers import reference_letter
from lamarena.bench.data.registry import load_registry
from lamarena.bench.scoring.parsing import ParsedAnswer, parse_choice, parse_label

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


def _label(name: str, answer: str) -> ParsedAnswer:
    spec = REGISTRY.dataset(name)
    assert spec.labels is not None
    return parse_label(answer, spec.labels, spec.aliases)


@pytest.mark.parametrize(
    ("name", "answer", "label"),
    [
        ("mustard", "The speaker is not being sarcastic.", "no"),
        ("mustard", "It isn't sarcastic.", "no"),
        ("mustard", "It isn\u2019t sarcastic.", "no"),  # a typographic apostrophe
        ("mustard", "Sarcastic? No.", "no"),
        ("mustard", "Sarcastic - no", "no"),
        ("mustard", "I don't think it's sarcastic", "no"),
        ("urfunny", "It isn't funny.", "no"),
        ("urfunny", "This is not meant to be funny.", "no"),
        ("urfunny", "No, it is not humorous.", "no"),
        ("callhome", "They're not family, they're friends", "friend"),
        ("callhome", "Not relatives but friends", "friend"),
        ("iemocap", "The speaker sounds happy, not sad.", "happy"),
        ("iemocap", "Not sad but angry", "angry"),
        ("iemocap", "No doubt it is angry", "angry"),  # "no doubt" negates nothing
        ("iemocap", "It is not happy or sad, it is neutral", "neutral"),
    ],
)
def test_negated_labels_are_dropped(name: str, answer: str, label: str) -> None:
    assert _label(name, answer) == ParsedAnswer(label, "word")


@pytest.mark.parametrize(
    ("name", "answer"),
    [
        ("iemocap", "Not angry"),  # names no label: never a guess among the other three
        ("iemocap", "Neither happy nor sad"),
        ("callhome", "They are not family"),  # only yes/no sets read a negation as the other label
        ("commonvoice_gender", "Not a man"),
    ],
)
def test_an_answer_naming_only_negated_labels_is_unparsed(name: str, answer: str) -> None:
    assert _label(name, answer) == ParsedAnswer(None, "unparsed")


@pytest.mark.parametrize(
    ("answer", "label", "rule"),
    [
        ("Yes, sarcastic.", "yes", "word"),
        ("No.", "no", "exact"),
        ("I know it's sarcastic", "yes", "word"),  # "know" is not "no"
        ("Not only sarcastic, it is mocking", "yes", "word"),
        ("Definitely not sarcastic; yes I'm sure", "no", "word"),
        ("There is no sarcasm here.", "no", "word"),
    ],
)
def test_plain_answers_still_parse(answer: str, label: str, rule: str) -> None:
    assert _label("mustard", answer) == ParsedAnswer(label, rule)  # type: ignore[arg-type]
    assert _label("urfunny", answer.replace("sarcastic", "funny")).label == label


REVIEW_OPTIONS = ("A man is speaking", "A woman is singing", "Washington D.C.", "Vitamin C")


@pytest.mark.parametrize(
    ("answer", "letter", "rule"),
    [
        ("Neither A nor B; it is D.", "D", "word"),
        ("Not A. It is B.", "B", "word"),
        ("Option A is wrong; the answer is C.", "C", "word"),
        ("Not A, B.", "B", "word"),  # the first clause's only letter is negated
        ("Not (A); (B)", "B", "word"),
        ("The answer is not A", None, "unparsed"),
        ("Not A and not B", None, "unparsed"),
        ("B", "B", "exact"),
        ("The answer is (A)", "A", "exact"),
        ("I'd say it's B", "B", "word"),
        ("It's option c", "C", "word"),
        ("A man is speaking", "A", "exact"),
        ("C or D", None, "ambiguous"),
    ],
)
def test_negated_and_explicit_letters(answer: str, letter: str | None, rule: str) -> None:
    assert parse_choice(answer, REVIEW_OPTIONS) == ParsedAnswer(letter, rule)  # type: ignore[arg-type]
