"""Prompt variants and how a sample fills them.

Every task has three wordings (the study averaged three prompt variations per task and did not
publish them; these are lamarena's, in the study's style, kept in ``registry.yaml``). A template
may use ``{labels}`` (the label set, or the option letters ``A, B, C, D``), ``{question}`` and
``{options}`` (one ``A. text`` line per option); the registry checks that a dataset can fill what
its templates ask for.
"""

from __future__ import annotations

import hashlib

from lamarena.bench.data.loading import Sample
from lamarena.bench.data.spec import CHOICE_LETTERS, DatasetSpec

__all__ = ["prompt_sha256", "render_prompt"]


def render_prompt(template: str, spec: DatasetSpec, sample: Sample) -> str:
    """The text sent with ``sample``'s audio for one prompt variant.

    Args:
        template: the prompt variant.
        spec: the sample's dataset (its labels).
        sample: the sample (its question and options).
    """
    values: dict[str, str] = {}
    if sample.options is not None:
        letters = CHOICE_LETTERS[: len(sample.options)]
        values["labels"] = ", ".join(letters)
        values["options"] = "\n".join(
            f"{letter}. {text}" for letter, text in zip(letters, sample.options, strict=True)
        )
    elif spec.labels is not None:
        values["labels"] = ", ".join(spec.labels)
    values["question"] = sample.question or ""
    return template.format(**values)


def prompt_sha256(text: str) -> str:
    """The hex sha256 of a prompt template (recorded, so a changed wording is visible)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
