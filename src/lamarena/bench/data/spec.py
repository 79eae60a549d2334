"""Validated declarations of static tasks and datasets: pure data, no behaviour.

A :class:`TaskSpec` is one column of the study's Table 1 (humor, sarcasm, ..., asr): its kind and
three prompt variants. A :class:`DatasetSpec` is one benchmark set: where it lives (hub id,
config, split), which columns hold the audio, the label or reference, the question and the
options, its label set, how raw values map onto labels, its size and its metric. The registry
(``registry.yaml``) and a user's ``task.yaml`` are both validated into these models, so a typo
fails loudly with the file and the key named.
"""

from __future__ import annotations

import string
from enum import StrEnum
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "CHOICE_LETTERS",
    "PROMPT_FIELDS",
    "DatasetSpec",
    "Holdout",
    "Metric",
    "Subsample",
    "TaskSpec",
    "template_fields",
]

CHOICE_LETTERS = ("A", "B", "C", "D", "E", "F")
"""Labels of multiple-choice options, in order."""

PROMPT_FIELDS = frozenset({"labels", "question", "options"})
"""The placeholders a prompt template may use."""

Name = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)]
Prompts = Annotated[list[str], Field(min_length=1, max_length=3)]


class Metric(StrEnum):
    """How a dataset is scored; the values are the wire names of ``scores.json``."""

    MACRO_F1 = "macro_f1"
    ACCURACY = "accuracy"
    WER = "wer"
    PEDANTS = "pedants"
    LLM_JUDGE = "llm_judge"

    @property
    def is_classification(self) -> bool:
        """Whether answers are parsed to a label (macro-F1, accuracy)."""
        return self in {Metric.MACRO_F1, Metric.ACCURACY}

    @property
    def is_open(self) -> bool:
        """Whether answers are free text judged against a reference answer."""
        return self in {Metric.PEDANTS, Metric.LLM_JUDGE}


def template_fields(template: str) -> set[str]:
    """The placeholder names of a ``str.format`` template.

    Raises:
        ValueError: the template is malformed (an unbalanced brace) or uses a positional field.
    """
    fields = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    if "" in fields or any(name.isdigit() for name in fields):
        raise ValueError(f"prompt {template!r} uses a positional placeholder; name it")
    return fields


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_prompts(prompts: list[str]) -> None:
    for prompt in prompts:
        unknown = template_fields(prompt) - PROMPT_FIELDS
        if unknown:
            allowed = ", ".join(f"{{{name}}}" for name in sorted(PROMPT_FIELDS))
            raise ValueError(
                f"prompt {prompt!r} uses {sorted(unknown)}; the placeholders are {allowed}"
            )


class TaskSpec(_Spec):
    """One task (a Table 1 column) with its three prompt variants.

    Attributes:
        name: the registry key, also the Table 1 column (``humor`` ... ``asr``).
        title: a human name.
        prompts: the prompt variants sent with the audio; ``{labels}``, ``{question}`` and
            ``{options}`` are filled per sample.
    """

    name: Name
    title: str = Field(min_length=1)
    prompts: Prompts

    @model_validator(mode="after")
    def _valid_prompts(self) -> Self:
        _check_prompts(self.prompts)
        return self


class Holdout(_Spec):
    """The study's own test split of a set published with a single split.

    ``datasets.Dataset.train_test_split(test_size=..., seed=...)["test"]`` is what is evaluated.
    """

    test_size: float | int = Field(gt=0)
    seed: int = 42


class Subsample(_Spec):
    """A seeded sample of ``size`` rows, the same on every machine and in every run.

    Every usable row (after ``where`` and the label rules) gets the rank
    ``sha256(f"{seed}:{key}")``, with ``key`` its id column's value or its row number, and the
    ``size`` lowest ranks are evaluated, in their order in the split. A hash rather than a
    random generator: numpy does not promise the same stream across versions, a hash does not
    change, and a row's membership does not depend on which other rows exist.
    """

    size: int = Field(gt=0)
    seed: int = 0


WhereValue = str | int | bool | list[str | int | bool]


class DatasetSpec(_Spec):
    """One benchmark dataset, as declared in the registry or in a local ``task.yaml``.

    Attributes:
        name: the registry key (``mustard``); for a local folder, its name.
        task: the task it belongs to (a registry task, or a new name with its own prompts).
        hf_id: the Hugging Face hub id (a lead, easy to correct); None for local data.
        config: the hub config (``en`` for Common Voice), if any.
        data_dir: a folder inside the hub repository, if any.
        split: the split evaluated.
        where: keep only rows whose column equals the value (or one of the values): the
            rows of one task in a table of many (AIR-Bench's ``task_name``).
        holdout: a seeded test split cut from ``split`` (sets published without one), by
            ``datasets``' ``train_test_split`` as the study's own loader did.
        subsample: a seeded sample of the usable rows, to the study's size.
        audio_column: the column with the audio (falls back to the dataset's only audio column,
            as an ``audiofolder`` calls it ``audio``).
        label_column: the column holding the class (classification and choice tasks).
        reference_column: the column with the reference text (transcription and open tasks).
        question_column: the column with a question shown in the prompt.
        option_columns: the columns holding multiple-choice options, in letter order (an empty
            or null one is no option: a row may have fewer).
        options_column: one column holding every option, as ``(A) text`` lines or a list.
        options_in_question: the options are written inside the question as ``(A) ...``.
        id_column: a column of stable sample ids (default: the row number).
        labels: the label set (classification), lower case; choice tasks use letters.
        label_map: raw column value (as text; ClassLabel names also work) -> label.
        drop_values: raw values deliberately left out of the evaluation (and counted): an
            empty or null value always is; list here the others (``eighties``).
        drop_unmapped: leave out (and count) every other value that maps to no label, for a
            free-text column such as Common Voice's accent; otherwise such a value is an error.
        aliases: other words an answer may use for a label (``man`` for ``male``).
        size: the number of samples the study evaluated, when known.
        metric: how answers are scored.
        prompts: prompt variants overriding the task's (for a set that needs other wording).
        notes: where the declaration is a documented guess, why.
        source: where the schema (hub id, config, split, columns, values) was confirmed.
        version: bumped whenever a change alters what is evaluated (recorded in run.json).
    """

    name: Name
    task: Name
    hf_id: str | None = None
    config: str | None = None
    data_dir: str | None = None
    split: str = "test"
    where: dict[str, WhereValue] = Field(default_factory=dict)
    holdout: Holdout | None = None
    subsample: Subsample | None = None
    audio_column: str = "audio"
    label_column: str | None = None
    reference_column: str | None = None
    question_column: str | None = None
    option_columns: list[str] | None = Field(default=None, min_length=2, max_length=6)
    options_column: str | None = None
    options_in_question: bool = False
    id_column: str | None = None
    labels: list[str] | None = Field(default=None, min_length=2)
    label_map: dict[str, str] = Field(default_factory=dict)
    drop_values: list[str] = Field(default_factory=list)
    drop_unmapped: bool = False
    aliases: dict[str, list[str]] = Field(default_factory=dict)
    size: int | None = Field(default=None, gt=0)
    metric: Metric
    prompts: Prompts | None = None
    notes: str = ""
    source: str = ""
    version: int = Field(default=1, ge=1)

    @property
    def is_choice(self) -> bool:
        """Whether samples are multiple-choice questions with lettered options."""
        return (
            self.option_columns is not None
            or self.options_column is not None
            or self.options_in_question
        )

    @property
    def read_columns(self) -> list[str]:
        """The columns read to plan the rows (no audio): answer, question, options, filter."""
        columns = [
            self.answer_column,
            self.question_column,
            self.options_column,
            *(self.option_columns or []),
            *self.where,
        ]
        return list(dict.fromkeys(column for column in columns if column))

    @property
    def answer_column(self) -> str:
        """The column holding what a sample is scored against."""
        column = self.label_column or self.reference_column
        if column is None:  # unreachable: the validator requires one
            raise ValueError(f"dataset '{self.name}' declares no label or reference column")
        return column

    @property
    def kind(self) -> Literal["classification", "choice", "text"]:
        """How answers are read: a label, an option letter, or free text."""
        if self.is_choice:
            return "choice"
        return "classification" if self.metric.is_classification else "text"

    def fillable(self) -> frozenset[str]:
        """The prompt placeholders this dataset can fill for every sample."""
        fields = set()
        if self.is_choice or self.labels is not None:
            fields.add("labels")
        if self.question_column is not None:
            fields.add("question")
        if self.is_choice:
            fields.add("options")
        return frozenset(fields)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.prompts is not None:
            _check_prompts(self.prompts)
        if (self.label_column is None) == (self.reference_column is None):
            raise ValueError("give exactly one of label_column and reference_column")
        ways = [self.option_columns is not None, self.options_column is not None]
        if sum([*ways, self.options_in_question]) > 1:
            raise ValueError("give one of option_columns, options_column and options_in_question")
        if self.holdout is not None and self.subsample is not None:
            raise ValueError("give holdout or subsample, not both")
        if self.options_in_question and self.question_column is None:
            raise ValueError("options_in_question needs a question_column")
        if self.is_choice:
            self._check_choice()
        elif self.metric.is_classification:
            self._check_classification()
        else:
            self._check_text()
        return self

    def _check_choice(self) -> None:
        if not self.metric.is_classification:
            raise ValueError("a multiple-choice dataset is scored by macro_f1 or accuracy")
        if self.labels is not None:
            raise ValueError("a multiple-choice dataset takes no labels: its labels are A, B, ...")

    def _check_classification(self) -> None:
        if self.label_column is None:
            raise ValueError(f"metric {self.metric.value} needs a label_column")
        if self.labels is None:
            raise ValueError(f"metric {self.metric.value} needs labels: the label set")
        normalised = [label.strip().lower() for label in self.labels]
        if normalised != self.labels:
            raise ValueError(f"labels must be lower case without surrounding space: {self.labels}")
        if len(set(self.labels)) != len(self.labels):
            raise ValueError(f"labels repeat: {self.labels}")
        stray = sorted(set(self.label_map.values()) - set(self.labels))
        if stray:
            raise ValueError(f"label_map maps to {stray}, which are not in labels {self.labels}")
        unknown = sorted(set(self.aliases) - set(self.labels))
        if unknown:
            raise ValueError(f"aliases are given for {unknown}, which are not in labels")
        both = sorted(set(self.drop_values) & set(self.label_map))
        if both:
            raise ValueError(f"values {both} are both in label_map and in drop_values")

    def _check_text(self) -> None:
        if self.reference_column is None:
            raise ValueError(f"metric {self.metric.value} needs a reference_column")
        if self.labels is not None or self.label_map or self.aliases or self.drop_values:
            raise ValueError(
                f"metric {self.metric.value} takes no labels, label_map, drop_values or aliases"
            )
