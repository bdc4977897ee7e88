"""Splitting the last dimension into scale blocks, and putting it back together.

Every format scales blocks of ``block`` consecutive elements along the last dimension ``K``.
When ``K % block != 0`` the last block is ragged: ``split_blocks`` pads it with zeros. Zero
padding never changes a block's statistics here, because every format's scale depends only on
``amax = max |x|`` (which is >= 0) or on ``min(x, 0)`` / ``max(x, 0)`` (which already include
zero), so the padded block behaves exactly like the real elements alone.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def block_count(k: int, block: int) -> int:
    """Number of blocks of ``block`` elements covering ``k`` elements: ``ceil(k / block)``."""
    if block < 1:
        raise ValueError(f"block size must be positive, got {block}")
    return -(-k // block)


def split_blocks(x: torch.Tensor, block: int) -> torch.Tensor:
    """View ``x`` ``(..., K)`` as ``(..., n_blocks, block)``, zero-padding a ragged last block.

    Same dtype and device as ``x``; a copy only when padding or reshaping requires one.
    """
    k = x.shape[-1]
    n_blocks = block_count(k, block)
    padding = n_blocks * block - k
    if padding:
        x = F.pad(x, (0, padding))
    return x.reshape(*x.shape[:-1], n_blocks, block)


def merge_blocks(blocks: torch.Tensor, k: int) -> torch.Tensor:
    """Inverse of ``split_blocks``: ``(..., n_blocks, block)`` -> ``(..., k)``, padding dropped."""
    flat = blocks.reshape(*blocks.shape[:-2], blocks.shape[-2] * blocks.shape[-1])
    if flat.shape[-1] < k:
        raise ValueError(f"blocks hold {flat.shape[-1]} elements per row, fewer than k={k}")
    return flat[..., :k]


def block_amax(blocks: torch.Tensor) -> torch.Tensor:
    """``max |x|`` of each block: ``(..., n_blocks, block)`` -> ``(..., n_blocks)``, same dtype."""
    return blocks.abs().amax(dim=-1)
