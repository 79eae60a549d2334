"""GGUF checkpoints converted once to safetensors, so later loads are plain and fast.

transformers reads the file (``AutoConfig``/``AutoTokenizer`` with ``gguf_file=`` and its GGUF
tensor reader, which dequantises with the ``gguf`` package); the weights are saved with
``save_pretrained`` into a cache directory. Written by hand because transformers' own
``from_pretrained(gguf_file=...)`` needs ``accelerate`` and returns a model it refuses to save.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import shutil
import uuid
from pathlib import Path
from typing import Any

__all__ = ["GGUFConversionError", "convert_gguf"]

logger = logging.getLogger(__name__)


class GGUFConversionError(Exception):
    """The GGUF file cannot be read or converted, or the cache cannot be written."""


def convert_gguf(gguf_path: Path, cache_dir: Path) -> Path:
    """Dequantise a GGUF checkpoint once into a safetensors directory under ``cache_dir``.

    The directory is named after the file and a digest of its size and header, so a changed
    file converts again; it is written beside its final place and renamed into it, so a crash
    or a second process converting at the same time never leaves a half-written cache. Later
    calls find it and return at once. Blocking: call it from a worker thread.

    transformers reads the file (``AutoConfig``/``AutoTokenizer`` with ``gguf_file=`` and its
    GGUF tensor reader, which dequantises with the ``gguf`` package, Q4_1 included). This route
    needs no ``accelerate``, which ``from_pretrained(gguf_file=...)`` requires, and gives a plain
    model that ``save_pretrained`` writes (it refuses the one ``from_pretrained`` makes).

    Returns:
        The directory, loadable with ``from_pretrained``.

    Raises:
        GGUFConversionError: the file cannot be read or converted, or the cache cannot be written.
    """
    target = cache_dir / _gguf_cache_name(gguf_path)
    if (target / "config.json").is_file():
        logger.info("using %s converted in %s", gguf_path.name, target)
        return target
    logger.info("converting %s to safetensors in %s (once)", gguf_path.name, target)
    staging = cache_dir / f".{target.name}.{uuid.uuid4().hex}.partial"
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        _dequantise_gguf(gguf_path, staging)
        try:
            staging.rename(target)
        except OSError:
            if not (target / "config.json").is_file():  # not just another process first
                raise
    except OSError as exc:
        raise GGUFConversionError(
            f"cannot write the converted model to {cache_dir}: {exc}"
        ) from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _gguf_cache_name(gguf_path: Path) -> str:
    digest = hashlib.sha256(str(gguf_path.stat().st_size).encode())
    with gguf_path.open("rb") as file:
        digest.update(file.read(1 << 20))  # the header: metadata, tensor names and types
    return f"{gguf_path.stem}-{digest.hexdigest()[:12]}"


def _dequantise_gguf(gguf_path: Path, out: Path) -> None:
    # Imported as Any: transformers' GGUF helpers are untyped, and this module loads lazily.
    transformers: Any = importlib.import_module("transformers")
    reader: Any = importlib.import_module("transformers.modeling_gguf_pytorch_utils")

    directory, name = str(gguf_path.parent), gguf_path.name
    try:
        config = transformers.AutoConfig.from_pretrained(directory, gguf_file=name)
        tokenizer = transformers.AutoTokenizer.from_pretrained(directory, gguf_file=name)
        model = transformers.AutoModelForCausalLM.from_config(config)
        tensors = reader.load_gguf_checkpoint(
            str(gguf_path), return_tensors=True, model_to_load=model
        )["tensors"]
    except (ValueError, KeyError, NotImplementedError, OSError) as exc:
        raise GGUFConversionError(
            f"cannot convert {gguf_path}: {type(exc).__name__}: {exc} (transformers reads the "
            "GGUF architectures and quantisation types that it and the gguf package support)"
        ) from exc
    result = model.load_state_dict(tensors, strict=False)
    missing = set(result.missing_keys) - _tied_to_loaded(model, set(tensors))
    if missing or result.unexpected_keys:
        raise GGUFConversionError(
            f"cannot convert {gguf_path}: weights missing {sorted(missing)}, "
            f"unexpected {sorted(result.unexpected_keys)}"
        )
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def _tied_to_loaded(model: Any, loaded: set[str]) -> set[str]:
    """Parameter names that share their tensor with a loaded one (e.g. a tied ``lm_head``)."""
    names_by_tensor: dict[int, list[str]] = {}
    for param_name, param in model.named_parameters(remove_duplicate=False):
        names_by_tensor.setdefault(id(param), []).append(param_name)
    return {name for names in names_by_tensor.values() if loaded & set(names) for name in names}
