"""Perplexity over non-overlapping windows of a tokenized text (ALGORITHMS.md section 5).

Protocol (the GPTQ / QuaRot convention):

1. the dataset's rows joined with ``"\\n\\n"`` (``residq.data.text_sources.load_text``, test
   split), tokenized once without special tokens;
2. cut into non-overlapping windows of ``seqlen`` tokens, the last partial window dropped;
   ``max_windows`` keeps the FIRST N windows (deterministic);
3. every window is run through the model on its own (no context carried over); token ``t`` is
   predicted from tokens ``< t`` of the same window;
4. perplexity = ``exp`` of the mean token NLL over all predicted tokens of all windows.

Without BOS a window is ``seqlen`` text tokens and its first token is not predicted: ``seqlen - 1``
predicted tokens per window. Models that need a BOS (Gemma, or ``add_bos=True``) get one at
position 0: the window is ``[BOS] + seqlen - 1`` text tokens (the model input stays ``seqlen``
long, windows advance by ``seqlen - 1`` text tokens) and every text token of the window is
predicted, again ``seqlen - 1`` predicted tokens per window.

Log-softmax is taken in float32 over chunks of positions, so the float32 copy of the
``(seqlen, vocab)`` logits is never built whole.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from residq.data.calibration import bos_token_id_of, token_stream
from residq.data.text_sources import load_text

# Elements of one float32 log-softmax chunk (2**26 * 4 bytes = 256 MiB).
LOGPROB_CHUNK_ELEMENTS = 2**26


@dataclass
class PerplexityResult:
    """Outcome of ``perplexity``.

    Attributes:
        ppl: ``exp(nll)``.
        nll: mean token negative log-likelihood in nats.
        n_windows: windows evaluated.
        n_tokens: predicted tokens, ``n_windows * (seqlen - 1)``.
        seqlen: model input length of each window (BOS included).
        dataset: dataset name (a label only when ``text=`` was given).
    """

    ppl: float
    nll: float
    n_windows: int
    n_tokens: int
    seqlen: int
    dataset: str


def model_needs_bos(model: Any) -> bool:
    """True for architectures that must see a BOS at position 0 (Gemma family)."""
    config = getattr(model, "config", None)
    model_type = str(getattr(config, "model_type", "") or "")
    return model_type.startswith("gemma")


def model_device(model: Any) -> torch.device:
    """The device of the model's (first) parameters."""
    device = getattr(model, "device", None)
    if isinstance(device, torch.device):
        return device
    return next(model.parameters()).device


def evaluation_windows(
    tokens: torch.Tensor,
    seqlen: int,
    bos_token_id: int | None = None,
    max_windows: int | None = None,
) -> torch.Tensor:
    """Cut a token stream into non-overlapping windows, the last partial one dropped.

    Args:
        tokens: ``(n_tokens,)`` int64 token stream.
        seqlen: window length (BOS included).
        bos_token_id: when given, each window is ``[BOS] + seqlen - 1`` text tokens.
        max_windows: keep only the first ``max_windows`` windows.

    Returns:
        ``(n_windows, seqlen)`` int64 tensor.
    """
    if seqlen < 2:
        raise ValueError(f"seqlen must be >= 2, got {seqlen}")
    if max_windows is not None and max_windows < 1:
        raise ValueError(f"max_windows must be None or >= 1, got {max_windows}")
    span = seqlen - 1 if bos_token_id is not None else seqlen
    n_windows = tokens.numel() // span
    if n_windows == 0:
        raise ValueError(
            f"the text has {tokens.numel()} tokens, fewer than one window of {span} text tokens"
        )
    if max_windows is not None:
        n_windows = min(n_windows, max_windows)
    windows = tokens[: n_windows * span].reshape(n_windows, span)
    if bos_token_id is not None:
        bos_column = torch.full((n_windows, 1), bos_token_id, dtype=torch.long)
        windows = torch.cat([bos_column, windows], dim=1)
    return windows


def next_token_nll_sum(logits: torch.Tensor, input_ids: torch.Tensor) -> float:
    """Sum over a batch of the NLL of each token given the ones before it.

    Args:
        logits: ``(batch, seqlen, vocab)`` logits, any float dtype.
        input_ids: ``(batch, seqlen)`` int64 tokens the logits were computed from.

    Returns:
        ``sum_{b, t >= 1} -log softmax(logits[b, t - 1])[input_ids[b, t]]`` in float64, over
        ``batch * (seqlen - 1)`` tokens.
    """
    batch, length, vocab = logits.shape
    targets = input_ids[:, 1:].to(logits.device)
    chunk = max(1, LOGPROB_CHUNK_ELEMENTS // (batch * vocab))
    total = torch.zeros((), dtype=torch.float64, device=logits.device)
    for start in range(0, length - 1, chunk):
        stop = min(start + chunk, length - 1)
        log_probs = torch.log_softmax(logits[:, start:stop].float(), dim=-1)
        picked = log_probs.gather(-1, targets[:, start:stop, None]).squeeze(-1)
        total -= picked.double().sum()
    return float(total)


def _evaluate_windows(
    model: Any, windows: torch.Tensor, batch_size: int, device: torch.device, desc: str,
    progress: bool,
) -> float:
    """Sum of next-token NLL over all windows, ``batch_size`` windows per forward."""
    total = 0.0
    starts = range(0, windows.shape[0], batch_size)
    for start in tqdm(starts, desc=desc, disable=not progress):
        batch = windows[start : start + batch_size].to(device)
        logits = model(input_ids=batch, use_cache=False).logits
        total += next_token_nll_sum(logits, batch)
    return total


def perplexity(
    model: Any,
    tokenizer: Any,
    dataset: str = "wikitext2",
    seqlen: int = 2048,
    max_windows: int | None = None,
    batch_size: int = 1,
    device: str | torch.device | None = None,
    add_bos: bool | None = None,
    data_dir: str | Path | None = None,
    progress: bool = True,
    text: str | None = None,
) -> PerplexityResult:
    """Perplexity of a causal LM on a dataset's test split (protocol in the module docstring).

    Args:
        model: HF causal LM (``model(input_ids=...).logits`` of shape ``(batch, seqlen, vocab)``).
        tokenizer: its tokenizer.
        dataset: ``"wikitext2"``, ``"ptb"`` or ``"c4"`` (c4: the evaluation half of the sample).
        seqlen: model input length of each window.
        max_windows: evaluate only the first N windows.
        batch_size: windows per forward pass.
        device: where inputs go; ``None`` -> the model's device.
        add_bos: prepend the tokenizer's BOS to each window; ``None`` -> only for Gemma models.
        data_dir: data folder; ``None`` -> ``resolve_data_dir``.
        progress: show a tqdm bar.
        text: evaluate this text instead of loading ``dataset`` (then ``dataset`` is a label).

    Returns:
        ``PerplexityResult``.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if text is None:
        text = load_text(dataset, "test", data_dir)
    wants_bos = model_needs_bos(model) if add_bos is None else add_bos
    bos_id = bos_token_id_of(tokenizer) if wants_bos else None
    windows = evaluation_windows(token_stream(tokenizer, text), seqlen, bos_id, max_windows)
    device = model_device(model) if device is None else torch.device(device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            nll_sum = _evaluate_windows(
                model, windows, batch_size, device, f"perplexity {dataset}", progress
            )
    finally:
        model.train(was_training)
    n_windows = windows.shape[0]
    n_tokens = n_windows * (seqlen - 1)
    nll = nll_sum / n_tokens
    return PerplexityResult(
        ppl=math.exp(nll), nll=nll, n_windows=n_windows, n_tokens=n_tokens, seqlen=seqlen,
        dataset=dataset,
    )
