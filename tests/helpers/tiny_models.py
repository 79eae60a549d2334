"""Tiny random-weight Hugging Face checkpoints, built locally and saved like real ones.

Tests load them through the same ``from_pretrained`` path as a downloaded checkpoint, so the
adapters' loading, chat templating, audio processing and streaming are exercised for real, in a
fraction of a second and with nothing fetched from a hub. Their output is random words.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = [
    "AUDIO_SPECIAL_TOKENS",
    "TEXT_SPECIAL_TOKENS",
    "WORDS",
    "build_tiny_qwen2_audio",
    "build_tiny_text_lm",
]

_WORD_TEXT = """
the capital of france is paris a city on river seine what where who how why hello world yes no
maybe please thank you very much good morning evening night one two three four five six seven
eight nine ten
"""
WORDS = tuple(_WORD_TEXT.split())
"""The vocabulary of the tiny tokenizers (plus special tokens and ``[UNK]``)."""

TEXT_SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
AUDIO_SPECIAL_TOKENS = ("<|AUDIO|>", "<|audio_bos|>", "<|audio_eos|>")

_CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def _tokenizer(special_tokens: tuple[str, ...]) -> Any:
    """A word-level tokenizer over :data:`WORDS`; decoding joins words with spaces.

    Word-level (rather than byte-level) decoding puts a space between every generated word, so
    a streamer releases one delta per token: exactly what streaming tests need to observe.
    """
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {token: index for index, token in enumerate(("[UNK]", *special_tokens, *WORDS))}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token="[UNK]",
        pad_token="<|endoftext|>",
        eos_token="<|im_end|>",
        additional_special_tokens=list(special_tokens[1:]),
    )
    tokenizer.chat_template = _CHATML_TEMPLATE
    return tokenizer


def _silence_special_tokens(lm_head_weight: Any, token_ids: list[int]) -> None:
    """Zero the output rows of special tokens so greedy decoding (almost surely) never picks one.

    With random weights the other logits are spread around zero, so the largest of them beats
    the zero logit of every special token: the reply is never cut short by a random
    end-of-turn, and never decodes to nothing.
    """
    import torch

    with torch.no_grad():
        lm_head_weight[token_ids] = 0.0


def build_tiny_qwen2_audio(directory: Path, *, seed: int = 0) -> Path:
    """Save a tiny random Qwen2-Audio (processor + model) to ``directory`` and return it.

    The audio encoder has one layer of width 16 and the text decoder one layer of width 32, with
    the stock Whisper feature extractor (80 mel bins, 30 s window). Loading it needs
    ``AutoProcessor`` and ``Qwen2AudioForConditionalGeneration``, as a real checkpoint does.
    """
    import torch
    from transformers import (
        Qwen2AudioConfig,
        Qwen2AudioForConditionalGeneration,
        Qwen2AudioProcessor,
        WhisperFeatureExtractor,
    )

    special = (*TEXT_SPECIAL_TOKENS, *AUDIO_SPECIAL_TOKENS)
    tokenizer = _tokenizer(special)
    processor = Qwen2AudioProcessor(
        feature_extractor=WhisperFeatureExtractor(), tokenizer=tokenizer
    )
    special_ids = [tokenizer.convert_tokens_to_ids(token) for token in special]
    config = Qwen2AudioConfig(
        audio_config={
            "model_type": "qwen2_audio_encoder",
            "num_mel_bins": 80,
            "encoder_layers": 1,
            "encoder_attention_heads": 2,
            "encoder_ffn_dim": 32,
            "d_model": 16,
            "max_source_positions": 1500,
        },
        text_config={
            "model_type": "qwen2",
            "vocab_size": len(tokenizer),
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "max_position_embeddings": 2048,
            "tie_word_embeddings": False,
        },
        audio_token_index=tokenizer.convert_tokens_to_ids("<|AUDIO|>"),
    )
    torch.manual_seed(seed)
    model = Qwen2AudioForConditionalGeneration(config).eval()
    _silence_special_tokens(model.get_output_embeddings().weight, special_ids)
    model.generation_config.eos_token_id = tokenizer.convert_tokens_to_ids("<|im_end|>")
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory


def build_tiny_text_lm(directory: Path, *, seed: int = 0) -> Path:
    """Save a tiny random Llama causal LM with a ChatML template to ``directory``; return it."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = _tokenizer(TEXT_SPECIAL_TOKENS)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=512,
        tie_word_embeddings=False,
        bos_token_id=None,
        eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).eval()
    special_ids = [tokenizer.convert_tokens_to_ids(token) for token in TEXT_SPECIAL_TOKENS]
    _silence_special_tokens(model.get_output_embeddings().weight, special_ids)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory
