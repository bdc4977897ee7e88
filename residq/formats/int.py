"""Integer formats INT-b, b in {2, 3, 4, 8}, symmetric or asymmetric (ALGORITHMS.md section 1).

Symmetric: signed codes, ``scale = amax / (2^(b-1) - 1)``, ``q = clamp(round(x / scale),
-2^(b-1), 2^(b-1) - 1)``, value ``q * scale``. With scales fitted on the same data,
``|x / scale| <= 2^(b-1) - 1`` so the code ``-2^(b-1)`` only appears for values beyond the
fitted range (e.g. GPTQ's error feedback pushing a weight past the original amax); the clamp
keeps the full two's-complement range for them.

Asymmetric: unsigned codes in ``[0, 2^b - 1]`` with a zero point. The range is widened to
include zero (``lo = min(x, 0)``, ``hi = max(x, 0)``), ``scale = (hi - lo) / (2^b - 1)``,
``zero = round(-lo / scale)`` (an integer, so 0.0 is exactly representable),
``q = clamp(round(x / scale) + zero, 0, 2^b - 1)``, value ``(q - zero) * scale``.

Rounding is round-half-to-even (``torch.round``). All-zero blocks get ``scale = 1`` (and zero
point 0). Scales are stored in float16 (see ``packing.py``), so ``fit_int_scales`` returns
them already rounded to float16 (and clamped to its range ``[2^-24, 65504]``): the codes are
computed with the very scale that will be stored, which makes pack/unpack round trips exact.
"""

from __future__ import annotations

import torch

FP16_SCALE_MIN = 2.0**-24  # smallest positive float16 (subnormal)
FP16_SCALE_MAX = 65504.0  # largest finite float16


def int_code_range(bits: int, symmetric: bool) -> tuple[int, int]:
    """Inclusive ``(lowest, highest)`` code of INT-``bits``."""
    if symmetric:
        return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return 0, 2**bits - 1


def round_scale_to_fp16(scale: torch.Tensor) -> torch.Tensor:
    """Clamp positive float32 scales into float16's range and round them (RNE); float32 out."""
    return scale.clamp(FP16_SCALE_MIN, FP16_SCALE_MAX).to(torch.float16).float()


def fit_int_scales(
    blocks: torch.Tensor, bits: int, symmetric: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per-block scale (and zero point) of INT-``bits``.

    Args:
        blocks: float32 ``(..., n_blocks, block)``; ragged blocks zero-padded.

    Returns:
        ``(scale, zero)``: float32 ``(..., n_blocks)`` each (scale float16-exact); ``zero`` is
        None when ``symmetric``, else integer-valued in ``[0, 2^b - 1]``.
    """
    lowest, highest = int_code_range(bits, symmetric)
    # Dividing by a device tensor, not a Python number: CUDA turns division by a scalar into
    # multiplication by its reciprocal, which can differ from CPU results by one ulp.
    highest_t = blocks.new_tensor(float(highest))
    if symmetric:
        amax = blocks.abs().amax(dim=-1)
        raw = torch.where(amax > 0, amax / highest_t, torch.ones_like(amax))
        return round_scale_to_fp16(raw), None
    lo = blocks.amin(dim=-1).clamp(max=0.0)
    hi = blocks.amax(dim=-1).clamp(min=0.0)
    span = hi - lo
    raw = torch.where(span > 0, span / highest_t, torch.ones_like(span))
    scale = round_scale_to_fp16(raw)
    zero = torch.round(-lo / scale).clamp(lowest, highest)
    return scale, zero


def encode_int(
    x: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor | None, bits: int
) -> torch.Tensor:
    """INT-``bits`` codes of ``x`` given scales (and zero points) broadcastable to ``x``.

    Args:
        x: float32, any shape.
        scale: float32, broadcastable to ``x``.
        zero: None for symmetric, else float32 integer-valued, broadcastable to ``x``.

    Returns:
        symmetric: int8 codes in ``[-2^(b-1), 2^(b-1) - 1]``; asymmetric: uint8 codes in
        ``[0, 2^b - 1]``. Shape: ``x`` broadcast with the scales.
    """
    symmetric = zero is None
    lowest, highest = int_code_range(bits, symmetric)
    scaled = torch.round(x / scale)
    if not symmetric:
        scaled = scaled + zero
    codes = scaled.clamp(lowest, highest)
    return codes.to(torch.int8 if symmetric else torch.uint8)


def decode_int(codes: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor | None) -> torch.Tensor:
    """float32 values ``(q - zero) * scale`` (``q * scale`` when ``zero`` is None)."""
    q = codes.float()
    if zero is not None:
        q = q - zero
    return q * scale
