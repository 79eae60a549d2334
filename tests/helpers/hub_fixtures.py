"""A small copy of the hub for every registry dataset, laid out like its real repository.

:func:`build_hub` writes ``ROOT/OWNER/NAME/`` for each of the 20 registry entries exactly as
``hf download --repo-type dataset OWNER/NAME --local-dir ROOT/OWNER/NAME`` leaves a repository:
a ``README.md`` whose YAML header lists ``dataset_info`` and ``configs`` (each split's
``data_files`` pattern), and parquet files written by ``datasets`` under the repository's own
paths, with the real config and split names, column names and feature types (``Audio`` with the
published sampling rate, ``ClassLabel`` names, ``int64`` ids, ``bool`` labels, list columns),
the real label spellings (including the empty and odd values a declaration must leave out), the
multi-task table with its filter column, and the splits and configs a run must not read. The
audio is espeak-ng speech (MP3 where the real set is MP3).

Each schema's source, as confirmed for the registry (see its ``source`` notes):

- ``SALT-NLP/URFunny_humor``, ``Mustard_sarcasm``, ``Callhome_relationships``,
  ``speech_fairness``: the scripts that pushed them (SALT-NLP/DiVA-Eval ``data_processing/``);
- ``Zahra99/IEMOCAP_Audio``: its dataset card (``session1``..``session5``, ``ClassLabel``
  ang/hap/neu/sad, 16 kHz);
- ``DavidCombei/Wav2Vec_MELD_Audio`` and ``qmeeus/slurp``: DiVA-Eval's loaders (integer labels);
- ``fixie-ai/common_voice_17_0``: Common Voice's own schema, one config per language, 48 kHz MP3;
- ``lmms-lab/AIR_Bench``: lmms-eval's air_bench tasks and AIR-Bench's ``Foundation_meta.json``
  (config Foundation, splits speech/sound/music; Chat beside it);
- ``AudioLLMs/*``: AudioBench's loaders (``context`` audio, ``instruction``, ``answer``,
  ``choices``, ``speech_instruction``).

Each entry also scripts what the loopback model answers for each of its rows, so that a test can
compare a run's score with one computed by hand.
"""

from __future__ import annotations

import io
import wave
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from helpers.fake_static_model import audio_digest
from helpers.static_fixtures import speech_bytes

__all__ = ["EntryFixture", "HubBuilder", "build_hub", "task_of_prompt"]


@dataclass
class EntryFixture:
    """What one registry entry's copy holds.

    Attributes:
        name: the registry entry.
        repo: its hub repository (``OWNER/NAME``).
        references: ``(sample_id, reference)`` the registry must read, in order.
        answers: audio digest -> what the loopback model says for this entry's task.
        questions: sample id -> the question the entry reads (open sets).
    """

    name: str
    repo: str
    references: list[tuple[str, str]] = field(default_factory=list)
    answers: dict[str, str] = field(default_factory=dict)
    questions: dict[str, str] = field(default_factory=dict)


def task_of_prompt(prompt: str, templates: dict[str, list[str]]) -> str | None:
    """The task whose prompt template ``prompt`` was rendered from (by its fixed opening)."""
    for task, variants in templates.items():
        for template in variants:
            opening = template.split("{", 1)[0]
            if len(opening) >= 12 and prompt.startswith(opening):
                return task
    return None


def _scaled_wav(base: bytes, index: int) -> tuple[np.ndarray, int]:
    with wave.open(io.BytesIO(base), "rb") as reader:
        rate = reader.getframerate()
        frames = np.frombuffer(reader.readframes(reader.getnframes()), dtype=np.int16)
    scaled = (frames.astype(np.float64) * (1.0 - 0.004 * (index % 100))).astype(np.int16)
    padded = np.concatenate([scaled, np.zeros(index + 1, dtype=np.int16)])
    return padded, rate


def _wav_bytes(samples: np.ndarray, rate: int) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(samples.tobytes())
    return out.getvalue()


def _mp3_bytes(samples: np.ndarray, rate: int, out_rate: int) -> bytes:
    import av
    import soxr

    audio = soxr.resample(samples.astype(np.float32) / 32768.0, rate, out_rate)
    out = io.BytesIO()
    with av.open(out, "w", format="mp3") as container:
        stream = container.add_stream("mp3", rate=out_rate)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(
            audio.astype(np.float32).reshape(1, -1), format="flt", layout="mono"
        )
        frame.sample_rate = out_rate
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return out.getvalue()


class HubBuilder:
    """Writes repositories under ``root``; every clip it makes is distinct espeak-ng speech."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._base = speech_bytes("Please listen to this short recording.", root / ".speech")
        self._count = 0

    def clip(self, *, mp3_rate: int | None = None) -> bytes:
        """A new distinct clip: a WAV, or an MP3 at ``mp3_rate``."""
        self._count += 1
        samples, rate = _scaled_wav(self._base, self._count)
        if mp3_rate is not None:
            return _mp3_bytes(samples, rate, mp3_rate)
        return _wav_bytes(samples, rate)

    def repo(
        self,
        repo_id: str,
        configs: dict[str, dict[str, tuple[str, str, dict[str, list[Any]]]]],
        features: dict[str, Any],
        *,
        audio_column: str,
        sampling_rate: int | None,
        audio_suffix: str = ".wav",
    ) -> Path:
        """Write a repository: config -> split -> (pattern, file, columns), and its card."""
        from datasets import Audio, Dataset, Features

        folder = self.root / repo_id
        kinds = Features({**features, audio_column: Audio(sampling_rate=sampling_rate)})
        card: dict[str, Any] = {"dataset_info": [], "configs": []}
        for config, splits in configs.items():
            card["dataset_info"].append({"config_name": config, "features": kinds._to_yaml_list()})
            data_files = []
            for split, (pattern, path, columns) in splits.items():
                data = dict(columns)
                data[audio_column] = [
                    {"bytes": audio, "path": f"{split}_{index:05d}{audio_suffix}"}
                    for index, audio in enumerate(columns[audio_column])
                ]
                dataset = Dataset.from_dict(data, features=kinds)
                (folder / path).parent.mkdir(parents=True, exist_ok=True)
                dataset.to_parquet(str(folder / path))
                data_files.append({"split": split, "path": pattern})
            card["configs"].append({"config_name": config, "data_files": data_files})
        header = yaml.safe_dump(card, sort_keys=False, allow_unicode=True)
        (folder / "README.md").write_text(f"---\n{header}---\n\n# {repo_id}\n", "utf-8")
        return folder


def _default(split: str, columns: dict[str, list[Any]]) -> tuple[str, str, dict[str, list[Any]]]:
    """``push_to_hub``'s layout: ``data/{split}-00000-of-00001.parquet``."""
    return f"data/{split}-*", f"data/{split}-00000-of-00001.parquet", columns


def _string(*names: str) -> dict[str, Any]:
    from datasets import Value

    return {name: Value("string") for name in names}


def _urfunny(hub: HubBuilder) -> list[EntryFixture]:
    from datasets import Value

    entry = EntryFixture("urfunny", "SALT-NLP/URFunny_humor")
    rows = [
        (101, "humor", "Yes, it is funny."),
        (102, "not_humor", "No."),
        (103, "humor", "No, not really."),
        (104, "not_humor", "Yes."),
    ]
    test: dict[str, list[Any]] = {"audio": [], "label": [], "punchline": [], "context": []}
    test["file_id"] = []
    for file_id, label, answer in rows:
        audio = hub.clip()
        test["audio"].append(audio)
        test["label"].append(label)
        test["punchline"].append("And that is why I never fly.")
        test["context"].append("I took a plane once. The food was cold")
        test["file_id"].append(file_id)
        entry.references.append((str(file_id), "yes" if label == "humor" else "no"))
        entry.answers[audio_digest(audio)] = answer

    def other(file_id: int) -> dict[str, list[Any]]:
        return {
            "audio": [hub.clip()],
            "label": ["humor"],
            "punchline": ["x"],
            "context": ["y"],
            "file_id": [file_id],
        }

    features = {**_string("label", "punchline", "context"), "file_id": Value("int64")}
    hub.repo(
        entry.repo,
        {
            "default": {
                "train": _default("train", other(1)),
                "dev": _default("dev", other(2)),
                "test": _default("test", test),
            }
        },
        features,
        audio_column="audio",
        sampling_rate=None,
    )
    return [entry]


def _mustard(hub: HubBuilder) -> list[EntryFixture]:
    from datasets import Sequence, Value

    entry = EntryFixture("mustard", "SALT-NLP/Mustard_sarcasm")
    rows = [(True, "Yes, that is sarcastic."), (False, "Yes"), (True, "No")]
    columns: dict[str, list[Any]] = {
        "audio": [],
        "utterance": [],
        "speaker": [],
        "context": [],
        "context_speakers": [],
        "show": [],
        "sarcasm": [],
    }
    for index, (sarcasm, answer) in enumerate(rows):
        audio = hub.clip()
        columns["audio"].append(audio)
        columns["utterance"].append("Oh, great. Another meeting.")
        columns["speaker"].append("CHANDLER")
        columns["context"].append(["We have a meeting at nine.", "Every day this week."])
        columns["context_speakers"].append(["ROSS", "ROSS"])
        columns["show"].append("FRIENDS")
        columns["sarcasm"].append(sarcasm)
        entry.references.append((str(index), "yes" if sarcasm else "no"))
        entry.answers[audio_digest(audio)] = answer
    features = {
        **_string("utterance", "speaker", "show"),
        "context": Sequence(Value("string")),
        "context_speakers": Sequence(Value("string")),
        "sarcasm": Value("bool"),
    }
    hub.repo(
        entry.repo,
        {"default": {"train": _default("train", columns)}},
        features,
        audio_column="audio",
        sampling_rate=None,
    )
    return [entry]


def _slurp(hub: HubBuilder) -> list[EntryFixture]:
    from datasets import Value

    entry = EntryFixture("slurp_intent", "qmeeus/slurp")
    # intent ids from DiVA-Eval's alphabetical list: 98 weather_query, 3 alarm_set,
    # 66 play_music, 10 calendar_set; 26 (factoid) is one of the 97 intents left out
    rows = [
        (98, "weather", "weather"),
        (3, "alarm", "It is an alarm."),
        (66, "music", "weather"),
        (10, "calendar", "calendar"),
        (26, None, "weather"),
    ]
    columns: dict[str, list[Any]] = {
        "audio": [],
        "slurp_id": [],
        "sentence": [],
        "annotation": [],
        "intent": [],
    }
    for index, (intent, label, answer) in enumerate(rows):
        audio = hub.clip()
        columns["audio"].append(audio)
        columns["slurp_id"].append(13000 + index // 2)
        columns["sentence"].append("wake me up at seven")
        columns["annotation"].append("wake me up at [time : seven]")
        columns["intent"].append(intent)
        if label is not None:
            entry.references.append((str(index), label))
            entry.answers[audio_digest(audio)] = answer
    train = {key: values[:1] for key, values in columns.items()}
    train["audio"] = [hub.clip()]
    features = {
        "slurp_id": Value("int64"),
        **_string("sentence", "annotation"),
        "intent": Value("int64"),
    }
    hub.repo(
        entry.repo,
        {"default": {"train": _default("train", train), "test": _default("test", columns)}},
        features,
        audio_column="audio",
        sampling_rate=None,
    )
    return [entry]


def _iemocap(hub: HubBuilder) -> list[EntryFixture]:
    from datasets import ClassLabel

    entry = EntryFixture("iemocap", "Zahra99/IEMOCAP_Audio")
    names = ["ang", "hap", "neu", "sad"]
    evaluated = [(0, "angry"), (1, "happy"), (2, "sad"), (3, "sad"), (3, "Neutral.")]
    splits = {}
    for session in range(1, 6):
        columns: dict[str, list[Any]] = {"audio": [], "label": []}
        rows = evaluated if session == 2 else [(session % 4, "happy")]
        for index, (label, answer) in enumerate(rows):
            audio = hub.clip()
            columns["audio"].append(audio)
            columns["label"].append(label)
            if session == 2:
                wanted = {"ang": "angry", "hap": "happy", "neu": "neutral", "sad": "sad"}
                entry.references.append((str(index), wanted[names[label]]))
                entry.answers[audio_digest(audio)] = answer
        splits[f"session{session}"] = _default(f"session{session}", columns)
    hub.repo(
        entry.repo,
        {"default": splits},
        {"label": ClassLabel(names=names)},
        audio_column="audio",
        sampling_rate=16000,
    )
    return [entry]


def _meld(hub: HubBuilder) -> list[EntryFixture]:
    from datasets import Value

    entry = EntryFixture("meld", "DavidCombei/Wav2Vec_MELD_Audio")
    emotions = ["anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise"]
    rows = [(0, "anger"), (3, "joy"), (6, "I'm surprised."), (4, "joy")]
    test: dict[str, list[Any]] = {"audio": [], "label": []}
    for index, (label, answer) in enumerate(rows):
        audio = hub.clip()
        test["audio"].append(audio)
        test["label"].append(label)
        entry.references.append((str(index), emotions[label]))
        entry.answers[audio_digest(audio)] = answer
    splits = {
        "train": _default("train", {"audio": [hub.clip()], "label": [5]}),
        "validation": _default("validation", {"audio": [hub.clip()], "label": [1]}),
        "test": _default("test", test),
    }
    hub.repo(
        entry.repo,
        {"default": splits},
        {"label": Value("int64")},
        audio_column="audio",
        sampling_rate=16000,
    )
    return [entry]


CALLHOME_LABELS = ["RELATIVE", "FRIEND"] * 5
"""``Speaker A - Primary`` of the 10 calls in order (``en_4001`` .. ``en_4010``)."""


def _callhome(hub: HubBuilder) -> list[EntryFixture]:
    entry = EntryFixture("callhome", "SALT-NLP/Callhome_relationships")
    columns: dict[str, list[Any]] = {
        "audio": [],
        "Filename": [],
        "Speaker A - Primary": [],
        "Speaker B - Primary": [],
        "Speaker A - Secondary": [],
        "Speaker B - Secondary": [],
        "Speaker A - NOTES": [],
        "Speaker B - NOTES": [],
    }
    for index, label in enumerate(CALLHOME_LABELS):
        audio = hub.clip(mp3_rate=8000)
        name = f"en_{4001 + index}.txt"
        columns["audio"].append(audio)
        columns["Filename"].append(name)
        columns["Speaker A - Primary"].append(label)
        columns["Speaker B - Primary"].append(label)
        columns["Speaker A - Secondary"].append("SISTER" if label == "RELATIVE" else "FRIEND")
        columns["Speaker B - Secondary"].append(None)
        columns["Speaker A - NOTES"].append("SIBLING/SISTER" if label == "RELATIVE" else None)
        columns["Speaker B - NOTES"].append(None)
        # the reference of the rows the holdout keeps is checked by the test
        entry.references.append((name, "family" if label == "RELATIVE" else "friend"))
        entry.answers[audio_digest(audio)] = "They are family."
    hub.repo(
        entry.repo,
        {"default": {"train": _default("train", columns)}},
        _string(*(name for name in columns if name != "audio")),
        audio_column="audio",
        sampling_rate=None,
        audio_suffix=".mp3",
    )
    return [entry]


# Common Voice rows: (gender, age, accent), and what the model says for each task.
COMMON_VOICE_ROWS: list[tuple[str | None, str | None, str | None, dict[str, str]]] = [
    ("male_masculine", "twenties", "United States English",
     {"gender": "male", "age": "twenties", "accent": "american"}),
    ("female_feminine", "fourties", "England English",
     {"gender": "female", "age": "forties", "accent": "British."}),
    ("male_masculine", "teens", "India and South Asia (India, Pakistan, Sri Lanka)",
     {"gender": "female", "age": "twenties", "accent": "indian"}),
    ("female_feminine", "eighties", "United States English|England English",
     {"gender": "female", "age": "seventies", "accent": "american"}),
    ("", "", "", {"gender": "male", "age": "teens", "accent": "american"}),
    (None, "seventies", "Canadian English",
     {"gender": "male", "age": "seventies", "accent": "american"}),
    ("non-binary", "thirties", "Scottish English",
     {"gender": "male", "age": "thirties", "accent": "british"}),
    ("female_feminine", "twenties", "Australian English",
     {"gender": "I think a man.", "age": "twenties", "accent": "australian"}),
]  # fmt: skip
"""Common Voice's test rows: empty and null values, a value outside the label set, and an
accent entry naming two accents (``|``), as the real column holds them."""


def _common_voice(hub: HubBuilder) -> list[EntryFixture]:
    from datasets import Value

    entries = {
        task: EntryFixture(f"commonvoice_{task}", "fixie-ai/common_voice_17_0")
        for task in ("gender", "age", "accent")
    }
    labels = {
        "gender": {"male_masculine": "male", "female_feminine": "female"},
        "age": {"teens": "teens", "twenties": "twenties", "thirties": "thirties",
                "fourties": "forties", "seventies": "seventies"},
        "accent": {"United States English": "american", "England English": "british",
                   "India and South Asia (India, Pakistan, Sri Lanka)": "indian",
                   "Canadian English": "canadian", "Australian English": "australian"},
    }  # fmt: skip

    def table(rows: list[tuple[str | None, str | None, str | None]], lang: str, split: str):
        columns: dict[str, list[Any]] = {
            name: []
            for name in (
                "client_id", "path", "audio", "sentence", "up_votes", "down_votes", "age",
                "gender", "accent", "locale", "segment", "variant",
            )
        }  # fmt: skip
        for index, (gender, age, accent) in enumerate(rows):
            columns["client_id"].append(f"{index:064x}")
            columns["path"].append(f"{lang}_{split}_0/common_voice_{lang}_{40000 + index}.mp3")
            columns["audio"].append(hub.clip(mp3_rate=48000))
            columns["sentence"].append("The library opens at nine.")
            columns["up_votes"].append(2)
            columns["down_votes"].append(0)
            columns["age"].append(age)
            columns["gender"].append(gender)
            columns["accent"].append(accent)
            columns["locale"].append(lang)
            columns["segment"].append("")
            columns["variant"].append("")
        return columns

    test = table([(g, a, c) for g, a, c, _ in COMMON_VOICE_ROWS], "en", "test")
    for index, (*values, answers) in enumerate(COMMON_VOICE_ROWS):
        digest = audio_digest(test["audio"][index])
        for (task, entry), value in zip(entries.items(), values, strict=True):
            if value in labels[task]:
                entry.references.append((test["path"][index], labels[task][value]))
                entry.answers[digest] = answers[task]

    def layout(lang: str, split: str, columns: dict[str, list[Any]], *, chunked: bool = True):
        # fixie-ai writes newer languages in chunk-range folders; a file right in the split's
        # folder must match the same pattern (fsspec glob: ** is any depth, none included)
        chunk = f"chunk-range-000000000-{len(columns['path']):09d}/" if chunked else ""
        return (
            f"{lang}/{split}/**/*.parquet",
            f"{lang}/{split}/{chunk}{split}-00000-of-00001.parquet",
            columns,
        )

    distractor = [("female_feminine", "thirties", "")]
    features = {
        **_string("client_id", "path", "sentence"),
        "up_votes": Value("int64"),
        "down_votes": Value("int64"),
        **_string("age", "gender", "accent", "locale", "segment", "variant"),
    }
    hub.repo(
        "fixie-ai/common_voice_17_0",
        {
            "ar": {
                "train": layout("ar", "train", table(distractor, "ar", "train")),
                "test": layout("ar", "test", table(distractor, "ar", "test")),
            },
            "en": {
                "train": layout("en", "train", table(distractor, "en", "train")),
                "validation": layout("en", "validation", table(distractor, "en", "validation")),
                "test": layout("en", "test", test, chunked=False),
            },
        },
        features,
        audio_column="audio",
        sampling_rate=48000,
        audio_suffix=".mp3",
    )
    return list(entries.values())


FAIRSPEECH_ROWS: list[tuple[str | None, str | None, str, str]] = [
    ("female", "18 - 22", "female", "18-22"),
    ("male", "23 - 30", "male", "23-30"),
    ("female", "31 - 45", "male", "46-65"),
    (None, "46 - 65", "male", "46-65"),
    ("male", None, "male", "18-22"),
]
"""FairSpeech rows: gender, age (as published, missing values null), and the model's answers."""


def _fairspeech(hub: HubBuilder) -> list[EntryFixture]:
    gender = EntryFixture("fairspeech_gender", "SALT-NLP/speech_fairness")
    age = EntryFixture("fairspeech_age", "SALT-NLP/speech_fairness")
    columns: dict[str, list[Any]] = {
        name: []
        for name in (
            "audio", "transcription", "age", "gender", "first_language",
            "socioeconomic_bkgd", "ethnicity",
        )
    }  # fmt: skip
    for index, (sex, group, say_sex, say_age) in enumerate(FAIRSPEECH_ROWS):
        audio = hub.clip()
        columns["audio"].append(audio)
        columns["transcription"].append("play some jazz music")
        columns["age"].append(group)
        columns["gender"].append(sex)
        columns["first_language"].append("English")
        columns["socioeconomic_bkgd"].append("Medium")
        columns["ethnicity"].append(None)
        digest = audio_digest(audio)
        if sex is not None:
            gender.references.append((str(index), sex))
            gender.answers[digest] = say_sex
        if group is not None:
            age.references.append((str(index), group.replace(" ", "")))
            age.answers[digest] = say_age
    hub.repo(
        gender.repo,
        {"default": {"train": _default("train", columns)}},
        _string(*(name for name in columns if name != "audio")),
        audio_column="audio",
        sampling_rate=None,
    )
    return [gender, age]


# AIR-Bench Foundation rows: (uniq_id, task_name, dataset_name, question, choices, answer text,
# what the model says); choice_c/choice_d null where a question has fewer options.
AIR_BENCH_ROWS: list[tuple[int, str, str, str, list[str | None], str, str]] = [
    (1001, "Speech_Grounding", "librispeech", "When is the word 'river' said?",
     ["[0.1, 0.4]", "[0.5, 0.9]", "[1.0, 1.2]", "[1.3, 1.6]"], "[1.0, 1.2]", "C"),
    (1002, "Speech_Grounding", "librispeech", "When is the word 'stone' said?",
     ["[1.0, 1.3]", "[1.4, 1.8]", "[0.2, 0.5]", "[0.6, 0.9]"], "[1.4, 1.8]", "A"),
    (2001, "Spoken_Language_Identification", "covost2", "What language is spoken?",
     ["English", "French", "German", "Spanish"], "French", "The answer is B."),
    (2002, "Spoken_Language_Identification", "covost2", "What language is spoken?",
     ["English", "Welsh", None, None], "English", "A"),
    (3001, "Speech_Entity_Reconition", "slurp", "Which place is named?",
     ["Paris", "the office", "home", "the gym"], "Paris", "A"),
    (3002, "Speech_Entity_Reconition", "slurp", "Which time is named?",
     ["noon", "seven", "midnight", "eight am"], "eight am", "I cannot tell."),
    (4001, "Speaker_Gender_Recognition", "common_voice_13_en", "What is the speaker's gender?",
     ["male", "female", None, None], "male", "A"),
]  # fmt: skip


def _air_bench(hub: HubBuilder) -> list[EntryFixture]:
    from datasets import Value

    entries = {
        "Speech_Grounding": EntryFixture("librispeech_grounding", "lmms-lab/AIR_Bench"),
        "Spoken_Language_Identification": EntryFixture("covost2_language", "lmms-lab/AIR_Bench"),
        "Speech_Entity_Reconition": EntryFixture("slurp_entity", "lmms-lab/AIR_Bench"),
    }
    names = ("path", "question", "choice_a", "choice_b", "choice_c", "choice_d", "answer_gt")
    speech: dict[str, list[Any]] = {name: [] for name in names}
    speech.update({"task_name": [], "dataset_name": [], "uniq_id": [], "audio": []})
    for uniq_id, task, source, question, choices, answer, says in AIR_BENCH_ROWS:
        audio = hub.clip()
        speech["path"].append(f"{uniq_id}.wav")
        speech["question"].append(question)
        for letter, choice in zip("abcd", choices, strict=True):
            speech[f"choice_{letter}"].append(choice)
        speech["answer_gt"].append(answer)
        speech["task_name"].append(task)
        speech["dataset_name"].append(source)
        speech["uniq_id"].append(uniq_id)
        speech["audio"].append(audio)
        if task in entries:
            letter = "ABCD"[choices.index(answer)]
            entries[task].references.append((str(uniq_id), letter))
            entries[task].answers[audio_digest(audio)] = says

    def other(task: str) -> dict[str, list[Any]]:
        return {
            "path": ["x.wav"], "question": ["What is heard?"], "choice_a": ["a dog"],
            "choice_b": ["a car"], "choice_c": [None], "choice_d": [None],
            "answer_gt": ["a dog"], "task_name": [task], "dataset_name": ["VocalSound"],
            "uniq_id": [9000 + len(task)], "audio": [hub.clip()],
        }  # fmt: skip

    def part(config: str, split: str, columns: dict[str, list[Any]]):
        return f"{config}/{split}-*", f"{config}/{split}-00000-of-00001.parquet", columns

    hub.repo(
        "lmms-lab/AIR_Bench",
        {
            "Chat": {"speech": part("Chat", "speech", other("speech_QA"))},
            "Foundation": {
                "speech": part("Foundation", "speech", speech),
                "sound": part("Foundation", "sound", other("Acoustic_Scene_Classification")),
                "music": part("Foundation", "music", other("Music_Genre_Recognition")),
            },
        },
        {
            **_string(*names, "task_name", "dataset_name"),
            "uniq_id": Value("int64"),
        },
        audio_column="audio",
        sampling_rate=16000,
    )
    return list(entries.values())


CN_COLLEGE_ROWS = [
    ("What does the woman want to do?",
     "(A) Find a place.\n(B) Buy a map.\n(C) Get an address.", "(A) Find a place.", "A", "A"),
    ("What will the man do next?",
     "(A) Call a taxi.\n(B) Give her a ride\n(C) Stay at home.", "(B) Give her a ride", "B",
     "(B) Give her a ride"),
    ("Who is the speaker?",
     "(A) A student.\n(B) A teacher.\n(C) A company director.", "(C) A company director.", "C",
     "B"),
]  # fmt: skip
"""CN-College-Listen rows as AudioBench's logs show them: (instruction, choices, answer, the
answer's letter, what the model says)."""


def _cn_college(hub: HubBuilder) -> list[EntryFixture]:
    entry = EntryFixture("cn_college_listen", "AudioLLMs/cn_college_listen_mcq_test")
    columns: dict[str, list[Any]] = {"context": [], "instruction": [], "choices": [], "answer": []}
    for index, (question, choices, answer, letter, says) in enumerate(CN_COLLEGE_ROWS):
        audio = hub.clip()
        columns["context"].append(audio)
        columns["instruction"].append(question)
        columns["choices"].append(choices)
        columns["answer"].append(answer)
        entry.references.append((str(index), letter))
        entry.answers[audio_digest(audio)] = says
    hub.repo(
        entry.repo,
        {"default": {"test": _default("test", columns)}},
        _string("instruction", "choices", "answer"),
        audio_column="context",
        sampling_rate=None,
    )
    return [entry]


def _open_sets(hub: HubBuilder) -> list[EntryFixture]:
    made = []
    rows = [
        ("When does the museum open?", "At ten in the morning.",
         "The museum opens at ten in the morning."),
        ("Who wrote the letter?", "Jane Austen.", "It was Jane Austen."),
        ("What colour is the door?", "Blue.", "Purple elephants dance quietly."),
    ]  # fmt: skip
    for name, repo, spoken in (
        ("public_sg_speech", "AudioLLMs/public_sg_speech_qa_test", False),
        ("openhermes_audio", "AudioLLMs/openhermes_instruction_test", True),
        ("alpaca_audio", "AudioLLMs/alpaca_audio_test", True),
    ):
        entry = EntryFixture(name, repo)
        columns: dict[str, list[Any]] = {"context": [], "instruction": [], "answer": []}
        if spoken:
            columns["speech_instruction"] = []
        for index, (question, answer, says) in enumerate(rows):
            audio = hub.clip()
            columns["context"].append(audio)
            columns["answer"].append(answer)
            if spoken:
                columns["instruction"].append("Please follow the instruction in the speech.")
                columns["speech_instruction"].append(question)
            else:
                columns["instruction"].append(question)
            entry.references.append((str(index), answer))
            entry.questions[str(index)] = question
            entry.answers[audio_digest(audio)] = says
        text = ["instruction", *(["speech_instruction"] if spoken else []), "answer"]
        hub.repo(
            repo,
            {"default": {"test": _default("test", columns)}},
            _string(*text),
            audio_column="context",
            sampling_rate=None,
        )
        made.append(entry)
    return made


ASR_ROWS = {
    "librispeech_asr": ("AudioLLMs/librispeech_test_clean", [
        ("HELLO WORLD", "Hello, world."),
        ("GOOD MORNING EVERYONE", "Good morning."),
    ]),
    "commonvoice_asr": ("AudioLLMs/common_voice_15_en_test", [
        ("Hello there.", "hello there"),
        ("This is John Davis.", "this is jon davis"),
        ("", "nothing"),
    ]),
}  # fmt: skip
"""ASR rows: (reference, what the model transcribes); an empty reference is left out."""


def _asr(hub: HubBuilder) -> list[EntryFixture]:
    made = []
    for name, (repo, rows) in ASR_ROWS.items():
        entry = EntryFixture(name, repo)
        columns: dict[str, list[Any]] = {"context": [], "instruction": [], "answer": []}
        for index, (reference, says) in enumerate(rows):
            audio = hub.clip()
            columns["context"].append(audio)
            columns["instruction"].append("Please transcribe the speech.")
            columns["answer"].append(reference)
            if reference:
                entry.references.append((str(index), reference))
                entry.answers[audio_digest(audio)] = says
        hub.repo(
            repo,
            {"default": {"test": _default("test", columns)}},
            _string("instruction", "answer"),
            audio_column="context",
            sampling_rate=None,
        )
        made.append(entry)
    return made


BUILDERS: dict[tuple[str, ...], Callable[[HubBuilder], list[EntryFixture]]] = {
    ("urfunny",): _urfunny,
    ("mustard",): _mustard,
    ("slurp_intent",): _slurp,
    ("iemocap",): _iemocap,
    ("meld",): _meld,
    ("callhome",): _callhome,
    ("commonvoice_gender", "commonvoice_age", "commonvoice_accent"): _common_voice,
    ("fairspeech_gender", "fairspeech_age"): _fairspeech,
    ("librispeech_grounding", "covost2_language", "slurp_entity"): _air_bench,
    ("cn_college_listen",): _cn_college,
    ("public_sg_speech", "openhermes_audio", "alpaca_audio"): _open_sets,
    ("librispeech_asr", "commonvoice_asr"): _asr,
}
"""Each builder, by the registry entries its repository holds."""


def build_hub(root: Path, only: set[str] | None = None) -> dict[str, EntryFixture]:
    """Write the repositories of every registry entry (or of ``only``) under ``root``."""
    hub = HubBuilder(root)
    entries: dict[str, EntryFixture] = {}
    for names, build in BUILDERS.items():
        if only is not None and not only & set(names):
            continue
        for entry in build(hub):
            entries[entry.name] = entry
    return entries
