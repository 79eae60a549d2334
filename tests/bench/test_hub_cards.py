"""Dataset cards read as ``datasets`` reads them: default configs, data_dir, data files only."""

from __future__ import annotations

from pathlib import Path

import pytest
from datasets import ClassLabel, Dataset, Features, Value

from helpers.hub_fixtures import HubBuilder
from lamarena.bench.data.fetch import repo_patterns, select_files
from lamarena.bench.data.hub import card_configs, config_files, load_hub_copy
from lamarena.bench.data.loading import plan_samples
from lamarena.bench.data.spec import DatasetSpec
from lamarena.errors import InvalidInputError


def spec(**fields: object) -> DatasetSpec:
    base: dict[str, object] = {
        "name": "toy",
        "task": "sarcasm",
        "hf_id": "org/toy",
        "label_column": "label",
        "labels": ["yes", "no"],
        "metric": "macro_f1",
    }
    return DatasetSpec.model_validate({**base, **fields})


@pytest.fixture(scope="module")
def builder(tmp_path_factory: pytest.TempPathFactory) -> HubBuilder:
    return HubBuilder(tmp_path_factory.mktemp("cards"))


def toy_repo(builder: HubBuilder, repo: str, card: str) -> Path:
    columns = {"audio": [builder.clip(), builder.clip()], "label": ["yes", "no"]}
    folder = builder.repo(
        repo,
        {"main": {"test": ("main/test-*", "main/test-00000-of-00001.parquet", columns)}},
        {"label": Value("string")},
        audio_column="audio",
        sampling_rate=None,
    )
    (folder / "other").mkdir(exist_ok=True)
    Dataset.from_dict({"label": ["no"]}).to_parquet(str(folder / "other" / "test-0.parquet"))
    (folder / "README.md").write_text(card)
    return folder


def test_the_config_the_card_marks_default_is_read_without_a_config(builder: HubBuilder) -> None:
    folder = toy_repo(
        builder,
        "org/marked",
        "---\nconfigs:\n- config_name: other\n  data_files: [{split: test, path: other/*}]\n"
        "- config_name: main\n  default: true\n  data_files: [{split: test, path: main/*}]\n---\n",
    )
    config, files = config_files(folder, spec())
    assert config.name == "main" and [Path(f).parent.name for f in files] == ["main"]
    assert repo_patterns(folder, [spec()]) == ["README.md", "main/*"]


def test_a_config_with_only_a_data_dir_is_laid_out_as_datasets_infers_it(
    builder: HubBuilder,
) -> None:
    folder = toy_repo(
        builder,
        "org/dirs",
        "---\nconfigs:\n- config_name: main\n  data_dir: main\n"
        "- config_name: other\n  data_dir: other\n---\n",
    )
    assert card_configs(folder) is not None
    config, files = config_files(folder, spec(config="main"))
    assert config.data_dir == "main" and len(files) == 1 and "/main/" in files[0]
    assert len(load_hub_copy(folder, spec(config="main"))) == 2
    assert repo_patterns(folder, [spec(config="main")]) == ["README.md", "main/**"]


def test_files_that_are_not_data_are_not_part_of_a_split(builder: HubBuilder) -> None:
    folder = toy_repo(
        builder,
        "org/notes",
        "---\nconfigs:\n- config_name: main\n  data_files: [{split: test, path: main/*}]\n---\n",
    )
    (folder / "main" / "notes.md").write_text("about the split")
    (folder / "main" / "test-00001.parquet.incomplete").write_bytes(b"half a download")
    _, files = config_files(folder, spec(config="main"))
    assert [Path(f).name for f in files] == ["test-00000-of-00001.parquet"]
    assert len(load_hub_copy(folder, spec(config="main"))) == 2


def test_a_missing_config_or_split_names_what_the_card_has(builder: HubBuilder) -> None:
    folder = toy_repo(
        builder,
        "org/named",
        "---\nconfigs:\n- config_name: main\n  data_files: [{split: test, path: main/*}]\n---\n",
    )
    with pytest.raises(InvalidInputError, match=r"has no config 'en' \(configs: main\)"):
        config_files(folder, spec(config="en"))
    with pytest.raises(InvalidInputError, match=r"has no split 'train' \(splits: test\)"):
        config_files(folder, spec(config="main", split="train"))


def test_fetch_selects_files_with_the_card_patterns_as_datasets_globs_them() -> None:
    listed = [
        ".gitattributes",
        "README.md",
        "en/test/a.parquet",
        "en/test/chunk-1/b.parquet",
        "en/test/notes.md",
        "en/train/c.parquet",
        "ar/test/d.parquet",
        "data/test-00000-of-00001.parquet",
        "data/x/test-1.parquet",
    ]
    assert select_files(listed, ["README.md", "en/test/**/*.parquet"]) == [
        "README.md",
        "en/test/a.parquet",
        "en/test/chunk-1/b.parquet",
    ]
    assert select_files(listed, ["README.md", "data/test-*"]) == [
        "README.md",
        "data/test-00000-of-00001.parquet",
    ]


def test_a_classlabel_missing_value_is_an_empty_label() -> None:
    features = Features({"label": ClassLabel(names=["no", "yes"])})
    dataset = Dataset.from_dict({"label": [1, 0, -1]}, features=features)
    plan = plan_samples(spec(), dataset, limit=None)
    assert plan.indices == [0, 1] and plan.skipped == {"empty label": 1}
    limited = plan_samples(spec(), dataset, limit=1)
    assert limited.indices == [0] and limited.skipped == {"empty label": 1, "past --limit": 1}
    assert limited.usable == 2  # every row is checked, whatever the limit
