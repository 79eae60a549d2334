"""The registry: 20 datasets over 14 tasks, each declaration checked against data in its schema."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from datasets import ClassLabel, Value

from helpers.static_fixtures import (
    speech_bytes,
    varied_wav,
    write_audiofolder,
    write_parquet_dataset,
)
from lamarena.bench.data.loading import iter_samples, open_dataset, plan_samples, resolve_dataset
from lamarena.bench.data.registry import TABLE_TASKS, load_registry, parse_registry
from lamarena.errors import ConfigError, UnknownTask

REGISTRY = load_registry()

AIR_BENCH = {
    "question": ["When is the word 'river' said?", "When is the word 'stone' said?"],
    "choice_a": ["[0.1, 0.4]", "[1.0, 1.3]"],
    "choice_b": ["[0.5, 0.9]", "[1.4, 1.8]"],
    "choice_c": ["[1.0, 1.2]", "[0.2, 0.5]"],
    "choice_d": ["[1.3, 1.6]", "[0.6, 0.9]"],
    "answer_gt": ["[1.0, 1.2]", "[1.4, 1.8]"],
}
AUDIOBENCH_OPEN = {
    "instruction": ["What did the speaker order?", "Follow the instruction in the speech."],
    "answer": ["A cup of tea.", "Here is a short poem about rain."],
}

# For each registry dataset: its hub schema (columns and values as published, the audio column
# named as there), the feature types that matter, and the references the registry must read.
SCHEMAS: dict[str, dict[str, Any]] = {
    "urfunny": {
        "columns": {"label": ["humor", "not_humor", "humor"]},
        "expect": ["yes", "no", "yes"],
    },
    "mustard": {
        "columns": {"sarcasm": [True, False], "utterance": ["Oh great.", "It is raining."]},
        "expect": ["yes", "no"],
    },
    "slurp_intent": {
        "columns": {"intent": [98, 3, 66, 10, 26]},
        "expect": ["weather", "alarm", "music", "calendar"],  # factoid (26) is left out
    },
    "iemocap": {
        "columns": {"label": [0, 1, 2, 3]},
        "features": {"label": ClassLabel(names=["ang", "hap", "neu", "sad"])},
        "expect": ["angry", "happy", "neutral", "sad"],
    },
    "meld": {"columns": {"label": [0, 3, 6, 4]}, "expect": ["anger", "joy", "surprise", "neutral"]},
    "callhome": {
        "columns": {"Speaker A - Primary": ["RELATIVE", "FRIEND", "RELATIVE", "FRIEND", "FRIEND"]},
        "holdout": True,
        "expect_count": 1,
    },
    "commonvoice_gender": {
        "audio": "audio",
        "columns": {
            "gender": ["male_masculine", "female_feminine", "", "female"],
            "sentence": ["a", "b", "c", "d"],
        },
        "expect": ["male", "female", "female"],
    },
    "fairspeech_gender": {
        "audio": "audio",
        "columns": {"gender": ["female", "male"], "transcription": ["one", "two"]},
        "expect": ["female", "male"],
    },
    "commonvoice_age": {
        "audio": "audio",
        "columns": {"age": ["twenties", "fourties", "eighties", "teens"]},
        "expect": ["twenties", "forties", "teens"],
    },
    "fairspeech_age": {
        "audio": "audio",
        "columns": {"age": ["18 - 22", "46 - 65"]},
        "expect": ["18-22", "46-65"],
    },
    "commonvoice_accent": {
        "audio": "audio",
        "columns": {
            "accent": [
                "United States English",
                "India and South Asia (India, Pakistan, Sri Lanka)",
                "Scottish English",
                "Australian English",
            ]
        },
        "expect": ["american", "indian", "australian"],
    },
    "librispeech_grounding": {"audio": "audio", "columns": AIR_BENCH, "expect": ["C", "B"]},
    "covost2_language": {"audio": "audio", "columns": AIR_BENCH, "expect": ["C", "B"]},
    "slurp_entity": {"audio": "audio", "columns": AIR_BENCH, "expect": ["C", "B"]},
    "cn_college_listen": {
        "columns": {
            "instruction": [
                "What will the man do? (A) Cook dinner. (B) Go out. (C) Call a friend.",
                "Where is the woman? (A) At work. (B) At home. (C) At school.",
            ],
            "answer": ["(C) Call a friend.", "B"],
        },
        "expect": ["C", "B"],
    },
    "public_sg_speech": {"columns": AUDIOBENCH_OPEN, "expect": AUDIOBENCH_OPEN["answer"]},
    "openhermes_audio": {"columns": AUDIOBENCH_OPEN, "expect": AUDIOBENCH_OPEN["answer"]},
    "alpaca_audio": {"columns": AUDIOBENCH_OPEN, "expect": AUDIOBENCH_OPEN["answer"]},
    "librispeech_asr": {
        "columns": {"instruction": ["Transcribe."] * 2, "answer": ["HELLO WORLD", "GOOD DAY"]},
        "expect": ["HELLO WORLD", "GOOD DAY"],
    },
    "commonvoice_asr": {
        "columns": {"instruction": ["Transcribe."] * 2, "answer": ["Hello there.", ""]},
        "expect": ["Hello there."],  # an empty reference is left out
    },
}


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


def test_every_registry_dataset_has_a_schema_fixture_here() -> None:
    assert set(SCHEMAS) == set(REGISTRY.datasets)


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_registry_entry_reads_a_fixture_in_its_hub_schema(
    name: str, base_wav: bytes, tmp_path: Path
) -> None:
    spec = REGISTRY.dataset(name)
    schema = SCHEMAS[name]
    columns = dict(schema["columns"])
    rows = len(next(iter(columns.values())))
    audio_column = schema.get("audio", spec.audio_column)
    columns[audio_column] = [varied_wav(base_wav, index) for index in range(rows)]
    features = dict(schema.get("features", {}).items())
    for column, values in columns.items():
        if column != audio_column and isinstance(values[0], str) and column not in features:
            features[column] = Value("string")
    folder = tmp_path / name
    task: dict[str, Any] = {"dataset": name}
    write_parquet_dataset(
        folder, columns, audio_column=audio_column, task=task, split=spec.split, features=features
    )
    ref = resolve_dataset(str(folder), REGISTRY)
    assert ref.spec == spec  # a local copy is evaluated exactly as the registry declares
    dataset = open_dataset(ref, cache_dir=tmp_path / "cache")
    plan = plan_samples(ref.spec, dataset, limit=None)
    samples = list(iter_samples(ref.spec, dataset, plan.indices))
    if "expect_count" in schema:
        assert len(samples) == schema["expect_count"]
        assert {sample.reference for sample in samples} <= {"family", "friend"}
    else:
        assert [sample.reference for sample in samples] == schema["expect"]
    assert plan.available - len(samples) == sum(plan.skipped.values())
    assert all(sample.audio_bytes.startswith(b"RIFF") for sample in samples)
    if spec.is_choice:
        assert all(sample.options is not None and len(sample.options) >= 3 for sample in samples)
    if spec.question_column and not spec.options_in_question:
        assert all(sample.question for sample in samples)


def test_a_local_audiofolder_of_ones_own_loads_with_its_task_yaml(
    base_wav: bytes, tmp_path: Path
) -> None:
    rows = [
        {"audio": varied_wav(base_wav, 0), "label": "english"},
        {"audio": varied_wav(base_wav, 1), "label": "French"},
        {"audio": varied_wav(base_wav, 2), "label": "klingon"},
    ]
    task = {
        "task": "language",
        "label_column": "label",
        "labels": ["english", "french"],
        "metric": "macro_f1",
        "prompts": ["Which language is spoken: {labels}?"],
    }
    folder = write_audiofolder(tmp_path / "My Set", rows, task)
    ref = resolve_dataset(str(folder), REGISTRY)
    assert ref.spec.name == "my_set"
    dataset = open_dataset(ref, cache_dir=tmp_path / "cache")
    plan = plan_samples(ref.spec, dataset, limit=None)
    assert [s.reference for s in iter_samples(ref.spec, dataset, plan.indices)] == [
        "english",
        "french",
    ]
    assert plan.skipped == {"value 'klingon' maps to no label": 1}


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
            "metric: macro_f1}\n",
            "unknown task 'b'",
        ),
        (
            "tasks:\n  - {name: a, title: A, prompts: ['{question} x', y, z]}\n"
            "datasets:\n  - {name: d, task: a, hf_id: o/d, label_column: l, labels: [p, q], "
            "metric: macro_f1}\n",
            "needs {question}",
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
