r"""Scoring candidate answers by their log-likelihood, as lm-evaluation-harness does.

This is lm-evaluation-harness's ``loglikelihood`` request (``TemplateLM._encode_pair`` and
``HFLM._loglikelihood_tokens``) for the in-process adapters of :mod:`lamarena.models.local`.
For each candidate continuation ``c`` of a context ``x`` (here: the chat-templated prompt,
ending with the generation prompt such as ``"<|im_start|>assistant\n"``):

1. **Tokens** (:func:`continuation_ids`): joint tokenization, ``whole = tok(x + c)``,
   ``ctx = tok(x)``, continuation ``= whole[len(ctx):]`` (no special tokens added to either).
   The continuation ids are then spliced after the ids the model is actually given for ``x``
   (for Qwen2-Audio the processor's, in which one ``<|AUDIO|>`` is expanded into one token per
   audio frame, so ``tok(x)`` and the processor's ids differ in length but end the same way).
   Two choices differ from lm-evaluation-harness, both so that the scored tokens are exactly
   what the model would have to generate after the prompt it gets in free decoding:

   - the context's trailing whitespace stays in the context. lm-evaluation-harness moves it to
     the front of the continuation (for ``"Answer: " + "yes"``); here it is the chat template's
     generation prompt, which the model is always given before it replies, so moving it would
     score template tokens as part of every option. The candidate is scored exactly as given
     (no leading space: the assistant turn starts fresh).
   - where the joint tokenization does not start with ``tok(x)`` (the tokenizer merged
     characters across the boundary), ``whole[len(ctx):]`` would not follow the context's ids,
     so the candidate's own tokens ``tok(c)`` are used instead. With the usual chat templates
     (ending in a newline or a special token) and options that start with a letter or a digit,
     the two agree.

2. **Score** (:func:`score_continuations`): one forward pass per candidate over the prompt
   ids followed by the candidate's ids; the logits at position ``i`` predict token ``i + 1``, so
   the candidate's log-likelihood is the sum of ``log_softmax`` (in float32) at the positions
   before each of its tokens, and it is *greedy* when each of its tokens is the argmax there.

torch is imported on first use (the adapters that call this have loaded it already).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from lamarena.errors import ModelError
from lamarena.models.base import OptionScore

__all__ = [
    "Encode",
    "check_options",
    "continuation_ids",
    "option_continuations",
    "score_continuations",
]

Encode = Callable[[str], list[int]]
"""A tokenizer as a function: text to token ids, with no special tokens added."""


def check_options(model: str, options: Sequence[str]) -> list[str]:
    """``options`` as a list, once it is known to hold at least one candidate.

    Raises:
        ModelError: no options (for ``model``).
    """
    if isinstance(options, str):
        raise ModelError(model, f"options must be a list of candidate answers, not {options!r}")
    listed = list(options)
    if not listed:
        raise ModelError(model, "no options to score: give at least one candidate answer")
    return listed


def continuation_ids(encode: Encode, context: str, continuation: str) -> list[int]:
    """The token ids of ``continuation`` after ``context``, by joint tokenization.

    ``encode(context + continuation)`` past the length of ``encode(context)``; where the joint
    tokenization does not begin with the context's own tokens, ``encode(continuation)``.
    """
    context_ids = encode(context)
    whole = encode(context + continuation)
    if whole[: len(context_ids)] == context_ids:
        return whole[len(context_ids) :]
    return encode(continuation)


def option_continuations(
    model: str, encode: Encode, context: str, options: Sequence[str]
) -> list[list[int]]:
    """The token ids of each option after ``context`` (:func:`continuation_ids`).

    Raises:
        ModelError: an option that is no tokens at all (the empty string, or only whitespace
            for a tokenizer that drops it), naming the option.
    """
    continuations: list[list[int]] = []
    for option in options:
        ids = continuation_ids(encode, context, option)
        if not ids:
            raise ModelError(
                model,
                f"the option {option!r} is no tokens in this model's tokenizer, so it cannot be "
                "scored: give non-empty candidate answers",
            )
        continuations.append(ids)
    return continuations


def score_continuations(
    model: Any,
    inputs: Mapping[str, Any],
    options: Sequence[str],
    continuations: Sequence[Sequence[int]],
    *,
    device: str,
) -> list[OptionScore]:
    """Score each continuation after the prompt ``inputs`` (blocking: call from a worker thread).

    Args:
        model: a Hugging Face model whose forward returns ``logits``.
        inputs: the prompt's model inputs for one sequence (``input_ids`` of shape ``(1, n)``,
            ``attention_mask`` and any others, e.g. audio features), as given to ``generate``.
        options: the candidates' texts.
        continuations: each candidate's token ids (:func:`option_continuations`).
        device: the torch device the model is on.

    Returns:
        One :class:`OptionScore` per option, in order.
    """
    torch = importlib.import_module("torch")
    prompt_ids = inputs["input_ids"]
    if prompt_ids.shape[0] != 1:
        raise ValueError(f"one prompt at a time, not a batch of {prompt_ids.shape[0]}")
    start = int(prompt_ids.shape[1])
    scores: list[OptionScore] = []
    for text, ids in zip(options, continuations, strict=True):
        tokens = torch.tensor([list(ids)], dtype=prompt_ids.dtype)
        sequence = dict(inputs)
        sequence["input_ids"] = torch.cat([prompt_ids, tokens], dim=1)
        mask = inputs.get("attention_mask")
        if mask is not None:
            sequence["attention_mask"] = torch.cat(
                [mask, torch.ones(tokens.shape, dtype=mask.dtype)], dim=1
            )
        on_device = {key: value.to(device) for key, value in sequence.items()}
        with torch.no_grad():
            logits = model(**on_device, use_cache=False).logits
            # Position i predicts token i + 1: the last prompt position predicts the first token.
            scored = logits[0, start - 1 : start - 1 + len(ids)].float()
            target = torch.tensor(list(ids), device=scored.device)
            logprobs = torch.log_softmax(scored, dim=-1).gather(-1, target[:, None])
            greedy = bool((scored.argmax(dim=-1) == target).all())
        scores.append(OptionScore(text, float(logprobs.sum()), len(ids), greedy))
    return scores
