"""Reference (torch) block quantizers of the three packed 4-bit formats the kernels consume.

Every format quantizes rows ``(rows, K)`` in blocks along K (ALGORITHMS.md section 1) and packs
to a dict (keys as ``residq.formats.pack``):

============  =====  ========================================  ================================
format        block  ``scale``                                 ``global_scale``
============  =====  ========================================  ================================
``nvfp4``     16     uint8 ``(rows, K/16)`` E4M3 bytes ``s``    float32 ``()`` ``g``
``mxfp4``     32     uint8 ``(rows, K/32)`` E8M0 bytes ``e+127``  -
``int4``      128    float16 ``(rows, K/128)`` step             -
============  =====  ========================================  ================================

``codes`` is uint8 ``(rows, K/2)``, two 4-bit codes per byte, low nibble first (E2M1 codes for
the FP4 formats, ``q + 8`` for INT4). Values: NVFP4 ``(e2m1 * s) * g`` with
``g = amax/(6*448)`` (1 for all-zero input) and ``s = e4m3(clamp(amax_b/(6g), 2^-9, 448))``
(1 for an all-zero block); MXFP4 ``e2m1 * 2^e``, ``e = ceil(log2(amax_b/6))`` (0 for a zero
block); INT4 ``q * step``, ``step = fp16(amax_b / 7)`` (1 for a zero block),
``q = clamp(round_half_even(x / step), -8, 7)``. K must be a multiple of the block.
"""

from __future__ import annotations

import torch

from residq.kernels.fp4_codes import (
    E2M1_MAX,
    E4M3_MAX,
    E4M3_MIN_SUBNORMAL,
    E8M0_BIAS,
    INT4_OFFSET,
    e2m1_decode,
    e2m1_encode,
    e4m3_bits,
    e4m3_values,
    e8m0_values,
    mx_exponent_ceil,
    pack_nibbles,
    unpack_nibbles,
)

BLOCK_SIZES = {"nvfp4": 16, "mxfp4": 32, "int4": 128}
FORMAT_IDS = {"nvfp4": 0, "mxfp4": 1, "int4": 2}  # the kernels' FMT constexpr
FP4_FORMATS = ("nvfp4", "mxfp4")  # e2m1 times its block scale is exact in bf16 (INT4 q * step is not)
FP16_MIN_SUBNORMAL = 2.0**-24
FP16_MAX = 65504.0
_FLOAT32_TINY = torch.finfo(torch.float32).tiny


def block_size(fmt: str) -> int:
    """Elements per scale block of ``fmt`` (``nvfp4``, ``mxfp4`` or ``int4``)."""
    if fmt not in BLOCK_SIZES:
        raise ValueError(f"unknown 4-bit format {fmt!r}; expected one of {sorted(BLOCK_SIZES)}")
    return BLOCK_SIZES[fmt]


def check_k(k: int, fmt: str) -> None:
    """Raise unless K is a positive multiple of ``fmt``'s block size."""
    block = block_size(fmt)
    if k <= 0 or k % block:
        raise ValueError(f"{fmt} needs K to be a positive multiple of {block}, got K={k}")


def nvfp4_global_scale(x: torch.Tensor) -> torch.Tensor:
    """float32 ``()`` ``amax(|x|) / (6 * 448)``, floored at float32 tiny; 1.0 for all-zero x."""
    amax = x.detach().abs().amax().float()
    g = (amax / (E2M1_MAX * E4M3_MAX)).clamp(min=_FLOAT32_TINY)
    return torch.where(amax > 0, g, torch.ones_like(g))


def _blocks(x: torch.Tensor, fmt: str) -> torch.Tensor:
    check_k(x.shape[-1], fmt)
    return x.float().reshape(*x.shape[:-1], -1, block_size(fmt))


def quantize_blocks(
    x: torch.Tensor, fmt: str, global_scale: torch.Tensor | None = None
) -> dict[str, torch.Tensor]:
    """Quantize and pack ``x`` ``(rows, K)`` (any float dtype) to ``fmt``; layout in the docstring.

    ``global_scale`` (NVFP4 only): a float32 scalar to use instead of the dynamic amax one.
    """
    blocks = _blocks(x, fmt)
    amax = blocks.abs().amax(dim=-1)
    if fmt == "nvfp4":
        g = nvfp4_global_scale(x) if global_scale is None else global_scale.float().reshape(())
        g = g.to(blocks.device)
        wanted = (amax / (E2M1_MAX * g)).clamp(E4M3_MIN_SUBNORMAL, E4M3_MAX)
        scale = torch.where(amax > 0, e4m3_values(e4m3_bits(wanted)), torch.ones_like(amax))
        codes = e2m1_encode(blocks / (scale.unsqueeze(-1) * g))
        packed = {"scale": e4m3_bits(scale), "global_scale": g.clone()}
    elif fmt == "mxfp4":
        exponent = mx_exponent_ceil(amax)
        step = torch.ldexp(torch.ones_like(amax), exponent)
        codes = e2m1_encode(blocks / step.unsqueeze(-1))
        packed = {"scale": (exponent + E8M0_BIAS).to(torch.uint8)}
    else:
        raw = torch.where(amax > 0, amax / 7.0, torch.ones_like(amax))
        step = raw.clamp(FP16_MIN_SUBNORMAL, FP16_MAX).to(torch.float16)
        q = torch.round(blocks / step.float().unsqueeze(-1)).clamp(-8, 7)
        codes = (q + INT4_OFFSET).to(torch.uint8)
        packed = {"scale": step}
    packed["codes"] = pack_nibbles(codes.reshape(*x.shape[:-1], -1))
    return packed


def block_scale_values(packed: dict[str, torch.Tensor], fmt: str) -> torch.Tensor:
    """float32 ``(rows, K/block)`` block scales (E4M3 ``s``, ``2^e`` or the INT4 step)."""
    scale = packed["scale"]
    if fmt == "nvfp4":
        return e4m3_values(scale)
    if fmt == "mxfp4":
        return e8m0_values(scale)
    block_size(fmt)
    return scale.float()


def element_values(packed: dict[str, torch.Tensor], fmt: str) -> torch.Tensor:
    """float32 ``(rows, K)`` unscaled element values (E2M1 values or INT4 ``q``)."""
    codes = unpack_nibbles(packed["codes"])
    if fmt == "int4":
        return codes.float() - INT4_OFFSET
    return e2m1_decode(codes)


def dequantize_blocks(packed: dict[str, torch.Tensor], fmt: str) -> torch.Tensor:
    """float32 ``(rows, K)`` values of a packed tensor (NVFP4: ``(e2m1 * s) * g``)."""
    elements = element_values(packed, fmt)
    rows, k = elements.shape
    scale = block_scale_values(packed, fmt)
    values = elements.reshape(rows, -1, block_size(fmt)) * scale.unsqueeze(-1)
    values = values.reshape(rows, k)
    if fmt == "nvfp4":
        values = values * packed["global_scale"].float()
    return values
