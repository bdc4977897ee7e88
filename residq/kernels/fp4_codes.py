"""Torch reference arithmetic of the 4-bit codes and scale bytes that the GPU kernels read/write.

Layouts (identical to ``residq.formats.packing``; kept here so kernels and their references do not
depend on that module's internals):

- E2M1 code (4 bits): ``sign << 3 | magnitude_index``, magnitudes ``[0, .5, 1, 1.5, 2, 3, 4, 6]``.
  Rounding: nearest, ties to the even index, saturating at 6; a value that rounds to magnitude 0
  gets the canonical code 0 (never 8, the "-0" code, which decodes to +0).
- Nibble packing: uint8 ``(..., K/2)``, ``byte[j] = code[2j] | code[2j+1] << 4``.
- E4M3 scale byte: the ``float8_e4m3fn`` bit pattern (uint8).
- E8M0 scale byte: biased exponent ``e + 127`` of the power of two ``2**e``.
- INT4 symmetric code ``q`` in ``[-8, 7]`` stored as the nibble ``q + 8``.
"""

from __future__ import annotations

import torch

E2M1_MAGNITUDES = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)
E2M1_MAX = 6.0
E4M3_MAX = 448.0
E4M3_MIN_SUBNORMAL = 2.0**-9
E8M0_BIAS = 127
INT4_OFFSET = 8

# |x| above threshold i (strictly) moves the magnitude index past i. Odd thresholds are ties that
# round up (to an even index), so they are compared with ">=", written here as "> previous float".
_E2M1_TIES_UP = (False, True, False, True, False, True, False)
_E2M1_MIDPOINTS = (0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0)


def e2m1_encode(v: torch.Tensor) -> torch.Tensor:
    """E2M1 codes of values already divided by their scale.

    Args:
        v: float32, any shape (NaN unsupported).

    Returns:
        uint8 codes in ``[0, 15]`` (never 8), same shape.
    """
    magnitude = v.float().abs()
    index = torch.zeros_like(magnitude, dtype=torch.int32)
    for midpoint, tie_up in zip(_E2M1_MIDPOINTS, _E2M1_TIES_UP):
        passed = magnitude >= midpoint if tie_up else magnitude > midpoint
        index += passed.to(torch.int32)
    negative = (v < 0) & (index > 0)
    return (index + 8 * negative.to(torch.int32)).to(torch.uint8)


def e2m1_decode(codes: torch.Tensor) -> torch.Tensor:
    """float32 values of E2M1 codes (integer tensor, values in ``[0, 15]``)."""
    magnitudes = torch.tensor(E2M1_MAGNITUDES, dtype=torch.float32, device=codes.device)
    table = torch.cat([magnitudes, -magnitudes])
    return table[codes.long()]


def pack_nibbles(codes: torch.Tensor) -> torch.Tensor:
    """uint8 ``(..., K)`` codes below 16 -> uint8 ``(..., K/2)``, low nibble first (K even)."""
    if codes.shape[-1] % 2:
        raise ValueError(f"pack_nibbles needs an even last dimension, got {codes.shape[-1]}")
    pairs = codes.to(torch.uint8).reshape(*codes.shape[:-1], -1, 2)
    return pairs[..., 0] | (pairs[..., 1] << 4)


def unpack_nibbles(packed: torch.Tensor) -> torch.Tensor:
    """uint8 ``(..., K/2)`` -> uint8 ``(..., K)`` codes, inverse of ``pack_nibbles``."""
    if packed.dtype != torch.uint8:
        raise TypeError(f"packed nibbles must be uint8, got {packed.dtype}")
    both = torch.stack([packed & 15, packed >> 4], dim=-1)
    return both.reshape(*packed.shape[:-1], -1)


def e4m3_bits(values: torch.Tensor) -> torch.Tensor:
    """uint8 E4M3 bit patterns of float values (rounded to nearest even, |v| <= 448)."""
    return values.float().to(torch.float8_e4m3fn).view(torch.uint8)


def e4m3_values(bits: torch.Tensor) -> torch.Tensor:
    """float32 values of uint8 E4M3 bit patterns."""
    if bits.dtype != torch.uint8:
        raise TypeError(f"E4M3 bit patterns must be uint8, got {bits.dtype}")
    return bits.view(torch.float8_e4m3fn).float()


def mx_exponent_ceil(amax: torch.Tensor) -> torch.Tensor:
    """int32 ``clamp(ceil(log2(amax / 6)), -127, 127)``; 0 where ``amax == 0``.

    Exact (``frexp``, no floating log): with ``amax = m * 2**E``, ``m`` in ``[0.5, 1)``, the
    smallest ``e`` with ``6 * 2**e >= amax`` is ``E - 3`` when ``m <= 0.75`` else ``E - 2``.
    """
    mantissa, exponent = torch.frexp(amax.float())
    e = torch.where(mantissa <= 0.75, exponent - 3, exponent - 2).clamp(-127, 127)
    return torch.where(amax > 0, e, torch.zeros_like(e)).to(torch.int32)


def e8m0_values(bits: torch.Tensor) -> torch.Tensor:
    """float32 ``2**(bits - 127)`` of uint8 E8M0 bytes (exact; byte 0 gives 2**-127)."""
    exponent = bits.to(torch.int32) - E8M0_BIAS
    return torch.ldexp(torch.ones_like(exponent, dtype=torch.float32), exponent)
