"""The static runner end to end: espeak-ng fixtures through a loopback OpenAI-compatible model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from helpers.fake_static_model import FakeStaticModel, FakeStaticServer, audio_digest
from helpers.static_fixtures import FixtureSample, write_tiny_pedants_models
from lamarena.bench.run.judge import JUDGE_PROMPT_SHA256
from lamarena.bench.run.plan import RunOptions, prepare_run
from lamarena.bench.run.runner import RunSummary, run_static
from lamarena.bench.scoring.results import SAMPLE_FIELDS, SCORE_FIELDS
from lamarena.errors import ConfigError, InvalidInputError, NotFound, UnknownTask
from lamarena.settings import Settings

from .conftest import write_models_yaml

Fixture = tuple[Path, list[FixtureSample]]

# Answers to the six gender samples (three male voices, then three female) and what they parse to.
GENDER_ANSWERS = ["male", "The speaker is male.", "female", "Female.", "I can't tell.", "A woman."]
HAND_MACRO_F1 = 100 * ((2 * 2 / (3 + 2)) + (2 * 2 / (3 + 3))) / 2
"""male: 2 of 3 found, 2 predicted -> F1 0.8; female: 2 of 3 found (one unparsed), 3 predicted
(one a male voice) -> F1 2/3; macro-F1 = 73.33 %."""


def script(fake: FakeStaticModel, samples: list[FixtureSample], answers: list[str]) -> None:
    for sample, answer in zip(samples, answers, strict=True):
        fake.answers[audio_digest(sample.audio)] = answer


async def run(
    settings: Settings, datasets: list[str], out: Path, *, models: tuple[str, ...] = ("fake",),
    **options: Any,
) -> RunSummary:  # fmt: skip
    plan = prepare_run(
        settings,
        models=list(models),
        datasets=datasets,
        options=RunOptions(out_dir=out, n_resamples=options.pop("n_resamples", 200), **options),
    )
    return await run_static(plan)


def read_rows(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]


async def test_a_fixture_through_a_loopback_model_gives_the_hand_computed_macro_f1(
    settings: Settings,
    fake_model: FakeStaticModel,
    fake_server: FakeStaticServer,
    gender_set: Fixture,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    folder, samples = gender_set
    script(fake_model, samples, GENDER_ANSWERS)
    monkeypatch.setenv("FAKE_STATIC_KEY", "sk-secret-0123456789")
    config = tmp_path / "keyed.yaml"
    config.write_text(
        write_models_yaml(tmp_path / "plain.yaml", fake_server.base_url).read_text()
        + "    api_key_env: FAKE_STATIC_KEY\n"
    )
    keyed = settings.model_copy(update={"models_config": config})
    summary = await run(keyed, [str(folder)], tmp_path / "out")

    assert fake_model.audio_requests == 18  # 6 samples x 3 prompt variants
    assert summary.counters.calls == 18
    scores = json.loads((tmp_path / "out" / "scores.json").read_text())
    assert [entry["prompt_id"] for entry in scores] == [0, 1, 2]
    for entry in scores:
        assert set(SCORE_FIELDS) <= set(entry)
        assert entry["metric"] == "macro_f1"
        assert entry["score"] == pytest.approx(HAND_MACRO_F1, abs=1e-9)
        assert entry["n"] == 6
        assert entry["n_unparsed"] == 1
        assert entry["ci_low"] <= entry["score"] <= entry["ci_high"]
    rows = read_rows(tmp_path / "out")
    assert len(rows) == 18
    assert all(set(SAMPLE_FIELDS) <= set(row) for row in rows)
    unsure = samples[4].sample_id
    first = next(row for row in rows if row["sample_id"] == unsure and row["prompt_id"] == 0)
    assert first["parsed"] is None and first["score"] == 0.0 and first["rule"] == "unparsed"
    # the sample id is Common Voice's path; the seventh row has no gender
    assert {row["sample_id"] for row in rows} == {sample.sample_id for sample in samples}
    assert unsure == "common_voice_en_00004.mp3"
    assert len(set(fake_model.prompts)) == 3
    run_json = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run_json["models"]["fake"]["resolved"]["model"] == "fake-audio"
    assert run_json["models"]["fake"]["resolved"]["max_retries"] == 0
    assert "max_retries" not in run_json["models"]["fake"]["cache_identity"]
    assert "sk-secret" not in json.dumps(run_json)
    assert run_json["models"]["fake"]["resolved"]["api_key_env"] == "FAKE_STATIC_KEY"
    assert "sk-secret" not in (tmp_path / "out" / "samples.jsonl").read_text()
    assert run_json["versions"]["whisper-normalizer"]
    assert run_json["datasets"]["commonvoice_gender"]["skipped"] == {"empty label": 1}
    baselines = json.loads((tmp_path / "out" / "baselines.json").read_text())
    assert baselines == [
        {
            "dataset": "commonvoice_gender",
            "task": "gender",
            "metric": "macro_f1",
            "score": 50.0,
            "nominal_score": 50.0,
            "n": 6,
            "n_labels": 2,
            "label_counts": {"female": 3, "male": 3},
        }
    ]


async def test_a_second_run_makes_no_model_calls(
    settings: Settings, fake_model: FakeStaticModel, gender_set: Fixture, tmp_path: Path
) -> None:
    folder, samples = gender_set
    script(fake_model, samples, GENDER_ANSWERS)
    first = await run(settings, [str(folder)], tmp_path / "out", prompts=2)
    assert fake_model.requests == 12

    again = await run(settings, [str(folder)], tmp_path / "out", prompts=2)  # same folder: resumed
    elsewhere = await run(settings, [str(folder)], tmp_path / "other", prompts=2)  # cache hits
    assert fake_model.requests == 12
    assert again.counters.resumed == 12 and again.counters.calls == 0
    assert elsewhere.counters.cached == 12 and elsewhere.counters.calls == 0
    assert all(row["cached"] for row in read_rows(tmp_path / "other"))
    assert again.scores == first.scores
    assert [e["score"] for e in elsewhere.scores] == [e["score"] for e in first.scores]


async def test_every_dataset_kind_scores_through_the_runner(
    settings: Settings,
    fake_model: FakeStaticModel,
    language_set: Fixture,
    asr_set: Fixture,
    qa_options_set: Fixture,
    tmp_path: Path,
) -> None:
    language_folder, languages = language_set
    script(fake_model, languages, ["(A) English", "B", "It is German.", "English"])
    asr_folder, transcripts = asr_set
    script(
        fake_model, transcripts, ["The quick brown fox jumps over the lazy dog.", "Call Stella."]
    )
    qa_folder, questions = qa_options_set
    script(fake_model, questions, ["B", "By bus."])
    summary = await run(
        settings, [str(language_folder), str(asr_folder), str(qa_folder)], tmp_path / "out",
        prompts=1,
    )  # fmt: skip
    by_dataset = {entry["dataset"]: entry for entry in summary.scores}
    # language: A, B, C right; D answered "English" (A): A has F1 2/3, B and C 1, D 0
    assert by_dataset["covost2_language"]["score"] == pytest.approx(100 * (2 / 3 + 1 + 1) / 4)
    assert by_dataset["librispeech_asr"]["metric"] == "wer"
    assert by_dataset["librispeech_asr"]["score"] == pytest.approx(1 / 12)  # "please" deleted
    # qa: B right; "By bus." is B where A was right -> B: F1 2/3, A: 0
    assert by_dataset["cn_college_listen"]["score"] == pytest.approx(100 * (2 / 3) / 2)
    rows = read_rows(tmp_path / "out")
    options_row = next(row for row in rows if row["dataset"] == "cn_college_listen")
    assert options_row["n_options"] == 3
    prompt = next(text for text in fake_model.prompts if "Where will the speakers meet?" in text)
    assert "A. At the station.\nB. At the library.\nC. At home." in prompt
    assert "(A)" not in prompt  # the options were taken out of the question


async def test_pedants_is_reported_unavailable_without_its_model_files(
    settings: Settings, fake_model: FakeStaticModel, open_qa_set: Fixture, tmp_path: Path
) -> None:
    folder, samples = open_qa_set
    script(fake_model, samples, ["It opens at ten."])
    plan = prepare_run(
        settings, models=["fake"], datasets=[str(folder)], options=RunOptions(tmp_path / "out")
    )
    assert plan.pedants_unavailable is not None
    assert "lr_classifier.pkl" in plan.pedants_unavailable
    assert "LAMARENA_PEDANTS_MODEL_DIR" in plan.pedants_unavailable
    summary = await run_static(plan)
    assert [entry["metric"] for entry in summary.scores] == ["pedants", "cfmatch"] * 3
    assert all(entry["score"] is None for entry in summary.scores)
    assert all("unavailable" in entry["unavailable"] for entry in summary.scores)
    assert summary.pedants_unavailable == plan.pedants_unavailable


async def test_pedants_scores_with_model_files_in_the_configured_folder(
    settings: Settings, fake_model: FakeStaticModel, open_qa_set: Fixture, tmp_path: Path
) -> None:
    folder, samples = open_qa_set
    script(fake_model, samples, ["Ten in the morning, I believe."])
    models = write_tiny_pedants_models(tmp_path / "pedants")
    configured = settings.model_copy(update={"pedants_model_dir": models})
    summary = await run(configured, [str(folder)], tmp_path / "out", prompts=1)
    assert summary.pedants_unavailable is None
    from lamarena.bench.scoring.pedants import PedantsScorer, load_pedants

    scorer = load_pedants(models)
    assert isinstance(scorer, PedantsScorer)
    probability = scorer.confidence(
        "At ten in the morning.", "Ten in the morning, I believe.", "When does the museum open?"
    )
    assert 0.5 < probability < 1.0  # judged correct, with the classifier's confidence
    assert [(e["metric"], e["score"]) for e in summary.scores] == [
        ("pedants", 100.0),
        ("cfmatch", pytest.approx(100 * probability)),
    ]
    run_json = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run_json["pedants"] == {"available": True, "model_dir": str(models), "reason": None}


async def test_the_llm_judge_is_a_separate_metric_with_its_model_and_prompt_in_every_row(
    settings: Settings, fake_model: FakeStaticModel, open_qa_set: Fixture, tmp_path: Path
) -> None:
    folder, samples = open_qa_set
    script(fake_model, samples, ["At ten."])
    fake_model.judge_reply = "Rating: 4\nMostly right."
    judged = settings.model_copy(update={"judge_model": "fake"})
    summary = await run(judged, [str(folder)], tmp_path / "out", prompts=2)
    assert fake_model.text_requests == 2
    assert [(e["metric"], e["score"]) for e in summary.scores] == [
        ("pedants", None), ("cfmatch", None), ("llm_judge", 80.0),
        ("pedants", None), ("cfmatch", None), ("llm_judge", 80.0),
    ]  # fmt: skip
    for row in read_rows(tmp_path / "out"):
        assert row["judge_model"] == "fake"
        assert row["judge_prompt_sha256"] == JUDGE_PROMPT_SHA256
        assert row["judge_rating"] == 4
    await run(judged, [str(folder)], tmp_path / "again", prompts=2)
    assert fake_model.text_requests == 2  # the verdicts come from the cache


async def test_an_unparseable_verdict_is_not_a_score(
    settings: Settings, fake_model: FakeStaticModel, open_qa_set: Fixture, tmp_path: Path
) -> None:
    folder, _ = open_qa_set
    fake_model.judge_reply = "I would say it is quite good, maybe a four."
    judged = settings.model_copy(update={"judge_model": "fake"})
    summary = await run(judged, [str(folder)], tmp_path / "out", prompts=1)
    judge_entry = next(e for e in summary.scores if e["metric"] == "llm_judge")
    assert judge_entry["score"] is None and judge_entry["n_unparsed"] == 1


async def test_a_sampling_judge_is_refused(
    settings: Settings, fake_server: FakeStaticServer, open_qa_set: Fixture, tmp_path: Path
) -> None:
    config = tmp_path / "sampling.yaml"
    config.write_text(
        "models:\n  - {name: fake, kind: openai, model: m, base_url: "
        f"'{fake_server.base_url}', temperature: 0.7}}\n"
    )
    judged = settings.model_copy(update={"judge_model": "fake", "models_config": config})
    with pytest.raises(ConfigError, match="temperature: 0"):
        await run(judged, [str(open_qa_set[0])], tmp_path / "out")


async def test_failed_calls_are_rows_with_errors_and_are_retried_next_time(
    settings: Settings, fake_model: FakeStaticModel, gender_set: Fixture, tmp_path: Path
) -> None:
    folder, samples = gender_set
    script(fake_model, samples, GENDER_ANSWERS)
    broken = write_models_yaml(tmp_path / "broken.yaml", "http://127.0.0.1:9/v1")
    failing = settings.model_copy(update={"models_config": broken})
    summary = await run(failing, [str(folder)], tmp_path / "out", prompts=1)
    assert summary.counters.errors == 6
    assert summary.scores[0]["n_errors"] == 6 and summary.scores[0]["score"] == 0.0
    assert all("cannot reach" in row["error"] for row in read_rows(tmp_path / "out"))

    repaired = await run(settings, [str(folder)], tmp_path / "out", prompts=1)
    assert repaired.counters.calls == 6 and fake_model.requests == 6
    assert repaired.scores[0]["n_errors"] == 0
    assert repaired.scores[0]["score"] == pytest.approx(HAND_MACRO_F1)


async def test_bad_input_writes_nothing(
    settings: Settings, gender_set: Fixture, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    with pytest.raises(UnknownTask, match="Did you mean 'commonvoice_gender'"):
        await run(settings, [str(gender_set[0]), "commonvoice_gendr"], out)
    with pytest.raises(ConfigError, match="no model named 'nobody'"):
        await run(settings, [str(gender_set[0])], out, models=("nobody",))
    with pytest.raises(NotFound, match="no network access to the Hugging Face hub") as caught:
        await run(settings, ["mustard"], out)
    assert "SALT-NLP/Mustard_sarcasm" in caught.value.message
    assert "dataset: mustard" in caught.value.message
    assert not out.exists()


async def test_the_progress_bar_shows_rate_cached_and_eta(
    settings: Settings, fake_model: FakeStaticModel, gender_set: Fixture, tmp_path: Path
) -> None:
    import io

    from rich.console import Console

    from lamarena.bench.run.progress import RichProgress

    folder, samples = gender_set
    script(fake_model, samples, GENDER_ANSWERS)
    await run(settings, [str(folder)], tmp_path / "warm", prompts=1)  # fill the cache
    screen = io.StringIO()
    plan = prepare_run(
        settings,
        models=["fake"],
        datasets=[str(folder)],
        options=RunOptions(out_dir=tmp_path / "out", prompts=2, n_resamples=0),
    )
    await run_static(
        plan, progress=RichProgress(console=Console(file=screen, width=160, force_terminal=True))
    )
    shown = screen.getvalue()
    assert "12/12" in shown and "samples/s" in shown and "6 cached" in shown and "ETA" in shown


async def test_a_missing_api_key_fails_before_anything_runs(
    settings: Settings, fake_server: FakeStaticServer, gender_set: Fixture, tmp_path: Path
) -> None:
    config = tmp_path / "keyed.yaml"
    config.write_text(
        write_models_yaml(tmp_path / "plain.yaml", fake_server.base_url).read_text()
        + "    api_key_env: LAMARENA_TEST_UNSET_KEY\n"
    )
    keyed = settings.model_copy(update={"models_config": config})
    with pytest.raises(ConfigError, match="needs the environment variable LAMARENA_TEST_UNSET_KEY"):
        await run(keyed, [str(gender_set[0])], tmp_path / "out")
    assert not (tmp_path / "out").exists()


async def test_an_error_inside_the_run_is_the_error_itself_not_a_task_group(
    settings: Settings, fake_model: FakeStaticModel, base_wav_folder: Path, tmp_path: Path
) -> None:
    from helpers.static_fixtures import write_audiofolder

    audio = (base_wav_folder / "speech.wav").read_bytes()
    rows = [
        {"audio": audio, "gender": "male_masculine", "path": "a.mp3"},
        {"audio": audio, "gender": "female", "path": "b.mp3"},
    ]
    folder = write_audiofolder(tmp_path / "set", rows, {"dataset": "commonvoice_gender"})
    plan = prepare_run(
        settings, models=["fake"], datasets=[str(folder)], options=RunOptions(tmp_path / "out")
    )
    (folder / "sample_00001.wav").unlink()  # the file goes away after the plan was made
    with pytest.raises(InvalidInputError, match="row 1 has no readable audio"):
        await run_static(plan)
    log = tmp_path / "out" / "samples.jsonl"
    written = read_rows(tmp_path / "out") if log.exists() else []
    assert {row["sample_id"] for row in written} <= {"a.mp3"}  # at most what finished is kept
    assert not (tmp_path / "out" / "scores.json").exists()
