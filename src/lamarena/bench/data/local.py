"""Local datasets: a folder that ``datasets.load_dataset`` reads, plus a ``task.yaml``.

The folder is a Hugging Face ``audiofolder`` (audio files and a ``metadata.jsonl`` with
``file_name`` and the other columns) or a copy of a hub dataset as fetched (its parquet files);
``task.yaml`` says what to evaluate. Two forms:

.. code-block:: yaml

    # a set of your own
    task: language                 # a registry task (its prompts are used), or a new name
    label_column: label            # or reference_column: text, for ASR and open answers
    labels: [english, french, german, spanish]
    metric: macro_f1               # macro_f1 | accuracy | wer | pedants | llm_judge
    # optional: name, split, question_column, option_columns, id_column, audio_column,
    # label_map, aliases, prompts (required for a new task: one to three templates)

    # a local copy of a registry dataset (e.g. fetched where the hub is reachable)
    dataset: commonvoice_gender    # everything else comes from the registry
    # optional: split, holdout (null to evaluate every row)
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from lamarena.bench.data.registry import (
    Registry,
    check_prompts_fit,
    describe_validation_error,
    read_yaml,
)
from lamarena.bench.data.spec import DatasetSpec, Holdout
from lamarena.errors import ConfigError, InvalidInputError, UnknownTask

__all__ = ["TASK_FILE", "is_local_reference", "read_local_spec"]

TASK_FILE = "task.yaml"
"""The file naming what a local folder holds."""


class _RegistryCopy(BaseModel):
    """``task.yaml`` of a local copy of a registry dataset."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset: str
    split: str | None = None
    holdout: Holdout | None = None


def is_local_reference(reference: str) -> bool:
    """Whether a ``--datasets`` item names a folder rather than a registry dataset."""
    return (
        "/" in reference
        or "\\" in reference
        or reference.startswith(".")
        or (Path(reference).is_dir())
    )


def _folder_name(path: Path) -> str:
    name = re.sub(r"[^a-z0-9_]+", "_", path.resolve().name.lower()).strip("_")
    return name if name and name[0].isalpha() else f"local_{name}".rstrip("_")


def _invalid(source: str, message: str) -> InvalidInputError:
    return InvalidInputError(f"{source}: {message}")


def _copy_spec(raw: dict[str, Any], registry: Registry, source: str) -> DatasetSpec:
    try:
        copy = _RegistryCopy.model_validate(raw)
    except ValidationError as exc:
        raise InvalidInputError(
            describe_validation_error(exc, raw, source=source)
            + " (a task.yaml naming a registry dataset may also set only split and holdout)"
        ) from exc
    try:
        spec = registry.dataset(copy.dataset)
    except UnknownTask as exc:
        raise _invalid(source, exc.message) from exc
    update: dict[str, Any] = {}
    if copy.split is not None:
        update["split"] = copy.split
    if "holdout" in copy.model_fields_set:
        update["holdout"] = copy.holdout
    return spec.model_copy(update=update)


def _own_spec(raw: dict[str, Any], registry: Registry, folder: Path, source: str) -> DatasetSpec:
    fields = {"name": _folder_name(folder), "split": "train", **raw}
    try:
        spec = DatasetSpec.model_validate(fields)
    except ValidationError as exc:
        raise InvalidInputError(describe_validation_error(exc, raw, source=source)) from exc
    if spec.prompts is None and spec.task not in registry.tasks:
        known = ", ".join(registry.tasks)
        raise _invalid(
            source,
            f"task '{spec.task}' is not a registry task ({known}): give prompts, a list of "
            "one to three templates",
        )
    prompts = spec.prompts if spec.prompts is not None else registry.task(spec.task).prompts
    try:
        check_prompts_fit(spec, prompts, source=source)
    except ConfigError as exc:
        raise InvalidInputError(exc.message) from exc
    return spec


def read_local_spec(folder: Path, registry: Registry) -> DatasetSpec:
    """The dataset a local folder holds, from its ``task.yaml``.

    Raises:
        InvalidInputError: the folder or its task.yaml is missing, or the file is invalid (the
            message names the file and the key).
    """
    if not folder.is_dir():
        raise InvalidInputError(
            f"{folder}: no such folder (give a registry dataset name or a folder with "
            f"{TASK_FILE}; `lamarena static list` shows the names)"
        )
    path = folder / TASK_FILE
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise InvalidInputError(
            f"{folder}: no {TASK_FILE}; it names the task, the label or reference column, the "
            "labels and the metric (see README: local datasets)"
        ) from exc
    except OSError as exc:
        raise InvalidInputError(f"{source}: cannot be read ({exc.strerror})") from exc
    try:
        raw = read_yaml(text, source=source)
    except ConfigError as exc:
        raise InvalidInputError(exc.message) from exc
    if not isinstance(raw, dict):
        raise _invalid(source, "expected a mapping (task:, label_column:, labels:, metric:)")
    if "dataset" in raw:
        return _copy_spec(raw, registry, source)
    return _own_spec(raw, registry, folder, source)
