"""Decode a packed FP4 operand to bf16 values in global memory: the first half of W4A4's
"decoded" path (``w4a4.launch(..., config={"path": "decoded"})``).

``decode(packed, fmt)`` turns a packed NVFP4 or MXFP4 operand ``(rows, K)`` (``codes`` uint8
``(rows, K/2)`` and block ``scale``, see ``block_formats.py``) into the bf16 tensor
``e2m1 * block_scale`` ``(rows, K)``. These products are exact in bf16 (ALGORITHMS.md 1:
NVFP4 ``e2m1 * e4m3``, MXFP4 ``e2m1 * 2^e``), so a bf16 GEMM with fp32 accumulation on the
decoded operands followed by the global scales gives the same result as decoding in registers,
up to fp32 summation order. NVFP4's global scale is not applied here (``e2m1 * e4m3 * g`` is not
exact in bf16): the GEMM's epilogue applies it.

Why a separate pass: Hopper has no FP4 tensor cores, and a GEMM that decodes both 4-bit
operands in registers re-decodes every activation tile N/BLOCK_N times and every weight tile
M/BLOCK_M times. For prefill-sized M it is cheaper to decode each operand once (bandwidth
bound: 0.56 bytes read and 2 written per element) and let a pipelined bf16 tensor-core GEMM
read the result. The decoded weight is a transient buffer; the stored weight stays packed.
INT4 group-128 is not offered: ``q * step`` (fp16 step) is not exact in 16 bits.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from residq.kernels.block_formats import FORMAT_IDS, FP4_FORMATS, check_k
from residq.kernels.triton_tiles import load_decoded_tile

BLOCK_ROWS, BLOCK_COLS = 16, 256


@triton.jit
def _bf16_rne(v):
    """float32 -> bf16 rounded to nearest even (finite values), as torch and the GPU round."""
    bits = v.to(tl.uint32, bitcast=True)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    return rounded.to(tl.uint16).to(tl.bfloat16, bitcast=True)


@triton.jit
def _decode_kernel(codes_ptr, scale_ptr, g_ptr, out_ptr, rows, K, out_stride,
                   FMT: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_K: tl.constexpr,
                   USE_ASM: tl.constexpr, GLOBAL: tl.constexpr, OUT_F16: tl.constexpr):
    """One ``[BLOCK_R, BLOCK_K]`` tile: ``out`` (int32 words, ``out_stride`` per row) gets the
    16-bit pair (even K, odd K) of each packed byte as one 32-bit word. ``GLOBAL``: times the
    NVFP4 global scale in float32, then rounded to bf16 (``OUT_F16``: fp16)."""
    offs_r = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
    k0 = tl.program_id(1) * BLOCK_K
    lo, hi, _ = load_decoded_tile(codes_ptr, scale_ptr, offs_r, rows, k0, K, K, FMT, BLOCK_K, True, USE_ASM)
    if GLOBAL:
        g = tl.load(g_ptr)
        lo = lo.to(tl.float32) * g
        hi = hi.to(tl.float32) * g
    if OUT_F16:
        lo = lo.to(tl.float16)
        hi = hi.to(tl.float16)
    elif GLOBAL:  # round to nearest even by hand: Triton's CPU interpreter truncates to bf16
        lo = _bf16_rne(lo)
        hi = _bf16_rne(hi)
    lo_bits = lo.to(tl.uint16, bitcast=True).to(tl.uint32)
    hi_bits = hi.to(tl.uint16, bitcast=True).to(tl.uint32)
    word = (lo_bits | (hi_bits << 16)).to(tl.int32, bitcast=True)
    cols = k0 // 2 + tl.arange(0, BLOCK_K // 2)
    mask = (offs_r < rows)[:, None] & (cols < K // 2)[None, :]
    tl.store(out_ptr + offs_r[:, None] * out_stride + cols[None, :], word, mask=mask)


def reference(packed: dict[str, torch.Tensor], fmt: str, global_scale: bool = False,
              dtype: torch.dtype = torch.bfloat16) -> torch.Tensor:
    """``(rows, K)`` ``e2m1 * block_scale`` (times NVFP4's global scale with ``global_scale``)
    computed in float32 by torch, rounded to ``dtype``."""
    from residq.kernels.block_formats import dequantize_blocks

    local = dict(packed)
    if "global_scale" in local and not global_scale:  # left to the GEMM's epilogue
        local["global_scale"] = torch.ones_like(local["global_scale"])
    return dequantize_blocks(local, fmt).to(dtype)


def decode(packed: dict[str, torch.Tensor], fmt: str, use_asm: bool | None = None,
           row_align: int = 1, global_scale: bool = False, dtype: torch.dtype = torch.bfloat16) -> torch.Tensor:
    """``(rows, K)`` values ``e2m1 * block_scale`` of a packed NVFP4/MXFP4 operand, bf16 (exact).

    ``packed["codes"]`` uint8 ``(rows, K/2)``, ``packed["scale"]`` uint8 ``(rows, K/SB)``.
    ``global_scale`` (NVFP4): multiply by ``packed["global_scale"]`` in float32 and round to
    ``dtype`` (bf16 or fp16), the same values as ``dequantize_blocks(packed).to(dtype)``: what a
    W4A16 GEMM with 16-bit weights needs (no longer exact, like any dequantized weight).
    ``row_align``: the result is a view whose row stride is K rounded up to this many elements
    (64 = 128-byte rows: a GEMM's K tiles then start on cache lines; ARCQuant's K + s often is
    not such a multiple). The padding columns are left unwritten.
    """
    if fmt not in FP4_FORMATS:
        raise ValueError(f"decode supports {list(FP4_FORMATS)} (exact in bf16), got {fmt!r}")
    codes, scale = packed["codes"], packed["scale"]
    rows, half = codes.shape
    k = 2 * half
    check_k(k, fmt)
    if not (codes.is_contiguous() and scale.is_contiguous()):
        raise ValueError("decode needs contiguous codes and scales")
    if dtype not in (torch.bfloat16, torch.float16) or (dtype == torch.float16 and fmt == "mxfp4"):
        raise ValueError(f"decode writes bf16 (or fp16 for nvfp4), got {dtype} for {fmt}")
    if dtype == torch.float16 and not global_scale:
        raise ValueError("fp16 output needs global_scale=True (the exact values are written in bf16)")
    apply_global = global_scale and fmt == "nvfp4"
    stride = -(-k // row_align) * row_align
    if stride % 2:
        raise ValueError(f"row_align must keep rows a whole number of 32-bit words, got {row_align}")
    buffer = torch.empty((rows, stride), dtype=dtype, device=codes.device)
    out = buffer[:, :k]
    grid = (triton.cdiv(rows, BLOCK_ROWS), triton.cdiv(k, BLOCK_COLS))
    g = packed["global_scale"] if apply_global else codes
    _decode_kernel[grid](codes, scale, g, buffer.view(torch.int32), rows, k, stride // 2, FMT=FORMAT_IDS[fmt],
                         GLOBAL=apply_global, OUT_F16=dtype == torch.float16,
                         BLOCK_R=BLOCK_ROWS, BLOCK_K=BLOCK_COLS,
                         USE_ASM=(codes.device.type != "cpu") if use_asm is None else use_asm,
                         num_warps=4)
    return out
