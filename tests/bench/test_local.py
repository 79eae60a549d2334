"""Local datasets: task.yaml forms and the messages of every bad one; unreachable hub sets."""

from __future__ import annotations

from pathlib import Path

import pytest

from lamarena.bench.data.loading import open_dataset, resolve_dataset
from lamarena.bench.data.registry import load_registry
from lamarena.errors import InvalidInputError, NotFound

REGISTRY = load_registry()


def write(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "task.yaml").write_text(text, encoding="utf-8")
    return folder


def test_a_registry_copy_may_change_only_split_and_holdout(tmp_path: Path) -> None:
    folder = write(tmp_path / "callhome", "dataset: callhome\nsplit: all\nholdout: null\n")
    spec = resolve_dataset(str(folder), REGISTRY).spec
    assert spec.split == "all" and spec.holdout is None
    assert spec.label_column == "Speaker A - Primary"
    unchanged = resolve_dataset(str(write(tmp_path / "c2", "dataset: callhome\n")), REGISTRY).spec
    assert unchanged == REGISTRY.dataset("callhome")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("dataset: callhome\nlabels: [a, b]\n", "key 'labels': unknown key"),
        ("dataset: calhome\n", "Did you mean 'callhome'"),
        ("task: language\nlabels: [a, b]\nmetric: macro_f1\n", "give exactly one of label_column"),
        ("task: language\nlabel_column: l\nmetric: macro_f1\n", "needs labels"),
        ("task: language\nlabel_column: l\nlabels: [a, b]\nmetric: f1\n", "key 'metric'"),
        ("task: colour\nlabel_column: l\nlabels: [red, blue]\nmetric: macro_f1\n",
         r"not a registry task .* give prompts"),
        ("task: asr\nreference_column: t\nmetric: wer\nprompts: ['Say {question}']\n",
         "needs {question}"),
        ("task: language\nlabel_column: l\nlabels: [A, b]\nmetric: macro_f1\n", "lower case"),
        ("- just\n- a list\n", "expected a mapping"),
        ("task: [unclosed\n", "not valid YAML"),
        ("task: language\ntask: asr\n", "appears twice"),
    ],
)  # fmt: skip
def test_a_bad_task_yaml_names_the_file_and_the_problem(
    tmp_path: Path, text: str, message: str
) -> None:
    folder = write(tmp_path / "set", text)
    with pytest.raises(InvalidInputError, match=message) as caught:
        resolve_dataset(str(folder), REGISTRY)
    assert caught.value.message.startswith(str(folder))


def test_a_folder_without_task_yaml_says_what_it_needs(tmp_path: Path) -> None:
    (tmp_path / "set").mkdir()
    with pytest.raises(InvalidInputError, match=r"no task\.yaml; it names the task"):
        resolve_dataset(str(tmp_path / "set"), REGISTRY)
    with pytest.raises(InvalidInputError, match="no such folder"):
        resolve_dataset(str(tmp_path / "missing"), REGISTRY)


def test_a_folder_datasets_cannot_read_is_one_clear_error(tmp_path: Path) -> None:
    folder = write(tmp_path / "set", "dataset: mustard\n")
    ref = resolve_dataset(str(folder), REGISTRY)
    with pytest.raises(InvalidInputError, match="not a dataset folder `datasets` can read"):
        open_dataset(ref, cache_dir=tmp_path / "cache")
    (folder / "notes.txt").write_text("nothing here")  # datasets reads it as a text dataset
    with pytest.raises(InvalidInputError, match="no audio column 'audio'; columns: text"):
        open_dataset(ref, cache_dir=tmp_path / "cache")


@pytest.mark.parametrize("name", ["mustard", "commonvoice_gender", "covost2_language"])
def test_an_unreachable_hub_dataset_says_how_to_give_it_locally(name: str) -> None:
    ref = resolve_dataset(name, REGISTRY)
    with pytest.raises(NotFound) as caught:
        open_dataset(ref)
    message = caught.value.message
    assert f"dataset '{name}' ({ref.spec.hf_id}) could not be loaded" in message
    assert "no network access to the Hugging Face hub" in message
    assert f"`dataset: {name}`" in message
    assert "\n" not in message


def test_an_unreachable_hub_is_noticed_once_and_only_the_local_cache_is_tried(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import socket

    import datasets
    import huggingface_hub.constants

    # Restored after the test: the probe switches both libraries to their local caches.
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    probes: list[tuple[str, int]] = []

    def refuse(address: tuple[str, int], *args: object, **kwargs: object) -> socket.socket:
        probes.append(address)
        raise OSError("no route to host")

    monkeypatch.setattr(socket, "create_connection", refuse)
    seen: list[tuple[bool, bool]] = []
    load = datasets.load_dataset

    def recording_load(*args: object, **kwargs: object) -> object:
        seen.append((datasets.config.HF_HUB_OFFLINE, huggingface_hub.constants.HF_HUB_OFFLINE))
        return load(*args, **kwargs)

    monkeypatch.setattr(datasets, "load_dataset", recording_load)
    with pytest.raises(NotFound, match="no network access"):
        open_dataset(resolve_dataset("mustard", REGISTRY))
    assert probes == [("huggingface.co", 443)]
    assert seen == [(True, True)]  # the load used only the local cache
    # and the process is not left offline: a model loaded next may still fetch its weights
    assert datasets.config.HF_HUB_OFFLINE is False
    assert huggingface_hub.constants.HF_HUB_OFFLINE is False
