"""Batched greedy generation until a stop string, as lm-evaluation-harness's ``generate_until``.

Harness rules kept here: prompts are encoded with the tokenizer's default special tokens,
left-truncated to ``max_length - max_new_tokens``, left-padded, sorted longest first; decoding is
greedy (``model.generate(do_sample=False)``) for at most ``max_new_tokens`` tokens; the EOS
string is added to the stop strings; the decoded continuation is cut before the first
occurrence of each stop string in turn.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from tqdm.auto import tqdm
from transformers import StoppingCriteria, StoppingCriteriaList

from residq.eval.zeroshot.scorer import encode_text, model_device, resolve_max_length


class StopOnStrings(StoppingCriteria):
    """Marks a row done once its generated text (tokens after ``prompt_width``) holds any of
    ``stops``. Returns a bool tensor [batch]."""

    def __init__(self, tokenizer, stops: Sequence[str], prompt_width: int):
        self.tokenizer = tokenizer
        self.stops = [stop for stop in stops if stop]
        self.prompt_width = prompt_width

    def __call__(self, input_ids: torch.Tensor, scores, **kwargs) -> torch.Tensor:
        texts = self.tokenizer.batch_decode(input_ids[:, self.prompt_width:])
        done = [any(stop in text for stop in self.stops) for text in texts]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


def cut_at_stops(text: str, stops: Sequence[str]) -> str:
    """``text`` before the first occurrence of each non-empty stop string, applied in order."""
    for stop in stops:
        if stop:
            text = text.split(stop)[0]
    return text


def pad_token_id(tokenizer) -> int:
    """Padding id: the tokenizer's pad token, else EOS, else 0 (masked out either way)."""
    for candidate in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if candidate is not None:
            return int(candidate)
    return 0


def left_pad(sequences: Sequence[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-pad token lists into ``(input_ids, attention_mask)``, both long [batch, width]."""
    width = max(len(tokens) for tokens in sequences)
    input_ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, tokens in enumerate(sequences):
        if tokens:
            input_ids[row, width - len(tokens):] = torch.tensor(tokens, dtype=torch.long)
            mask[row, width - len(tokens):] = 1
    return input_ids, mask


def greedy_generate(model, tokenizer, prompts: Sequence[str], stop: Sequence[str],
                    max_new_tokens: int = 256, batch_size: int = 16, device=None,
                    progress: bool = True) -> list[str]:
    """Greedy continuation of each prompt, cut at the stop strings (and EOS).

    Returns:
        one decoded continuation (special tokens skipped) per prompt, in prompt order.
    """
    device = torch.device(device) if device is not None else model_device(model)
    max_prompt = resolve_max_length(model, tokenizer) - max_new_tokens
    if max_prompt <= 0:
        raise ValueError(f"max_new_tokens={max_new_tokens} leaves no room for the prompt")
    stops = list(stop)
    if tokenizer.eos_token_id is not None:
        eos = tokenizer.decode([tokenizer.eos_token_id], skip_special_tokens=False)
        stops += [eos] if eos not in stops else []
    encoded = [encode_text(tokenizer, prompt)[-max_prompt:] for prompt in prompts]
    order = sorted(range(len(prompts)), key=lambda i: (-len(encoded[i]), prompts[i]))
    outputs = [""] * len(prompts)
    pad_id = pad_token_id(tokenizer)
    for start in tqdm(range(0, len(order), batch_size), desc="generate", disable=not progress,
                      leave=False):
        rows = order[start: start + batch_size]
        input_ids, mask = left_pad([encoded[i] for i in rows], pad_id)
        width = input_ids.shape[1]
        with torch.no_grad():
            generated = model.generate(
                input_ids=input_ids.to(device), attention_mask=mask.to(device),
                max_length=width + max_new_tokens, do_sample=False, pad_token_id=pad_id,
                stopping_criteria=StoppingCriteriaList([StopOnStrings(tokenizer, stops, width)]),
                use_cache=True)
        for row, tokens in zip(rows, generated[:, width:].tolist()):
            outputs[row] = cut_at_stops(tokenizer.decode(tokens, skip_special_tokens=True), stops)
    return outputs
