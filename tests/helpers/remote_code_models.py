"""Tiny checkpoints with their own code, like DiVA's and Typhoon-Audio's, written by the tests.

Each is a folder holding ``configuration_*.py`` and ``modeling_*.py``, a ``config.json`` whose
``auto_map`` points at them, and random small weights saved with ``save_pretrained``: loading
one needs ``AutoModel.from_pretrained(folder, trust_remote_code=True)``, as the real ones do,
and nothing comes from a hub. The classes mimic only the real methods' signatures and output
shapes (see :mod:`lamarena.models.local_interfaces` for the sources):

- ``diva``: ``generate_stream(audio, text_prompt, do_sample=False, max_new_tokens=128)`` yields
  the cumulative text, word by word, with each word first half-written (as a byte-level
  tokenizer streams one); it records its last call on the model (``last_call``).
- ``typhoon``: ``generate(audio, prompt, prompt_pattern, do_sample=False, max_new_tokens=512,
  num_beams=1, repetition_penalty=1.0)`` returns the whole reply after ``delay_s`` seconds.
- ``typhoon2``: ``generate(conversation, max_new_tokens=1024, num_beams=1, do_sample=False,
  ...)`` reads each turn's wav file and returns ``{"text": ...}``.
- ``broken``: its modeling module imports a name transformers does not have, and its
  ``config.json`` says it was saved with transformers 4.44.0.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

__all__ = ["REMOTE_CODE_FAMILIES", "build_remote_code_model"]

REMOTE_CODE_FAMILIES = ("diva", "typhoon", "typhoon2", "broken")

_CONFIGURATION = """
from transformers import PretrainedConfig


class Tiny{Family}Config(PretrainedConfig):
    model_type = "tiny_{family}"

    def __init__(self, hidden_size=8, seed=0, delay_s=0.0, **kwargs):
        self.hidden_size = hidden_size
        self.seed = seed
        self.delay_s = delay_s
        super().__init__(**kwargs)
"""

_MODELING_HEAD = '''
import time

import numpy as np
import torch
from transformers import PreTrainedModel

from .configuration_tiny{family} import Tiny{Family}Config

WORDS = "the capital of france is paris a city on the river seine".split()


class Tiny{Family}Model(PreTrainedModel):
    config_class = Tiny{Family}Config
    base_model_prefix = "tiny"

    def __init__(self, config):
        super().__init__(config)
        self.proj = torch.nn.Linear(config.hidden_size, config.hidden_size)
        self.last_call = None
        self.post_init()

    def _words(self, audio, count):
        """Words picked from the weights and the audio: the same input, the same reply."""
        audio = np.asarray(audio, dtype=np.float32)
        base = float(self.proj.weight.detach().abs().sum()) + float(np.abs(audio).sum())
        return [WORDS[(int(base * 1000) + 7 * i) % len(WORDS)] for i in range(count)]
'''

_DIVA = """
    def generate_stream(self, audio, text_prompt, do_sample=False, max_new_tokens=128):
        self.last_call = {{
            "dtype": str(np.asarray(audio).dtype),
            "peak": float(np.max(np.abs(audio))),
            "text_prompt": text_prompt,
            "do_sample": do_sample,
            "max_new_tokens": max_new_tokens,
            "param_dtype": str(self.proj.weight.dtype),
            "device": str(self.proj.weight.device),
        }}
        text = ""
        for word in self._words(audio, min(max_new_tokens, 6)):
            text += word if not text else " " + word
            yield text[: len(text) - len(word) // 2]
            yield text
"""

_TYPHOON = """
    def generate(
        self,
        audio,
        prompt,
        prompt_pattern,
        do_sample=False,
        max_new_tokens=512,
        num_beams=1,
        repetition_penalty=1.0,
    ):
        assert "{{}}" in prompt_pattern
        self.last_call = {{
            "prompt": prompt,
            "samples": len(audio),
            "do_sample": do_sample,
            "max_new_tokens": max_new_tokens,
            "num_beams": num_beams,
        }}
        time.sleep(self.config.delay_s)
        return " " + " ".join(self._words(audio, min(max_new_tokens, 5))) + " "
"""

_TYPHOON2 = """
    def generate(
        self,
        conversation,
        max_new_tokens=1024,
        num_beams=1,
        do_sample=False,
        top_p=0.9,
        repetition_penalty=1.0,
        length_penalty=1.0,
        temperature=0.7,
        streamer=None,
    ):
        import soundfile

        audios = []
        for message in conversation:
            if isinstance(message["content"], list):
                for part in message["content"]:
                    if part["type"] == "audio":
                        audios.append(soundfile.read(part["audio_url"])[0])
        self.last_call = {{
            "roles": [message["role"] for message in conversation],
            "audios": len(audios),
            "system": conversation[0]["content"] if conversation[0]["role"] == "system" else None,
        }}
        return {{"text": " ".join(self._words(audios[-1], min(max_new_tokens, 5))), "audio": None}}
"""

_BROKEN = """
from transformers import NoSuchClassInAnyTransformersVersion  # noqa: F401
"""


def build_remote_code_model(
    directory: Path, family: str, *, seed: int = 0, delay_s: float = 0.0
) -> Path:
    """Write a tiny ``family`` checkpoint with its own code into ``directory``; return it.

    Args:
        directory: where to write (created; its name becomes the remote module's package).
        family: one of :data:`REMOTE_CODE_FAMILIES`.
        seed: seeds the random weights.
        delay_s: how long the ``typhoon`` model's ``generate`` takes.
    """
    import torch
    from transformers import AutoConfig, AutoModel

    if family not in REMOTE_CODE_FAMILIES:
        raise ValueError(f"unknown family {family!r}; use one of {REMOTE_CODE_FAMILIES}")
    target = directory
    if family == "broken":  # built beside, then moved to ``directory`` (see below)
        directory = directory.with_name(f"{directory.name}-source")
    code_family = "typhoon" if family == "broken" else family
    names = {"family": code_family, "Family": code_family.capitalize()}
    directory.mkdir(parents=True, exist_ok=True)
    configuration = f"configuration_tiny{code_family}"
    modeling = f"modeling_tiny{code_family}"
    body = {"diva": _DIVA, "typhoon": _TYPHOON, "typhoon2": _TYPHOON2, "broken": _TYPHOON}
    (directory / f"{configuration}.py").write_text(_CONFIGURATION.format(**names))
    (directory / f"{modeling}.py").write_text(
        _MODELING_HEAD.format(**names) + body[family].format(**names)
    )
    config: dict[str, Any] = {
        "model_type": f"tiny_{code_family}",
        "architectures": [f"Tiny{names['Family']}Model"],
        "auto_map": {
            "AutoConfig": f"{configuration}.Tiny{names['Family']}Config",
            "AutoModel": f"{modeling}.Tiny{names['Family']}Model",
        },
        "hidden_size": 8,
        "seed": seed,
        "delay_s": delay_s,
    }
    (directory / "config.json").write_text(json.dumps(config, indent=2))
    loaded = AutoConfig.from_pretrained(directory, trust_remote_code=True, local_files_only=True)
    torch.manual_seed(seed)
    model = AutoModel.from_config(loaded, trust_remote_code=True)
    model.save_pretrained(directory)
    if family == "broken":
        # Code imported once stays imported in this process (under a name made from its
        # folder), so the broken copy goes to a folder no code was imported from.
        broken = target
        shutil.copytree(directory, broken, dirs_exist_ok=True)
        shutil.rmtree(directory)
        with (broken / f"{modeling}.py").open("a") as file:
            file.write(_BROKEN)
        saved = json.loads((broken / "config.json").read_text())
        saved["transformers_version"] = "4.44.0"
        (broken / "config.json").write_text(json.dumps(saved, indent=2))
        directory = broken
    return directory
