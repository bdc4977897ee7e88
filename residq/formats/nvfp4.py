"""NVFP4: E2M1 elements, E4M3 scale per 16 elements, FP32 global scale (ALGORITHMS.md 1).

As NVIDIA's Model Optimizer defines it:

- global scale ``g = amax(|T|) / (6 * 448)`` over the whole tensor (weights: once; activations:
  per call, or a calibrated static value supplied by the caller); ``g = 1`` for an all-zero T;
- block scale ``s = cast_e4m3(clamp(amax_block / (6 * g), 2^-9, 448))``, all-zero block ``s = 1``;
- code ``q = E2M1(x / (s * g))``; value ``(q * s) * g``.

``q * s`` is exact in float32 (and bf16), and ``g`` is applied last, the way a Blackwell NVFP4
GEMM applies ``g_x * g_w`` after accumulating; so dequantized values here are what a GEMM sees.
"""

from __future__ import annotations

import torch

from residq.formats.e2m1 import E2M1_MAX, e2m1_round, e2m1_values
from residq.formats.fp8 import E4M3_MAX, round_to_e4m3

NVFP4_BLOCK = 16
NVFP4_SCALE_MIN = 2.0**-9  # smallest positive E4M3 value (subnormal)
_FLOAT32_TINY = torch.finfo(torch.float32).tiny


def nvfp4_global_scale(x: torch.Tensor) -> torch.Tensor:
    """float32 scalar (shape ``()``) ``amax(|x|) / (6 * 448)`` of ``x`` (any shape, float).

    1.0 when ``x`` is all zero; floored at float32's smallest normal so it is never 0.
    """
    amax = x.detach().abs().amax().float() if x.numel() else torch.zeros((), device=x.device)
    # Dividing by a device tensor, not a Python number: CUDA turns division by a scalar into
    # multiplication by its reciprocal, which can differ from CPU results by one ulp.
    scale = (amax / amax.new_tensor(E2M1_MAX * E4M3_MAX)).clamp(min=_FLOAT32_TINY)
    return torch.where(amax > 0, scale, torch.ones_like(scale))


def check_global_scale(global_scale: torch.Tensor | float) -> torch.Tensor:
    """A caller's global scale as a float32 scalar tensor, after checking it is positive."""
    g = torch.as_tensor(global_scale, dtype=torch.float32)
    if g.numel() != 1:
        raise ValueError(f"NVFP4 global_scale must be a scalar, got shape {tuple(g.shape)}")
    g = g.reshape(())
    if not bool(torch.isfinite(g)) or float(g) <= 0:
        raise ValueError(f"NVFP4 global_scale must be positive and finite, got {float(g)}")
    return g


def fit_nvfp4_scales(blocks: torch.Tensor, global_scale: torch.Tensor) -> torch.Tensor:
    """E4M3 block scales ``s``.

    Args:
        blocks: float32 ``(..., n_blocks, 16)``; a ragged last block zero-padded.
        global_scale: float32 scalar ``g``.

    Returns:
        float32 ``(..., n_blocks)``, every value exactly representable in E4M3.
    """
    amax = blocks.abs().amax(dim=-1)
    wanted = (amax / (E2M1_MAX * global_scale)).clamp(NVFP4_SCALE_MIN, E4M3_MAX)
    scale = round_to_e4m3(wanted)
    return torch.where(amax > 0, scale, torch.ones_like(scale))


def encode_nvfp4(x: torch.Tensor, scale: torch.Tensor, global_scale: torch.Tensor) -> torch.Tensor:
    """uint8 E2M1 codes of ``x / (s * g)``; ``scale`` broadcasts to ``x``, ``g`` a scalar."""
    return e2m1_round(x / (scale * global_scale))


def decode_nvfp4(
    codes: torch.Tensor, scale: torch.Tensor, global_scale: torch.Tensor
) -> torch.Tensor:
    """float32 values ``(e2m1(codes) * s) * g``."""
    return (e2m1_values(codes) * scale) * global_scale
