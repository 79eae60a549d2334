"""Small benchmark datasets spoken by espeak-ng, in the exact schema of registry datasets.

Each builder writes a folder that ``datasets.load_dataset`` reads (an ``audiofolder``, or parquet
files as a hub dataset is published) and a ``task.yaml`` naming the registry dataset it stands
for, so the static runner treats it exactly as that dataset:

- :func:`language_fixture`: language identification from espeak voices, in AIR-Bench's
  Foundation table (path, question, choice_a..choice_d, answer_gt, task_name, dataset_name,
  uniq_id) as an audiofolder;
- :func:`gender_fixture`: speaker gender from male and female espeak voices, in Common Voice's
  columns (gender ``male_masculine`` / ``female_feminine``, age, accent, sentence, ...), its
  ``path`` the sample id;
- :func:`asr_fixture`: transcription, in AudioBench's layout (``context`` audio, ``instruction``,
  ``answer``) as parquet;
- :func:`qa_options_fixture`: spoken QA with three options in one ``choices`` column, in
  AudioBench's CN-College-Listen layout;
- :func:`open_qa_fixture`: open spoken QA in AudioBench's Public-SG-SpeechQA layout;
- :func:`write_parquet_dataset` / :func:`write_audiofolder`: any other schema.
"""

from __future__ import annotations

import io
import json
import wave
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from helpers.speech import speak

__all__ = [
    "FixtureSample",
    "asr_fixture",
    "gender_fixture",
    "language_fixture",
    "open_qa_fixture",
    "qa_options_fixture",
    "speech_bytes",
    "varied_wav",
    "write_audiofolder",
    "write_parquet_dataset",
    "write_tiny_pedants_models",
]

LANGUAGE_SENTENCES = {
    "English": ("en-us", "Good morning, the weather is lovely today."),
    "French": ("fr", "Bonjour, il fait très beau aujourd'hui."),
    "German": ("de", "Guten Morgen, das Wetter ist heute schön."),
    "Spanish": ("es", "Buenos días, hoy hace muy buen tiempo."),
}
GENDER_VOICES = {"male_masculine": "en-us+m3", "female_feminine": "en-us+f3"}
GENDER_SENTENCES = (
    "Please set an alarm for seven.",
    "The library opens at nine.",
    "I would like a cup of tea.",
)


@dataclass(frozen=True)
class FixtureSample:
    """One written sample: its audio and what the registry dataset should read from it."""

    sample_id: str
    audio: bytes
    reference: str
    text: str


def speech_bytes(text: str, folder: Path, *, voice: str = "en-us", name: str = "speech") -> bytes:
    """The WAV bytes of espeak-ng saying ``text`` with ``voice``."""
    folder.mkdir(parents=True, exist_ok=True)
    return speak(text, folder / f"{name}.wav", voice=voice).read_bytes()


def varied_wav(base: bytes, index: int) -> bytes:
    """``base`` (a WAV) with ``index + 1`` extra samples of silence: distinct bytes per index."""
    with wave.open(io.BytesIO(base), "rb") as reader:
        params = reader.getparams()
        frames = reader.readframes(reader.getnframes())
    out = io.BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setparams(params)
        writer.writeframes(frames + b"\x00" * params.sampwidth * (index + 1))
    return out.getvalue()


def _task_yaml(folder: Path, task: dict[str, Any]) -> None:
    (folder / "task.yaml").write_text(yaml.safe_dump(task, sort_keys=False), "utf-8")


def write_audiofolder(
    folder: Path, rows: Sequence[dict[str, Any]], task: dict[str, Any], *, suffix: str = ".wav"
) -> Path:
    """An audiofolder: each row's ``audio`` bytes as a file, the other keys in metadata.jsonl."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "metadata.jsonl").open("w", encoding="utf-8") as metadata:
        for index, row in enumerate(rows):
            name = f"sample_{index:05d}{suffix}"
            (folder / name).write_bytes(row["audio"])
            fields = {key: value for key, value in row.items() if key != "audio"}
            metadata.write(json.dumps({"file_name": name, **fields}) + "\n")
    _task_yaml(folder, task)
    return folder


def write_parquet_dataset(
    folder: Path,
    columns: dict[str, list[Any]],
    *,
    audio_column: str,
    task: dict[str, Any],
    split: str = "test",
    features: dict[str, Any] | None = None,
) -> Path:
    """A hub-style dataset folder: ``data/<split>-00000-of-00001.parquet`` with an Audio column.

    ``columns[audio_column]`` holds WAV bytes; ``features`` may give other columns' types.
    """
    from datasets import Audio, Dataset, Features

    data = dict(columns)
    data[audio_column] = [
        {"bytes": audio, "path": f"{index}.wav"}
        for index, audio in enumerate(columns[audio_column])
    ]
    dataset = Dataset.from_dict(data)
    kinds = dict(dataset.features)
    kinds[audio_column] = Audio()
    kinds.update(features or {})
    dataset = dataset.cast(Features(kinds))
    (folder / "data").mkdir(parents=True, exist_ok=True)
    dataset.to_parquet(str(folder / "data" / f"{split}-00000-of-00001.parquet"))
    _task_yaml(folder, task)
    return folder


def language_fixture(folder: Path) -> list[FixtureSample]:
    """Four languages spoken by espeak voices, as AIR-Bench's CoVoST2 language-ID questions."""
    languages = list(LANGUAGE_SENTENCES)
    rows, samples = [], []
    for index, (language, (voice, sentence)) in enumerate(LANGUAGE_SENTENCES.items()):
        audio = speech_bytes(sentence, folder / "_speech", voice=voice, name=f"lang{index}")
        rows.append(
            {
                "audio": audio,
                "path": f"common_voice_{voice}_{index}.wav",
                "question": "Which language is spoken in the audio?",
                **{
                    f"choice_{letter}": text for letter, text in zip("abcd", languages, strict=True)
                },
                "answer_gt": language,
                "task_name": "Spoken_Language_Identification",
                "dataset_name": "covost2",
                "uniq_id": 2000 + index,
            }
        )
        samples.append(FixtureSample(str(2000 + index), audio, "ABCD"[index], sentence))
    write_audiofolder(folder, rows, {"dataset": "covost2_language"})
    return samples


def gender_fixture(folder: Path, *, per_gender: int = 3) -> list[FixtureSample]:
    """Male and female espeak voices in Common Voice's columns (and one row with no gender)."""
    rows, samples = [], []
    for gender, voice in GENDER_VOICES.items():
        for index in range(per_gender):
            sentence = GENDER_SENTENCES[index % len(GENDER_SENTENCES)]
            audio = speech_bytes(sentence, folder / "_speech", voice=voice, name=f"{gender}{index}")
            rows.append(
                {
                    "audio": audio,
                    "client_id": f"speaker-{gender}-{index}",
                    "path": f"common_voice_en_{len(rows):05d}.mp3",
                    "sentence": sentence,
                    "up_votes": 2,
                    "down_votes": 0,
                    "age": "twenties",
                    "gender": gender,
                    "accent": "United States English",
                    "locale": "en",
                    "segment": "",
                    "variant": "",
                }
            )
            label = "male" if gender.startswith("male") else "female"
            samples.append(FixtureSample(rows[-1]["path"], audio, label, sentence))
    unlabelled = speech_bytes("No gender was given.", folder / "_speech", name="unlabelled")
    rows.append(
        {
            **rows[0],
            "audio": unlabelled,
            "gender": "",
            "client_id": "speaker-unknown",
            "path": f"common_voice_en_{len(rows):05d}.mp3",
        }
    )
    write_audiofolder(folder, rows, {"dataset": "commonvoice_gender"})
    return samples


def asr_fixture(folder: Path) -> list[FixtureSample]:
    """Two sentences in AudioBench's LibriSpeech layout (context, instruction, answer)."""
    sentences = ["The quick brown fox jumps over the lazy dog.", "Please call Stella."]
    audios = [
        speech_bytes(text, folder / "_speech", name=f"asr{index}")
        for index, text in enumerate(sentences)
    ]
    write_parquet_dataset(
        folder,
        {
            "context": audios,
            "instruction": ["Please transcribe the speech."] * len(sentences),
            "answer": sentences,
        },
        audio_column="context",
        task={"dataset": "librispeech_asr"},
    )
    return [
        FixtureSample(str(index), audio, text, text)
        for index, (audio, text) in enumerate(zip(audios, sentences, strict=True))
    ]


def qa_options_fixture(folder: Path) -> list[FixtureSample]:
    """Spoken dialogues with a question whose options are written in it (CN-College-Listen)."""
    items = [
        (
            "Man: Shall we meet at the library at noon? Woman: Sure, see you there.",
            "Where will the speakers meet?",
            "(A) At the station.\n(B) At the library.\n(C) At home.",
            "(B) At the library.",
            "B",
        ),
        (
            "Woman: I will take the train, it is faster than the bus.",
            "How will the woman travel?",
            "(A) By train.\n(B) By bus.\n(C) By car.",
            "(A) By train.",
            "A",
        ),
    ]
    audios = [
        speech_bytes(text, folder / "_speech", name=f"qa{index}")
        for index, (text, *_) in enumerate(items)
    ]
    write_parquet_dataset(
        folder,
        {
            "context": audios,
            "instruction": [question for _, question, _, _, _ in items],
            "choices": [choices for _, _, choices, _, _ in items],
            "answer": [answer for _, _, _, answer, _ in items],
        },
        audio_column="context",
        task={"dataset": "cn_college_listen"},
    )
    return [
        FixtureSample(str(index), audio, letter, text)
        for index, (audio, (text, *_, letter)) in enumerate(zip(audios, items, strict=True))
    ]


def open_qa_fixture(folder: Path) -> list[FixtureSample]:
    """An open spoken question with its reference answer (Public-SG-SpeechQA's layout)."""
    text = "The museum opens at ten in the morning and closes at six."
    audio = speech_bytes(text, folder / "_speech", name="openqa")
    write_parquet_dataset(
        folder,
        {
            "context": [audio],
            "instruction": ["When does the museum open?"],
            "answer": ["At ten in the morning."],
        },
        audio_column="context",
        task={"dataset": "public_sg_speech"},
    )
    return [FixtureSample("0", audio, "At ten in the morning.", text)]


def _overlap(reference: str, candidate: str) -> tuple[float, float, float]:
    """Word-set F1, precision and recall (the features PEDANTS computes, by the same rule)."""
    ref, cand = set(reference.split()), set(candidate.split())
    common = len(ref & cand)
    precision = common / len(ref) if ref else 0.0
    recall = common / len(cand) if cand else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return f1, precision, recall


def write_tiny_pedants_models(folder: Path) -> Path:
    """Tiny scikit-learn models in the files and feature layout ``qa_metrics.pedant`` expects.

    NOT the real PEDANTS weights (those download from GitHub): four small models trained here on
    a dozen made-up pairs, so that the loading and scoring code path runs for real. They judge a
    candidate "correct" when its words overlap the reference's.
    """
    import joblib
    import numpy as np
    from scipy.sparse import csr_matrix, hstack
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    pairs = [
        ("when does it open", "ten in the morning", "it opens at ten in the morning", "correct"),
        ("when does it open", "ten in the morning", "at ten", "correct"),
        ("who wrote it", "jane austen", "it was jane austen", "correct"),
        ("who wrote it", "jane austen", "austen wrote it", "correct"),
        ("what colour", "blue", "the sky is blue today", "correct"),
        ("where is it", "in london", "london", "correct"),
        ("when does it open", "ten in the morning", "it is closed on sundays", "incorrect"),
        ("who wrote it", "jane austen", "charles dickens", "incorrect"),
        ("what colour", "blue", "green", "incorrect"),
        ("where is it", "in london", "paris france", "incorrect"),
        ("how many", "three", "seven of them", "incorrect"),
        ("how many", "three", "three of them", "correct"),
    ]
    texts = [f"[CLS] {q} [SEP] {r} [SEP] {c} [SEP]" for q, r, c, _ in pairs]
    vectorizer = TfidfVectorizer().fit(
        texts + [f"[CLS] {q} [SEP] {r} [SEP]" for q, r, _, _ in pairs]
    )
    overlap = np.array([_overlap(r, c) for _, r, c, _ in pairs])
    f1, p, r = (csr_matrix(overlap[:, [i]]) for i in range(3))
    inputs = vectorizer.transform(texts)
    labels = [label for *_, label in pairs]
    rule = LogisticRegression().fit(
        hstack([inputs, f1, p, r]), [1 + (x == "correct") for x in labels]
    )
    type_inputs = vectorizer.transform([f"[CLS] {q} [SEP] {r} [SEP]" for q, r, _, _ in pairs])
    kinds = ["when" if q.startswith(("when", "how")) else "other" for q, *_ in pairs]
    type_model = LogisticRegression().fit(type_inputs, kinds)
    features = hstack(
        [
            f1,
            p,
            r,
            csr_matrix(rule.predict_proba(hstack([inputs, f1, p, r]))),
            csr_matrix(type_model.predict_proba(type_inputs)),
            inputs,
        ]
    )
    model = LogisticRegression(C=10.0).fit(features, labels)
    folder.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, folder / "lr_classifier.pkl")
    joblib.dump(vectorizer, folder / "tf-idf_vectorizer.pkl")
    joblib.dump(rule, folder / "rule_classifier.pkl")
    joblib.dump(type_model, folder / "type_classifier.pkl")
    return folder
