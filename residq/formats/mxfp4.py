"""MXFP4 (OCP microscaling): E2M1 elements, E8M0 power-of-two scale per 32 (ALGORITHMS.md 1).

Shared exponent of a block with ``amax > 0``, clamped to E8M0's range ``[-127, 127]``:

- ``"ceil"`` (default): ``e = ceil(log2(amax / 6))``, the smallest ``e`` with ``6 * 2^e >= amax``,
  so nothing saturates;
- ``"floor_ocp"`` (the OCP spec's rule): ``e = floor(log2(amax)) - 2``; values in
  ``(6 * 2^e, 8 * 2^e)`` saturate to 6.

An all-zero block gets ``e = 0``. The scale is ``2^e`` (float32, exact: ``2^-127`` is a float32
subnormal); code ``q = E2M1(x / 2^e)``; value ``q * 2^e``.

Exponents come from ``torch.frexp`` (exact), not from a floating ``log2``: with
``amax = m * 2^E``, ``m`` in ``[0.5, 1)``, ``floor(log2(amax)) = E - 1`` and
``ceil(log2(amax / 6)) = E - 3`` if ``m <= 0.75`` else ``E - 2``.
"""

from __future__ import annotations

import torch

from residq.formats.e2m1 import e2m1_round, e2m1_values

MXFP4_BLOCK = 32
E8M0_MIN_EXPONENT = -127
E8M0_MAX_EXPONENT = 127
E8M0_BIAS = 127


def mxfp4_shared_exponent(amax: torch.Tensor, rule: str = "ceil") -> torch.Tensor:
    """int32 shared exponents of blocks with the given float32 ``amax`` (any shape); 0 for 0."""
    mantissa, exponent = torch.frexp(amax.float())
    if rule == "ceil":
        shared = torch.where(mantissa <= 0.75, exponent - 3, exponent - 2)
    elif rule == "floor_ocp":
        shared = exponent - 3
    else:
        raise ValueError(f"MXFP4 exponent rule must be 'ceil' or 'floor_ocp', got {rule!r}")
    shared = shared.clamp(E8M0_MIN_EXPONENT, E8M0_MAX_EXPONENT)
    return torch.where(amax > 0, shared, torch.zeros_like(shared)).to(torch.int32)


def power_of_two(exponent: torch.Tensor) -> torch.Tensor:
    """float32 ``2^exponent`` for integer exponents in ``[-127, 127]`` (exact)."""
    return torch.ldexp(torch.ones_like(exponent, dtype=torch.float32), exponent)


def scale_exponent(scale: torch.Tensor) -> torch.Tensor:
    """int32 ``e`` of power-of-two float32 scales ``2^e`` (exact inverse of ``power_of_two``)."""
    mantissa, exponent = torch.frexp(scale.float())
    if not bool((mantissa == 0.5).all()):
        raise ValueError("MXFP4 scales must be exact powers of two")
    return (exponent - 1).to(torch.int32)


def fit_mxfp4_scales(blocks: torch.Tensor, rule: str = "ceil") -> torch.Tensor:
    """Power-of-two block scales: float32 ``(..., n_blocks, 32)`` -> ``(..., n_blocks)``."""
    return power_of_two(mxfp4_shared_exponent(blocks.abs().amax(dim=-1), rule))


def encode_mxfp4(x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """uint8 E2M1 codes of ``x / 2^e``; ``scale`` (``2^e``) broadcasts to ``x``."""
    return e2m1_round(x / scale)


def decode_mxfp4(codes: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """float32 values ``e2m1(codes) * 2^e``."""
    return e2m1_values(codes) * scale
