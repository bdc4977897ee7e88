"""Batched log-likelihood of continuations, tokenized and scored as lm-evaluation-harness does.

The harness (``lm_eval`` 0.4.x, ``HFLM``) scores a request ``(context, continuation)`` like this,
and every step here is the same so that acc / acc_norm match it exactly:

1. Trailing whitespace of the context moves to the front of the continuation.
2. ``whole = encode(context + continuation)``, ``ctx = encode(context)``; the continuation tokens
   are ``whole[len(ctx):]`` (the split is taken on the *whole* encoding, so a word and the space
   before it tokenize as in running text). ``encode`` is the tokenizer's default call (its own
   BOS rule), without special tokens when the text already starts with the BOS string.
   An empty context is replaced by the prefix token (BOS, else EOS).
3. The model input is ``(ctx + cont)[-(max_length + 1):][:-1]``, right-padded in the batch; the
   model is called without an attention mask (padding sits after every scored position of a
   causal model, so it cannot change them).
4. ``loglik = sum log_softmax(logits)[cont]`` over the continuation positions, and
   ``is_greedy`` tells whether every continuation token is the argmax.

Requests whose model inputs are equal (one-token continuations of one context: " A"/" B"/...,
" no"/" yes") share one forward pass, as the harness's logits cache does. Batches hold inputs
sorted longest first (ties broken by the token tuple), the harness's order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

DEFAULT_MAX_LENGTH = 2048
TOKENIZER_INFINITY = 1000000000000000019884624838656
SEQUENCE_LENGTH_ATTRIBUTES = ("n_positions", "max_position_embeddings", "n_ctx")


@dataclass(frozen=True)
class TokenizedRequest:
    """One request after tokenization: ``context`` and ``continuation`` token ids (non-empty)."""

    context: tuple[int, ...]
    continuation: tuple[int, ...]


def prefix_token_id(tokenizer) -> int:
    """The token that stands for an empty context: BOS, else EOS (the harness's choice)."""
    if tokenizer.bos_token_id is not None:
        return int(tokenizer.bos_token_id)
    if tokenizer.eos_token_id is not None:
        return int(tokenizer.eos_token_id)
    raise ValueError("tokenizer has neither bos_token_id nor eos_token_id; an empty context "
                     "needs one of them as its prefix token")


def encode_text(tokenizer, text: str) -> list[int]:
    """Token ids of ``text`` with the tokenizer's default special tokens, unless the text already
    starts with the prefix token's string (then none are added)."""
    if tokenizer.bos_token_id is not None or tokenizer.eos_token_id is not None:
        prefix = tokenizer.decode([prefix_token_id(tokenizer)])
        if prefix and text.startswith(prefix):
            return list(tokenizer.encode(text, add_special_tokens=False))
    return list(tokenizer.encode(text))


def encode_pair(tokenizer, context: str, continuation: str) -> TokenizedRequest:
    """Split ``context + continuation`` into token ids the way the harness does (module doc).

    Raises:
        ValueError: the continuation tokenizes to nothing (it merged into the context).
    """
    if context == "":
        cont = list(tokenizer.encode(continuation, add_special_tokens=False))
        prefix = prefix_token_id(tokenizer)
        ctx, cont = ([prefix], cont) if not cont or cont[0] != prefix else (cont[:1], cont[1:])
    else:
        n_spaces = len(context) - len(context.rstrip())
        if n_spaces > 0:
            continuation = context[-n_spaces:] + continuation
            context = context[:-n_spaces]
        whole = encode_text(tokenizer, context + continuation)
        ctx = encode_text(tokenizer, context)
        cont = whole[len(ctx):]
    if not cont:
        raise ValueError(f"continuation {continuation!r} after context ending "
                         f"{context[-40:]!r} encodes to no tokens; expected at least one")
    return TokenizedRequest(tuple(ctx), tuple(cont))


def resolve_max_length(model, tokenizer) -> int:
    """Longest model input, as the harness resolves it: the config's ``n_positions`` /
    ``max_position_embeddings`` / ``n_ctx``, else the tokenizer's ``model_max_length``,
    else 2048."""
    config = getattr(model, "config", None)
    config = getattr(config, "text_config", None) or config
    for attribute in SEQUENCE_LENGTH_ATTRIBUTES:
        value = getattr(config, attribute, None)
        if value is not None:
            return int(value)
    tokenizer_max = getattr(tokenizer, "model_max_length", None)
    if tokenizer_max is not None and tokenizer_max != TOKENIZER_INFINITY:
        return int(tokenizer_max)
    return DEFAULT_MAX_LENGTH


def model_input(request: TokenizedRequest, max_length: int) -> tuple[int, ...]:
    """The tokens fed to the model: all but the last, left-truncated to ``max_length``."""
    if len(request.continuation) > max_length:
        raise ValueError(f"continuation of {len(request.continuation)} tokens exceeds the "
                         f"model's max length {max_length}")
    return (request.context + request.continuation)[-(max_length + 1):][:-1]


def model_device(model) -> torch.device:
    """Device of the model's first parameter (CPU for a parameterless stand-in)."""
    first = next(iter(model.parameters()), None)
    return first.device if first is not None else torch.device("cpu")


def _forward_log_probs(model, inputs: Sequence[tuple[int, ...]], device) -> list[torch.Tensor]:
    """Right-pad ``inputs`` (token tuples), run the model once, and return per input its
    logits [len_i, vocab] (float32 or the model's dtype; log_softmax is applied by the caller)."""
    width = max(len(tokens) for tokens in inputs)
    batch = torch.zeros((len(inputs), width), dtype=torch.long)
    for row, tokens in enumerate(inputs):
        batch[row, : len(tokens)] = torch.tensor(tokens, dtype=torch.long)
    with torch.no_grad():
        logits = model(batch.to(device)).logits  # [batch, width, vocab]
    return [logits[row, : len(tokens)] for row, tokens in enumerate(inputs)]


def _continuation_score(logits: torch.Tensor, continuation: tuple[int, ...]) -> tuple[float, bool]:
    """(sum of log-probabilities, all-greedy) of ``continuation`` from the last
    ``len(continuation)`` rows of ``logits`` [len_input, vocab]."""
    scored = F.log_softmax(logits[-len(continuation):], dim=-1)  # [len_cont, vocab]
    target = torch.tensor(continuation, dtype=torch.long, device=scored.device)
    greedy = bool((scored.argmax(dim=-1) == target).all())
    return float(scored.gather(-1, target[:, None]).sum()), greedy


def score_requests(
    model,
    requests: Sequence[TokenizedRequest],
    batch_size: int = 16,
    max_length: int = DEFAULT_MAX_LENGTH,
    device: torch.device | str | None = None,
    progress: bool = True,
    description: str = "loglikelihood",
) -> list[tuple[float, bool]]:
    """Log-likelihood of each request's continuation given its context.

    Args:
        model: causal LM whose ``model(input_ids [B, T] long).logits`` is [B, T, vocab].
        requests: tokenized requests (see ``encode_pair``).
        batch_size: distinct model inputs per forward pass.
        max_length: the model's context length (``resolve_max_length``).
        device: where the input ids go; default: the model's device.
        progress: show a progress bar over distinct inputs.

    Returns:
        per request ``(loglik, is_greedy)``: natural-log likelihood (float) and whether greedy
        decoding would produce the continuation.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    device = torch.device(device) if device is not None else model_device(model)
    inputs = [model_input(request, max_length) for request in requests]
    by_input: dict[tuple[int, ...], list[int]] = {}
    for index, tokens in enumerate(inputs):
        by_input.setdefault(tokens, []).append(index)
    ordered = sorted(by_input, key=lambda tokens: (-len(tokens), tokens))
    results: list[tuple[float, bool]] = [(0.0, False)] * len(requests)
    bar = tqdm(total=len(ordered), desc=description, disable=not progress, leave=False)
    for start in range(0, len(ordered), batch_size):
        chunk = ordered[start: start + batch_size]
        for tokens, logits in zip(chunk, _forward_log_probs(model, chunk, device)):
            for index in by_input[tokens]:
                results[index] = _continuation_score(logits, requests[index].continuation)
        bar.update(len(chunk))
    bar.close()
    return results
