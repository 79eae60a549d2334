"""The task registry: the study's 14 tasks and 20 datasets, read from ``registry.yaml``.

The declarations are data (``registry.yaml`` beside this module), validated into
:class:`~lamarena.bench.data.spec.TaskSpec` and :class:`~lamarena.bench.data.spec.DatasetSpec`,
and checked across entries: every dataset's task exists, names are unique, every task has three
prompts, and every prompt a dataset uses only asks for what that dataset has (a question, options,
labels).
An unknown name is an :class:`~lamarena.errors.UnknownTask` that suggests the closest one.
"""

from __future__ import annotations

import difflib
import functools
from dataclasses import dataclass
from importlib import resources
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lamarena.bench.data.spec import DatasetSpec, TaskSpec, template_fields
from lamarena.errors import ConfigError, UnknownTask

__all__ = [
    "PROMPT_VARIANTS",
    "TABLE_TASKS",
    "Registry",
    "check_prompts_fit",
    "describe_validation_error",
    "load_registry",
    "parse_registry",
    "read_yaml",
]

PROMPT_VARIANTS = 3
"""Every registry task has this many prompt variants (the study averaged three)."""

TABLE_TASKS = (
    "humor",
    "sarcasm",
    "intent",
    "emotion",
    "relation",
    "gender",
    "age",
    "accent",
    "grounding",
    "language",
    "entity",
    "qa",
    "instruction",
    "asr",
)
"""The columns of the study's Table 1, in its order."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """A YAML loader that refuses a key repeated in one mapping (a silent override otherwise)."""


def _unique_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key '{key}' appears twice", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=True)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


def read_yaml(text: str, *, source: str) -> Any:
    """Parse YAML, refusing repeated keys.

    Raises:
        ConfigError: the text is not valid YAML or repeats a key (the message names ``source``).
    """
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {' '.join(str(exc).split())}") from exc


def describe_validation_error(exc: ValidationError, raw: Any, *, source: str) -> str:
    """One line naming the entry and the key of the first validation problem."""
    error = exc.errors()[0]
    loc = list(error["loc"])
    where = source
    if len(loc) >= 2 and isinstance(loc[1], int) and isinstance(raw, dict):
        entries = raw.get(loc[0])
        if (
            isinstance(entries, list)
            and loc[1] < len(entries)
            and isinstance(entries[loc[1]], dict)
        ):
            name = entries[loc[1]].get("name")
            kind = str(loc[0]).removesuffix("s")
            where = f"{source}: {kind} '{name}'" if name else f"{source}: entry {loc[1] + 1}"
        loc = loc[2:]
    key = ".".join(str(part) for part in loc)
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown key (check its spelling)"
    elif error["type"] == "missing":
        message = "is missing"
    more = f" (and {exc.error_count() - 1} more problems)" if exc.error_count() > 1 else ""
    return f"{where}: key '{key}': {message}{more}" if key else f"{where}: {message}{more}"


class _RegistryFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    tasks: list[TaskSpec] = Field(min_length=1)
    datasets: list[DatasetSpec] = Field(min_length=1)


def _suggest(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    return f" Did you mean '{close[0]}'?" if close else ""


@dataclass(frozen=True)
class Registry:
    """The validated tasks and datasets, by name (in declaration order)."""

    tasks: dict[str, TaskSpec]
    datasets: dict[str, DatasetSpec]

    def task(self, name: str) -> TaskSpec:
        """The task called ``name``.

        Raises:
            UnknownTask: no such task (the message suggests the closest and lists them all).
        """
        if name in self.tasks:
            return self.tasks[name]
        known = list(self.tasks)
        raise UnknownTask(
            f"unknown task '{name}'.{_suggest(name, known)} Tasks: {', '.join(known)}"
        )

    def dataset(self, name: str) -> DatasetSpec:
        """The dataset called ``name``.

        Raises:
            UnknownTask: no such dataset (the message suggests the closest and lists them all).
        """
        if name in self.datasets:
            return self.datasets[name]
        known = list(self.datasets)
        raise UnknownTask(
            f"unknown dataset '{name}'.{_suggest(name, known)} Datasets: {', '.join(known)} "
            "(or give the path of a local folder with a task.yaml)"
        )

    def prompts_for(self, dataset: DatasetSpec) -> list[str]:
        """The prompt variants of ``dataset``: its own, or its task's.

        Raises:
            UnknownTask: the dataset's task is not in the registry and it has no prompts.
        """
        if dataset.prompts is not None:
            return list(dataset.prompts)
        return list(self.task(dataset.task).prompts)

    def describe(self) -> list[dict[str, Any]]:
        """The ``static list --json`` rows: name, task, hf_id, split, size, metric."""
        return [
            {
                "name": spec.name,
                "task": spec.task,
                "hf_id": spec.hf_id,
                "split": spec.split,
                "size": spec.size,
                "metric": spec.metric.value,
            }
            for spec in self.datasets.values()
        ]


def check_prompts_fit(dataset: DatasetSpec, prompts: list[str], *, source: str) -> None:
    """Refuse prompts asking for something the dataset does not have.

    Raises:
        ConfigError: a prompt uses ``{question}``, ``{options}`` or ``{labels}`` that the
            dataset cannot fill.
    """
    for prompt in prompts:
        missing = template_fields(prompt) - dataset.fillable()
        if missing:
            raise ConfigError(
                f"{source}: dataset '{dataset.name}': prompt {prompt!r} needs "
                f"{', '.join('{' + name + '}' for name in sorted(missing))}, which this dataset "
                "does not have"
            )


def parse_registry(text: str, *, source: str = "registry.yaml") -> Registry:
    """Validate a registry document.

    Raises:
        ConfigError: bad YAML, an invalid entry, a repeated name, a dataset of an unknown task,
            a task without three prompts, or a prompt a dataset cannot fill.
    """
    raw = read_yaml(text, source=source)
    try:
        parsed = _RegistryFile.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, raw, source=source)) from exc
    tasks: dict[str, TaskSpec] = {}
    for task in parsed.tasks:
        if task.name in tasks:
            raise ConfigError(f"{source}: task '{task.name}' is declared twice")
        if len(task.prompts) != PROMPT_VARIANTS:
            raise ConfigError(
                f"{source}: task '{task.name}' has {len(task.prompts)} prompts; give "
                f"{PROMPT_VARIANTS}"
            )
        tasks[task.name] = task
    datasets: dict[str, DatasetSpec] = {}
    for dataset in parsed.datasets:
        if dataset.name in datasets:
            raise ConfigError(f"{source}: dataset '{dataset.name}' is declared twice")
        if not dataset.source.strip():
            raise ConfigError(
                f"{source}: dataset '{dataset.name}': key 'source' is missing: name where its "
                "schema was confirmed (a dataset card, or the harness that loads it)"
            )
        if dataset.task not in tasks:
            raise ConfigError(
                f"{source}: dataset '{dataset.name}': unknown task '{dataset.task}'"
                f"{_suggest(dataset.task, list(tasks))}"
            )
        if dataset.prompts is not None and len(dataset.prompts) != PROMPT_VARIANTS:
            raise ConfigError(
                f"{source}: dataset '{dataset.name}' has {len(dataset.prompts)} prompts; give "
                f"{PROMPT_VARIANTS}"
            )
        prompts = dataset.prompts or tasks[dataset.task].prompts
        check_prompts_fit(dataset, prompts, source=source)
        datasets[dataset.name] = dataset
    return Registry(tasks=tasks, datasets=datasets)


@functools.cache
def load_registry() -> Registry:
    """The packaged registry (read and validated once per process).

    Raises:
        ConfigError: the packaged ``registry.yaml`` is invalid.
    """
    text = resources.files("lamarena.bench.data").joinpath("registry.yaml").read_text("utf-8")
    return parse_registry(text)
