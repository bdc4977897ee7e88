"""FP8 E4M3 elements with a float32 scale per tensor, channel or token (ALGORITHMS.md 1).

``scale = amax / 448`` per block (all-zero block: 1; floored at float32's smallest normal so
that tiny blocks never divide by zero), codes = ``x / scale`` cast to ``torch.float8_e4m3fn``
(round to nearest even) after clamping to +-448 (what the cast does beyond 448, NaN or
saturation, differs across torch versions and devices).
Codes are the E4M3 bit patterns as uint8; value = ``e4m3(code) * scale``.
"""

from __future__ import annotations

import torch

E4M3_MAX = 448.0
_FLOAT32_TINY = torch.finfo(torch.float32).tiny


def round_to_e4m3(x: torch.Tensor) -> torch.Tensor:
    """Round float values in ``[-448, 448]`` to the nearest E4M3 value (RNE); float32 out."""
    return x.float().to(torch.float8_e4m3fn).float()


def e4m3_to_bits(x: torch.Tensor) -> torch.Tensor:
    """uint8 E4M3 bit patterns of values that are exactly representable in E4M3."""
    return x.float().to(torch.float8_e4m3fn).view(torch.uint8)


def e4m3_from_bits(bits: torch.Tensor) -> torch.Tensor:
    """float32 values of uint8 E4M3 bit patterns."""
    if bits.dtype != torch.uint8:
        raise TypeError(f"E4M3 bit patterns must be uint8, got {bits.dtype}")
    return bits.view(torch.float8_e4m3fn).float()


def fit_fp8_scales(blocks: torch.Tensor) -> torch.Tensor:
    """Per-block scale ``amax / 448``: float32 ``(..., n_blocks, block)`` -> ``(..., n_blocks)``."""
    amax = blocks.abs().amax(dim=-1)
    # Dividing by a device tensor, not a Python number: CUDA turns division by a scalar into
    # multiplication by its reciprocal, which can differ from CPU results by one ulp.
    scale = (amax / amax.new_tensor(E4M3_MAX)).clamp(min=_FLOAT32_TINY)
    return torch.where(amax > 0, scale, torch.ones_like(scale))


def encode_e4m3(x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """uint8 E4M3 bit patterns of ``x / scale`` saturated to +-448 (``scale`` broadcasts)."""
    scaled = (x / scale).clamp(-E4M3_MAX, E4M3_MAX)
    return e4m3_to_bits(scaled)


def decode_e4m3(codes: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """float32 values ``e4m3(codes) * scale``; ``codes`` uint8 bit patterns."""
    return e4m3_from_bits(codes) * scale
