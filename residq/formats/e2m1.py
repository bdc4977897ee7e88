"""The E2M1 (FP4) element grid shared by NVFP4 and MXFP4 (ALGORITHMS.md section 1).

Code layout (4 bits): ``code = sign << 3 | magnitude_index``, magnitudes
``{0, 0.5, 1, 1.5, 2, 3, 4, 6}`` for indices 0..7. Code 8 is -0; it decodes to +0.0 and is never
produced by ``e2m1_round``: exact zeros, -0.0 and negative values that round to zero all get
code 0, so zero has one canonical code.

Rounding is to the nearest representable magnitude with ties to the even index (even indices
0, 2, 4, 6 are the values 0, 1, 2, 4), and values beyond 6 saturate to 6. Ties therefore go:
0.25 -> 0, 0.75 -> 1, 1.25 -> 1, 1.75 -> 2, 2.5 -> 2, 3.5 -> 4, 5 -> 4.
"""

from __future__ import annotations

import functools

import torch

E2M1_MAX = 6.0
E2M1_MAGNITUDES = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)
E2M1_SIGN_BIT = 8

# Midpoints between consecutive magnitudes; midpoint i sits between indices i and i + 1.
_MIDPOINTS = (0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0)


@functools.lru_cache(maxsize=16)
def _strict_thresholds(device: torch.device) -> torch.Tensor:
    """float32 (7,): index = number of thresholds strictly below |x| gives ties-to-even.

    At midpoint i a tie rounds up exactly when index i + 1 is even (i odd). Rounding up at a
    tie means "round up when |x| >= midpoint", which for float32 is "|x| > the next float32
    below the midpoint"; so odd midpoints are nudged down by one ulp and a single strict
    comparison (``torch.bucketize`` with ``right=False``) implements both tie directions.
    Cached per device: no host-to-device copy per call (read-only; never modify it).
    """
    midpoints = torch.tensor(_MIDPOINTS, dtype=torch.float32, device=device)
    nudged = torch.nextafter(midpoints, torch.zeros_like(midpoints))
    odd = torch.arange(len(_MIDPOINTS), device=device) % 2 == 1
    return torch.where(odd, nudged, midpoints)


def e2m1_round(x: torch.Tensor) -> torch.Tensor:
    """E2M1 codes of values already divided by their scale.

    Args:
        x: any shape, any float dtype (computed in float32). NaN is not supported.

    Returns:
        uint8 codes in ``[0, 15]`` (never 8), same shape as ``x``; round to nearest, ties to
        even, saturating at +-6.
    """
    x32 = x.float()
    thresholds = _strict_thresholds(x32.device)
    magnitude_index = torch.bucketize(x32.abs().contiguous(), thresholds, right=False)
    negative = (x32 < 0) & (magnitude_index > 0)
    codes = magnitude_index + negative.to(magnitude_index.dtype) * E2M1_SIGN_BIT
    return codes.to(torch.uint8)


def e2m1_values(codes: torch.Tensor) -> torch.Tensor:
    """float32 values of E2M1 codes (any shape, integer dtype, values in ``[0, 15]``).

    Code 8 (-0) decodes to +0.0.
    """
    if codes.is_floating_point():
        raise TypeError(f"e2m1_values expects integer codes, got dtype {codes.dtype}")
    return _value_table(codes.device)[codes.long()]


@functools.lru_cache(maxsize=16)
def _value_table(device: torch.device) -> torch.Tensor:
    """float32 (16,) value of each code, cached per device (read-only)."""
    magnitudes = torch.tensor(E2M1_MAGNITUDES, dtype=torch.float32, device=device)
    table = torch.cat([magnitudes, -magnitudes])
    table[E2M1_SIGN_BIT] = 0.0
    return table
