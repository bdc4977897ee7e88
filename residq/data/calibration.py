"""Calibration windows: random ``seqlen``-token slices of a calibration text (ALGORITHMS.md s.5).

The text is tokenized once without special tokens; ``n_samples`` start offsets are drawn with a
``torch.Generator`` seeded by ``seed``, so the windows are a deterministic function of
(tokenizer, text, n_samples, seqlen, seed). Calibration never reads a test split: the named
sources use their validation split (for ``c4`` the calibration half of the sample, disjoint from
the half used for perplexity; see ``residq.data.text_sources``).

When a BOS token is wanted, each window is ``[BOS] + seqlen - 1`` text tokens, so every window
is still exactly ``seqlen`` tokens long.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from residq.data.text_sources import DATASETS, load_text, load_user_text


def token_stream(tokenizer: Any, text: str) -> torch.Tensor:
    """Tokenize ``text`` once, without special tokens.

    Args:
        tokenizer: a HF tokenizer (or anything whose ``__call__(text, add_special_tokens=False,
            ...)`` returns a mapping with ``"input_ids"``, a flat list of ints).
        text: the whole text.

    Returns:
        ``(n_tokens,)`` int64 tensor.
    """
    encoded = tokenizer(
        text, add_special_tokens=False, return_attention_mask=False, verbose=False
    )
    return torch.as_tensor(encoded["input_ids"], dtype=torch.long).reshape(-1)


def bos_token_id_of(tokenizer: Any) -> int:
    """The tokenizer's BOS id; ``ValueError`` if it has none."""
    bos = getattr(tokenizer, "bos_token_id", None)
    if bos is None:
        raise ValueError(
            f"a BOS token was requested but the tokenizer {type(tokenizer).__name__} has no "
            "bos_token_id"
        )
    return int(bos)


def tokenizer_wants_bos(tokenizer: Any) -> bool:
    """True when the tokenizer prepends a BOS by itself (``tokenizer.add_bos_token``)."""
    return bool(getattr(tokenizer, "add_bos_token", False))


def calibration_text(source: str, data_dir: str | Path | None = None) -> str:
    """The calibration text of ``source``: a dataset name (its validation split) or a path to a
    user ``.txt`` / ``.jsonl`` / ``.jsonl.gz`` file."""
    if source in DATASETS:
        return load_text(source, "validation", data_dir)
    if not Path(source).expanduser().is_file():
        raise FileNotFoundError(
            f"calibration source {source!r} is neither a dataset name {sorted(DATASETS)} "
            "nor an existing file"
        )
    return load_user_text(source)


def sample_windows(
    tokens: torch.Tensor,
    n_samples: int,
    seqlen: int,
    seed: int,
    bos_token_id: int | None = None,
    source: str = "text",
) -> torch.Tensor:
    """Random windows of a token stream.

    Args:
        tokens: ``(n_tokens,)`` int64 token stream; needs at least ``seqlen + 1`` tokens.
        n_samples: number of windows.
        seqlen: length of every returned window (BOS included).
        seed: seed of the ``torch.Generator`` that draws the start offsets.
        bos_token_id: when given, position 0 of each window is this id and the window holds
            ``seqlen - 1`` text tokens.
        source: name used in error messages.

    Returns:
        ``(n_samples, seqlen)`` int64 tensor.
    """
    if n_samples < 1 or seqlen < 2:
        raise ValueError(f"need n_samples >= 1 and seqlen >= 2, got {n_samples} and {seqlen}")
    n_tokens = tokens.numel()
    if n_tokens < seqlen + 1:
        raise ValueError(
            f"calibration text from {source!r} has {n_tokens} tokens; at least seqlen + 1 = "
            f"{seqlen + 1} are needed"
        )
    span = seqlen - 1 if bos_token_id is not None else seqlen
    generator = torch.Generator().manual_seed(seed)
    starts = torch.randint(0, n_tokens - span + 1, (n_samples,), generator=generator)
    windows = tokens[starts[:, None] + torch.arange(span)]
    if bos_token_id is not None:
        bos_column = torch.full((n_samples, 1), bos_token_id, dtype=torch.long)
        windows = torch.cat([bos_column, windows], dim=1)
    return windows


def calibration_windows(
    tokenizer: Any,
    source: str = "wikitext2",
    n_samples: int = 128,
    seqlen: int = 2048,
    seed: int = 0,
    data_dir: str | Path | None = None,
    add_bos: bool | None = None,
) -> torch.LongTensor:
    """``n_samples`` random calibration windows of ``seqlen`` tokens.

    Args:
        tokenizer: HF tokenizer.
        source: ``"wikitext2"`` (validation split, the default), ``"c4"`` (calibration half),
            ``"ptb"`` (validation) or a path to a user ``.txt`` / ``.jsonl`` / ``.jsonl.gz``.
        n_samples: number of windows.
        seqlen: tokens per window (BOS included).
        seed: seed of the offset generator.
        data_dir: data folder; ``None`` -> ``resolve_data_dir``.
        add_bos: put the tokenizer's BOS at position 0 of each window; ``None`` follows
            ``tokenizer.add_bos_token``.

    Returns:
        ``(n_samples, seqlen)`` int64 tensor of token ids.

    Raises:
        ValueError: the text is empty, or shorter than ``seqlen + 1`` tokens.
    """
    text = calibration_text(source, data_dir)
    if not text.strip():
        raise ValueError(f"calibration text from {source!r} is empty")
    wants_bos = tokenizer_wants_bos(tokenizer) if add_bos is None else add_bos
    bos_id = bos_token_id_of(tokenizer) if wants_bos else None
    tokens = token_stream(tokenizer, text)
    return sample_windows(tokens, n_samples, seqlen, seed, bos_id, source)
