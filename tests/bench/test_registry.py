"""The registry: 20 datasets over 14 tasks, each declaration checked against data in its schema."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.static_fixtures import (
    speech_bytes,
    varied_wav,
    write_audiofolder,
)
from lamarena.bench.data.loading import (
    UnmappedLabels,
    iter_samples,
    open_dataset,
    plan_samples,
    resolve_dataset,
)
from lamarena.bench.data.registry import TABLE_TASKS, load_registry, parse_registry
from lamarena.errors import ConfigError, UnknownTask

REGISTRY = load_registry()

LANGUAGE_TASK = {
    "task": "language",
    "label_column": "label",
    "labels": ["english", "french"],
    "metric": "macro_f1",
    "prompts": ["Which language is spoken: {labels}?"],
}
"""A task.yaml of one's own: two languages."""


@pytest.fixture(scope="module")
def base_wav(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return speech_bytes("Testing one two three.", tmp_path_factory.mktemp("registry-speech"))


def test_the_registry_declares_the_studys_20_datasets_over_14_tasks() -> None:
    assert len(REGISTRY.datasets) == 20
    assert list(REGISTRY.tasks) == list(TABLE_TASKS)
    assert {spec.task for spec in REGISTRY.datasets.values()} == set(TABLE_TASKS)
    assert all(spec.hf_id and "/" in spec.hf_id for spec in REGISTRY.datasets.values())
    assert all(len(task.prompts) == 3 for task in REGISTRY.tasks.values())
    open_sets = {name for name, spec in REGISTRY.datasets.items() if spec.metric.value == "pedants"}
    assert open_sets == {"public_sg_speech", "openhermes_audio", "alpaca_audio"}
    assert {spec.metric.value for spec in REGISTRY.datasets.values() if spec.task == "asr"} == {
        "wer"
    }


def test_a_local_audiofolder_of_ones_own_loads_with_its_task_yaml(
    base_wav: bytes, tmp_path: Path
) -> None:
    rows = [
        {"audio": varied_wav(base_wav, 0), "label": "english"},
        {"audio": varied_wav(base_wav, 1), "label": "French"},
        {"audio": varied_wav(base_wav, 2), "label": None},
    ]
    folder = write_audiofolder(tmp_path / "My Set", rows, LANGUAGE_TASK)
    ref = resolve_dataset(str(folder), REGISTRY)
    assert ref.spec.name == "my_set"
    dataset = open_dataset(ref, cache_dir=tmp_path / "cache")
    plan = plan_samples(ref.spec, dataset, limit=None)
    assert [s.reference for s in iter_samples(ref.spec, dataset, plan.indices)] == [
        "english",
        "french",
    ]
    assert plan.skipped == {"empty label": 1}


def test_a_label_value_a_task_yaml_does_not_account_for_is_an_error_naming_it(
    base_wav: bytes, tmp_path: Path
) -> None:
    rows = [
        {"audio": varied_wav(base_wav, 0), "label": "english"},
        {"audio": varied_wav(base_wav, 1), "label": "klingon"},
        {"audio": varied_wav(base_wav, 2), "label": ""},
    ]
    folder = write_audiofolder(tmp_path / "strict", rows, LANGUAGE_TASK)
    ref = resolve_dataset(str(folder), REGISTRY)
    dataset = open_dataset(ref, cache_dir=tmp_path / "cache")
    with pytest.raises(UnmappedLabels, match="'klingon' \\(1 rows\\); add them to label_map"):
        plan_samples(ref.spec, dataset, limit=None)
    dropped = ref.spec.model_copy(update={"drop_values": ["klingon"]})
    plan = plan_samples(dropped, dataset, limit=None)
    assert plan.skipped == {"left out: klingon": 1, "empty label": 1}
    loose = ref.spec.model_copy(update={"drop_unmapped": True})
    assert plan_samples(loose, dataset, limit=None).skipped == {
        "other value (drop_unmapped)": 1,
        "empty label": 1,
    }


def test_every_registry_entry_names_the_source_of_its_schema() -> None:
    assert all(len(spec.source) > 20 for spec in REGISTRY.datasets.values())
    assert REGISTRY.dataset("iemocap").split == "session2"
    assert REGISTRY.dataset("librispeech_asr").hf_id == "AudioLLMs/librispeech_test_clean"
    air = REGISTRY.dataset("slurp_entity")
    assert (air.hf_id, air.config, air.split) == ("lmms-lab/AIR_Bench", "Foundation", "speech")
    assert air.where == {"task_name": "Speech_Entity_Reconition"}
    assert REGISTRY.dataset("openhermes_audio").question_column == "speech_instruction"


def test_unknown_dataset_names_the_closest() -> None:
    with pytest.raises(UnknownTask, match="Did you mean 'mustard'"):
        REGISTRY.dataset("mustrad")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("tasks: []\ndatasets: []\n", "tasks"),
        ("tasks:\n  - name: a\n    title: A\n    title: B\n", "appears twice"),
        (
            "tasks:\n  - {name: a, title: A, prompts: [x, y, z]}\n"
            "datasets:\n  - {name: d, task: b, hf_id: o/d, label_column: l, labels: [p, q], "
            "metric: macro_f1, source: a dataset card somewhere}\n",
            "unknown task 'b'",
        ),
        (
            "tasks:\n  - {name: a, title: A, prompts: ['{question} x', y, z]}\n"
            "datasets:\n  - {name: d, task: a, hf_id: o/d, label_column: l, labels: [p, q], "
            "metric: macro_f1, source: a dataset card somewhere}\n",
            "needs {question}",
        ),
        (
            "tasks:\n  - {name: a, title: A, prompts: [x, y, z]}\n"
            "datasets:\n  - {name: d, task: a, hf_id: o/d, label_column: l, labels: [p, q], "
            "metric: macro_f1}\n",
            "dataset 'd': key 'source' is missing",
        ),
        (
            "tasks:\n  - {name: a, title: A, prompts: [x, y, z]}\n"
            "datasets:\n  - {name: d, task: a, hf_id: o/d, label_column: l, labels: [p, q], "
            "label_map: {x: r}, metric: macro_f1}\n",
            "not in labels",
        ),
        (
            "tasks:\n  - {name: a, title: A, prompts: [x, y]}\n"
            "datasets:\n  - {name: d, task: a, hf_id: o/d, reference_column: t, metric: wer}\n",
            "give 3",
        ),
        (
            "tasks:\n  - {name: a, title: A, prompts: [x, y, z]}\n"
            "datasets:\n  - {name: d, task: a, hf_id: o/d, reference_colum: t, metric: wer}\n",
            "dataset 'd': key 'reference_colum': unknown key",
        ),
    ],
)
def test_a_bad_registry_fails_naming_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_registry(text, source="test.yaml")
