"""The registry's 20 datasets from local copies of their hub repositories (``--hub-dir``).

The copies (:mod:`helpers.hub_fixtures`) are laid out as the real repositories are; the loopback
model answers each row as scripted there, and every score is checked against one computed by
hand here, through the real CLI (``lamarena static run|verify|fetch`` in a subprocess).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from helpers.fake_hub import serve_hub
from helpers.fake_static_model import FakeStaticModel, FakeStaticServer
from helpers.hub_fixtures import CALLHOME_LABELS, EntryFixture, build_hub, task_of_prompt
from helpers.static_cli import static_cli as cli
from helpers.static_fixtures import write_tiny_pedants_models
from lamarena.bench.data.loading import iter_samples, open_dataset, plan_samples, resolve_dataset
from lamarena.bench.data.registry import load_registry
from lamarena.bench.data.spec import DatasetSpec, Subsample

REGISTRY = load_registry()
NAMES = list(REGISTRY.datasets)

# Hand-computed macro-F1 (percent) of each classification entry: per class F1 = 2 TP / (2 TP +
# FP + FN) over the classes in the references or answers, then their mean. The rows and answers
# are those of helpers/hub_fixtures.py.
HAND_SCORES: dict[str, float] = {
    # refs yes no yes no / answers yes no no yes: each class TP 1, FP 1, FN 1
    "urfunny": 100 * (0.5 + 0.5) / 2,
    # refs yes no yes / answers yes yes no: yes 2/(2+1+1), no 0
    "mustard": 100 * (0.5 + 0.0) / 2,
    # weather alarm music calendar / weather alarm weather calendar; intent 26 left out
    "slurp_intent": 100 * (2 / 3 + 1 + 0 + 1) / 4,
    # session2: angry happy neutral sad sad / angry happy sad sad neutral
    "iemocap": 100 * (1 + 1 + 0 + 2 / 4) / 4,
    # anger joy surprise neutral / anger joy surprise("I'm surprised.") joy
    "meld": 100 * (1 + 2 / 3 + 1 + 0) / 4,
    # the holdout keeps rows 5 and 6 (FRIEND, RELATIVE); the model always says family
    "callhome": 100 * (2 / 3 + 0) / 2,
    # male female male female female / male female female female male; 3 rows left out
    "commonvoice_gender": 100 * (2 / 4 + 4 / 6) / 2,
    # twenties forties teens seventies thirties twenties / twenties forties twenties seventies
    # thirties twenties; eighties and empty left out
    "commonvoice_age": 100 * (4 / 5 + 1 + 0 + 1 + 1) / 5,
    # american british indian canadian australian / american british indian american australian
    "commonvoice_accent": 100 * (2 / 3 + 1 + 1 + 0 + 1) / 5,
    # female male female male / female male male male; a null gender left out
    "fairspeech_gender": 100 * (2 / 3 + 4 / 5) / 2,
    # 18-22 23-30 31-45 46-65 / 18-22 23-30 46-65 46-65
    "fairspeech_age": 100 * (1 + 1 + 0 + 2 / 3) / 4,
    # refs C B / answers C A: classes A (F1 0), B (0), C (1)
    "librispeech_grounding": 100 * (0 + 0 + 1) / 3,
    # refs B A / answers "The answer is B." and A (a two-option row)
    "covost2_language": 100.0,
    # refs A D / answers A and "I cannot tell." (unparsed: wrong, no class)
    "slurp_entity": 100 * (1 + 0) / 2,
    # refs A B C / answers A, "(B) Give her a ride", B
    "cn_college_listen": 100 * (1 + 2 / 3 + 0) / 3,
}
# Corpus WER: errors over reference words, after Whisper's English normaliser.
HAND_WER = {
    "librispeech_asr": (0 + 1) / (2 + 3),  # "good morning everyone" -> "good morning"
    "commonvoice_asr": (0 + 1) / (2 + 4),  # "john" -> "jon"; the empty reference is left out
}
# PEDANTS: two answers contain the (normalised) reference (1 each), the third is judged wrong.
HAND_PEDANTS = 100 * 2 / 3
OPEN_SETS = ("public_sg_speech", "openhermes_audio", "alpaca_audio")


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, EntryFixture]]:
    root = tmp_path_factory.mktemp("hub")
    return root, build_hub(root)


def test_the_fixture_hub_covers_every_registry_entry(
    hub: tuple[Path, dict[str, EntryFixture]],
) -> None:
    _, entries = hub
    assert set(entries) == set(NAMES)
    assert set(HAND_SCORES) | set(HAND_WER) | set(OPEN_SETS) == set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_each_entry_reads_its_copy_as_the_registry_declares(
    name: str, hub: tuple[Path, dict[str, EntryFixture]], tmp_path: Path
) -> None:
    root, entries = hub
    spec = REGISTRY.dataset(name)
    ref = resolve_dataset(name, REGISTRY, hub_dir=root)
    dataset = open_dataset(ref, cache_dir=tmp_path)
    plan = plan_samples(spec, dataset, limit=None)
    samples = list(iter_samples(spec, dataset, plan.indices))
    read = [(sample.sample_id, sample.reference) for sample in samples]
    if name == "callhome":  # the study's holdout: train_test_split(test_size=0.2, seed=42)
        from datasets import Dataset

        kept = Dataset.from_dict({"i": list(range(10))}).train_test_split(test_size=0.2, seed=42)[
            "test"
        ]["i"]
        assert sorted(kept) == [5, 6]
        wanted = {f"en_{4001 + i}.txt" for i in kept}
        assert sorted(read) == sorted(
            pair for pair in entries[name].references if pair[0] in wanted
        )
        assert [CALLHOME_LABELS[i] for i in sorted(kept)] == ["FRIEND", "RELATIVE"]
    else:
        assert read == entries[name].references
    if name in OPEN_SETS:
        assert {s.sample_id: s.question for s in samples} == entries[name].questions


def test_the_multi_task_table_keeps_one_tasks_rows_with_two_to_four_options(
    hub: tuple[Path, dict[str, EntryFixture]], tmp_path: Path
) -> None:
    root, _ = hub
    spec = REGISTRY.dataset("covost2_language")
    dataset = open_dataset(
        resolve_dataset("covost2_language", REGISTRY, hub_dir=root), cache_dir=tmp_path
    )
    assert set(dataset["task_name"]) == {"Spoken_Language_Identification"}
    samples = list(iter_samples(spec, dataset, plan_samples(spec, dataset, limit=None).indices))
    assert [len(sample.options or ()) for sample in samples] == [4, 2]


@pytest.fixture(scope="module")
def fake(hub: tuple[Path, dict[str, EntryFixture]]) -> Iterator[FakeStaticServer]:
    _, entries = hub
    templates: dict[str, list[str]] = {
        name: list(task.prompts) for name, task in REGISTRY.tasks.items()
    }
    by_task: dict[str, dict[str, str]] = {}
    everywhere: dict[str, str] = {}
    for name, entry in entries.items():
        task = REGISTRY.dataset(name).task
        by_task.setdefault(task, {}).update(entry.answers)
        everywhere.update(entry.answers)

    def answer_for(digest: str, prompt: str) -> str | None:
        task = task_of_prompt(prompt, templates)
        if task is not None and digest in by_task.get(task, {}):
            return by_task[task][digest]
        return everywhere.get(digest)

    with FakeStaticModel(answer_for=answer_for).serve() as server:
        yield server


@pytest.fixture(scope="module")
def full_run(
    hub: tuple[Path, dict[str, EntryFixture]],
    fake: FakeStaticServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, dict[str, Any]]:
    """One `static run --hub-dir` over all 20 datasets, three prompt variants each."""
    root, _ = hub
    home = tmp_path_factory.mktemp("hub-run")
    config = home / "models.yaml"
    config.write_text(
        f"models:\n  - {{name: fake, kind: openai, model: m, base_url: '{fake.base_url}', "
        "temperature: 0}\n"
    )
    pedants = write_tiny_pedants_models(home / "pedants")
    out = home / "out"
    result = cli(
        "run", "--config", config, "--models", "fake", "--datasets", ",".join(NAMES),
        "--hub-dir", root, "--out", out, "--json",
        home=home, LAMARENA_PEDANTS_MODEL_DIR=str(pedants),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return out, json.loads(result.stdout)


def _scores(summary: dict[str, Any], dataset: str, metric: str) -> list[float]:
    return [
        entry["score"]
        for entry in summary["scores"]
        if entry["dataset"] == dataset and entry["metric"] == metric
    ]


@pytest.mark.parametrize("name", sorted(HAND_SCORES))
def test_a_classification_entry_scores_its_hand_computed_macro_f1(
    name: str, full_run: tuple[Path, dict[str, Any]]
) -> None:
    _, summary = full_run
    scores = _scores(summary, name, "macro_f1")
    assert len(scores) == 3  # one per prompt variant, each the same by construction
    assert scores == pytest.approx([HAND_SCORES[name]] * 3, abs=1e-9)


@pytest.mark.parametrize("name", sorted(HAND_WER))
def test_an_asr_entry_scores_its_hand_computed_wer(
    name: str, full_run: tuple[Path, dict[str, Any]]
) -> None:
    _, summary = full_run
    assert _scores(summary, name, "wer") == pytest.approx([HAND_WER[name]] * 3, abs=1e-12)


@pytest.mark.parametrize("name", OPEN_SETS)
def test_an_open_entry_scores_pedants_and_cfmatch_named_apart(
    name: str, full_run: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    out, summary = full_run
    from lamarena.bench.scoring.pedants import PedantsScorer, load_pedants

    scorer = load_pedants(write_tiny_pedants_models(tmp_path / "pedants"))
    assert isinstance(scorer, PedantsScorer)
    question = "What colour is the door?"
    # the third answer shares no word with its reference: the classifier says wrong
    assert scorer.judge("Blue.", "Purple elephants dance quietly.", question) == 0.0
    assert _scores(summary, name, "pedants") == pytest.approx([HAND_PEDANTS] * 3, abs=1e-9)
    # CFMatch: 1 for an answer containing the reference, the classifier's probability otherwise
    third = scorer.confidence("Blue.", "Purple elephants dance quietly.", question)
    assert 0.0 < third < 0.5
    assert _scores(summary, name, "cfmatch") == pytest.approx([100 * (2 + third) / 3] * 3)
    rows = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    mine = [row for row in rows if row["dataset"] == name]
    assert {row["cfmatch"] for row in mine if row["sample_id"] != "2"} == {1.0}


def test_run_json_records_rows_left_out_and_how_scores_compare_with_table_1(
    full_run: tuple[Path, dict[str, Any]],
) -> None:
    out, _ = full_run
    run = json.loads((out / "run.json").read_text())
    gender = run["datasets"]["commonvoice_gender"]
    assert gender["skipped"] == {"empty label": 2, "left out: non-binary": 1}
    assert gender["usable"] == gender["evaluated"] == 5
    assert gender["location"].endswith("fixie-ai/common_voice_17_0")
    accent = run["datasets"]["commonvoice_accent"]["skipped"]
    assert accent == {"empty label": 1, "other value (drop_unmapped)": 2}
    assert run["datasets"]["slurp_intent"]["skipped"] == {"other value (drop_unmapped)": 1}
    assert run["options"]["decoding"] == "free"
    comparability = run["datasets"]["cn_college_listen"]["comparability"]
    assert "option letters" in comparability["classes"]
    assert run["datasets"]["librispeech_asr"]["comparability"]["empty_hypothesis"]
    assert "cfmatch" in run["datasets"]["alpaca_audio"]["comparability"]
    baselines = {b["dataset"]: b for b in json.loads((out / "baselines.json").read_text())}
    assert baselines["cn_college_listen"]["nominal_score"] == pytest.approx(100 / 3)
    assert baselines["covost2_language"]["nominal_score"] == pytest.approx(25.0)
    assert baselines["commonvoice_age"]["nominal_score"] == pytest.approx(100 / 7)
    table = cli("table", "--out", out, home=out.parent)
    assert table.returncode == 0, table.stderr
    nominal = next(line for line in table.stdout.splitlines() if line.startswith("| random (1/K)"))
    assert "| 50.0 | 50.0 |" in nominal  # humor, sarcasm


def test_verify_reports_ok_for_every_entry(
    hub: tuple[Path, dict[str, EntryFixture]], tmp_path: Path
) -> None:
    root, _ = hub
    result = cli("verify", "--hub-dir", root, home=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 20 and all(line.startswith("ok ") for line in lines), result.stdout
    assert any("4 usable rows, fewer than the study's 994" in line for line in lines)
    as_json = cli("verify", "--hub-dir", root, "iemocap", "--json", home=tmp_path)
    verdict = json.loads(as_json.stdout)
    assert verdict == [
        {
            "dataset": "iemocap",
            "hf_id": "Zahra99/IEMOCAP_Audio",
            "ok": True,
            "problem": None,
            "rows": 5,
            "usable": 5,
            "size": 1023,
            "skipped": {},
            "notes": [
                "5 usable rows, fewer than the study's 1023 (a partial copy, or a smaller upload)"
            ],
        }
    ]


def _copy(root: Path, repo: str, into: Path) -> Path:
    shutil.copytree(root / repo, into / repo)
    return into / repo


def _rewrite(parquet: Path, change: Any) -> None:
    table = pq.read_table(parquet)
    pq.write_table(change(table), parquet)


def test_verify_names_the_problem_of_a_broken_copy(
    hub: tuple[Path, dict[str, EntryFixture]], tmp_path: Path
) -> None:
    root, _ = hub
    broken = tmp_path / "broken"
    # a column gone
    urfunny = _copy(root, "SALT-NLP/URFunny_humor", broken)
    test_file = urfunny / "data" / "test-00000-of-00001.parquet"
    _rewrite(test_file, lambda table: table.drop(["label"]))
    # a label value nobody declared
    meld = _copy(root, "DavidCombei/Wav2Vec_MELD_Audio", broken)
    import pyarrow as pa

    meld_test = meld / "data" / "test-00000-of-00001.parquet"
    _rewrite(meld_test, lambda t: t.set_column(1, "label", pa.array([0, 9, 9, 4], pa.int64())))
    # the evaluated split missing
    iemocap = _copy(root, "Zahra99/IEMOCAP_Audio", broken)
    card = (iemocap / "README.md").read_text()
    (iemocap / "README.md").write_text(card.replace("split: session2", "split: session2b"))
    # the split's files missing
    cv = _copy(root, "fixie-ai/common_voice_17_0", broken)
    for shard in (cv / "en" / "test").rglob("*.parquet"):
        shard.unlink()
    (cv / "en" / "test" / "notes.md").write_text("not a data file")
    # undecodable audio
    asr = _copy(root, "AudioLLMs/librispeech_test_clean", broken)
    asr_file = asr / "data" / "test-00000-of-00001.parquet"

    def garble(table: Any) -> Any:
        audio = [{"bytes": b"not audio at all", "path": "x.wav"}] * table.num_rows
        index = table.schema.get_field_index("context")
        return table.set_column(
            index, table.schema.field(index), pa.array(audio, table.schema.field(index).type)
        )

    _rewrite(asr_file, garble)
    names = ["urfunny", "meld", "iemocap", "commonvoice_gender", "librispeech_asr", "mustard"]
    result = cli("verify", "--hub-dir", broken, *names, home=tmp_path)
    assert result.returncode == 1
    lines = dict(line.split(":", 1) for line in result.stdout.strip().splitlines())
    assert "has no column 'label'" in lines["FAIL urfunny"]
    assert "map to no label: '9' (2 rows)" in lines["FAIL meld"]
    assert "has no split 'session2'" in lines["FAIL iemocap"]
    assert "holds no files of config 'en', split 'test'" in lines["FAIL commonvoice_gender"]
    assert "sample 0" in lines["FAIL librispeech_asr"]
    assert "lamarena static fetch mustard" in lines["FAIL mustard"]


def test_a_run_whose_dataset_is_not_in_the_hub_copy_fails_at_once_naming_fetch(
    tmp_path: Path, fake: FakeStaticServer
) -> None:
    config = tmp_path / "models.yaml"
    config.write_text(
        f"models:\n  - {{name: fake, kind: openai, model: m, base_url: '{fake.base_url}'}}\n"
    )
    (tmp_path / "empty-hub").mkdir()
    started = time.perf_counter()
    result = cli(
        "run", "--config", config, "--models", "fake", "--datasets", "iemocap",
        "--hub-dir", tmp_path / "empty-hub", "--out", tmp_path / "out", home=tmp_path,
    )  # fmt: skip
    elapsed = time.perf_counter() - started
    assert result.returncode == 1
    message = result.stderr.strip()
    assert "dataset 'iemocap' (Zahra99/IEMOCAP_Audio) is not in the hub copy" in message
    assert f"lamarena static fetch iemocap --hub-dir {tmp_path / 'empty-hub'}" in message
    assert not (tmp_path / "out").exists()
    assert elapsed < 30  # the whole process, interpreter start included; no network wait


def test_fetch_downloads_only_the_config_and_split_each_dataset_reads(
    hub: tuple[Path, dict[str, EntryFixture]], tmp_path: Path
) -> None:
    root, _ = hub
    target = tmp_path / "fetched"
    with serve_hub(root) as fake_hub:
        result = cli(
            "fetch", "commonvoice_gender", "commonvoice_age", "librispeech_grounding", "iemocap",
            "--hub-dir", target, "--json",
            home=tmp_path, HF_ENDPOINT=fake_hub.base_url, HF_HUB_OFFLINE="0",
            HF_HOME=str(tmp_path / "hf-home"),
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        cv = fake_hub.downloaded_files("fixie-ai/common_voice_17_0")
        air = fake_hub.downloaded_files("lmms-lab/AIR_Bench")
        iemocap = fake_hub.downloaded_files("Zahra99/IEMOCAP_Audio")
    # the test split's file sits right in en/test/: the card's en/test/**/*.parquet matches it
    # as datasets reads it (huggingface_hub's own allow_patterns matching would not)
    assert cv == ["README.md", "en/test/test-00000-of-00001.parquet"]
    assert air == ["Foundation/speech-00000-of-00001.parquet", "README.md"]
    assert iemocap == ["README.md", "data/session2-00000-of-00001.parquet"]
    fetched = {repo["hf_id"]: repo for repo in json.loads(result.stdout)}
    assert fetched["fixie-ai/common_voice_17_0"]["datasets"] == [
        "commonvoice_gender",
        "commonvoice_age",
    ]
    verified = cli(
        "verify", "--hub-dir", target, "commonvoice_gender", "commonvoice_age",
        "librispeech_grounding", "iemocap", home=tmp_path,
    )  # fmt: skip
    assert verified.returncode == 0, verified.stdout
    for path in (root / "Zahra99/IEMOCAP_Audio/data/session2-00000-of-00001.parquet",):
        copied = target / "Zahra99/IEMOCAP_Audio/data" / path.name
        assert copied.read_bytes() == path.read_bytes()


def test_fetch_of_a_repository_the_hub_lacks_says_so(tmp_path: Path) -> None:
    (tmp_path / "served").mkdir()
    with serve_hub(tmp_path / "served") as fake_hub:
        result = cli(
            "fetch", "mustard", "--hub-dir", tmp_path / "target",
            home=tmp_path, HF_ENDPOINT=fake_hub.base_url, HF_HUB_OFFLINE="0",
            HF_HOME=str(tmp_path / "hf-home"),
        )  # fmt: skip
    assert result.returncode == 1
    assert "could not download SALT-NLP/Mustard_sarcasm" in result.stderr


def test_a_seeded_subsample_keeps_the_lowest_hash_ranks_in_row_order(
    hub: tuple[Path, dict[str, EntryFixture]], tmp_path: Path
) -> None:
    root, entries = hub
    base = REGISTRY.dataset("commonvoice_gender")
    spec = DatasetSpec.model_validate(
        {**base.model_dump(), "subsample": Subsample(size=3, seed=7).model_dump()}
    )
    dataset = open_dataset(
        resolve_dataset("commonvoice_gender", REGISTRY, hub_dir=root), cache_dir=tmp_path
    )
    plan = plan_samples(spec, dataset, limit=None)
    usable = [sample_id for sample_id, _ in entries["commonvoice_gender"].references]
    ranked = sorted(usable, key=lambda key: hashlib.sha256(f"7:{key}".encode()).digest())
    chosen = [key for key in usable if key in ranked[:3]]
    read = [s.sample_id for s in iter_samples(spec, dataset, plan.indices)]
    assert read == chosen
    assert plan.usable == 5 and plan.skipped["not in the seeded subsample"] == 2
    again = plan_samples(spec, dataset, limit=2)
    assert [s.sample_id for s in iter_samples(spec, dataset, again.indices)] == chosen[:2]


def test_a_folder_of_a_dataset_declared_otherwise_is_not_resumed(
    hub: tuple[Path, dict[str, EntryFixture]], fake: FakeStaticServer, tmp_path: Path
) -> None:
    root, _ = hub
    out = tmp_path / "old"
    out.mkdir()
    earlier = REGISTRY.dataset("iemocap").model_dump(mode="json")
    earlier.update(split="session1", version=1)  # what the registry read before
    for key in ("where", "subsample", "drop_values", "drop_unmapped", "options_column"):
        earlier.pop(key)  # an older run.json did not have these keys
    (out / "run.json").write_text(
        json.dumps({"options": {}, "datasets": {"iemocap": {"spec": earlier}}})
    )
    (out / "samples.jsonl").write_text("")
    config = tmp_path / "models.yaml"
    config.write_text(
        f"models:\n  - {{name: fake, kind: openai, model: m, base_url: '{fake.base_url}'}}\n"
    )
    result = cli(
        "run", "--config", config, "--models", "fake", "--datasets", "iemocap",
        "--hub-dir", root, "--out", out, home=tmp_path,
    )  # fmt: skip
    assert result.returncode == 1
    assert "holds results of dataset 'iemocap' as declared otherwise" in result.stderr
    assert "split: 'session1' then, 'session2' now" in result.stderr
    assert (out / "samples.jsonl").read_text() == ""


def test_loading_a_hub_copy_leaves_the_process_online(
    hub: tuple[Path, dict[str, EntryFixture]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import datasets
    import huggingface_hub.constants

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    root, _ = hub
    dataset = open_dataset(resolve_dataset("meld", REGISTRY, hub_dir=root), cache_dir=tmp_path)
    assert len(dataset) == 4
    # a local model loaded next in the same run may still fetch its weights where allowed
    assert datasets.config.HF_HUB_OFFLINE is False
    assert huggingface_hub.constants.HF_HUB_OFFLINE is False


def test_fetch_from_an_unreachable_hub_fails_at_once_and_writes_nothing(tmp_path: Path) -> None:
    import socket

    with socket.socket() as placeholder:  # a loopback port nothing listens on
        placeholder.bind(("127.0.0.1", 0))
        closed = placeholder.getsockname()[1]
    started = time.perf_counter()
    result = cli(
        "fetch", "mustard", "--hub-dir", tmp_path / "target",
        home=tmp_path, HF_ENDPOINT=f"http://127.0.0.1:{closed}", HF_HUB_OFFLINE="0",
        HF_HOME=str(tmp_path / "hf-home"),
    )  # fmt: skip
    assert result.returncode == 1
    assert f"the hub at http://127.0.0.1:{closed} cannot be reached" in result.stderr
    assert time.perf_counter() - started < 30  # not huggingface_hub's half minute of retries
    assert not (tmp_path / "target").exists()
