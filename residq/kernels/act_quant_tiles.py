"""Triton device functions of the activation quantizer (``act_quant.py``): a tile loaded as the
two halves of each block, the blocks' codes and scales, the packed nibbles, ARHQ's ``X A``.

A thread holds whole blocks: each half of a block is one 16-byte load of 16-bit activations, so
the block maximum and the per-block scale need no data exchange between threads (with the whole
16-element block as one tensor dimension, Triton split each block over two threads).
Bits follow ``block_formats.quantize_blocks`` exactly (ALGORITHMS.md 1).
"""

from __future__ import annotations

import triton
import triton.language as tl

from residq.kernels.triton_codes import (
    e2m1_encode,
    e2m1_value,
    e4m3_round,
    mx_exponent_ceil,
    power_of_two,
    rint,
)
from residq.kernels.triton_mma import mma


@triton.jit
def divide_rn(x, d, FAST_DIV: tl.constexpr, LIFT: tl.constexpr):
    """Correctly rounded ``x / d[:, :, None]`` (x ``[BM, NB, H]``, per-block d ``[BM, NB]`` > 0).

    FAST_DIV: Markstein's sequence (Handbook of Floating-Point Arithmetic, thm 4.11): with
    ``y = RN(1/d)`` (one IEEE division per block), ``q = RN(x y)``, the exact remainder
    ``r = x - q d`` (one FMA) and ``RN(q + r y)`` is the correctly rounded quotient. LIFT:
    blocks with ``d < 2^-64`` are scaled by ``2^64`` first so ``1/d`` cannot overflow (callers
    that know ``d >= 2^-64`` skip it: one multiply less per element).
    """
    if FAST_DIV:
        if LIFT:
            lift = tl.where(d < 2.0**-64, 2.0**64, 1.0)
            d = d * lift
            x = x * lift[:, :, None]
        y = tl.math.div_rn(1.0, d)[:, :, None]
        q = x * y
        # -d per block, not -q per element: Triton writes a negation as 0 - v, which ptxas
        # cannot fold into the FMA (0 - v is +0 for v = +0), so it would cost one add per element
        r = tl.fma(q, (-d)[:, :, None], x)
        return tl.fma(r, y, q)
    else:
        return tl.math.div_rn(x, d[:, :, None])


@triton.jit
def nvfp4_codes(lo, hi, d, g, FAST_DIV: tl.constexpr):
    """E2M1 codes of ``lo / d`` and ``hi / d`` (``d = block scale * g``). With ``g >= 2^-55``
    every ``d >= 2^-64`` (block scales are >= 2^-9), so the division needs no lift: one uniform
    branch on the scalar g instead of a multiply per element."""
    if g >= 2.0**-55:
        codes_lo = e2m1_encode(divide_rn(lo, d, FAST_DIV, False))
        codes_hi = e2m1_encode(divide_rn(hi, d, FAST_DIV, False))
    else:
        codes_lo = e2m1_encode(divide_rn(lo, d, FAST_DIV, True))
        codes_hi = e2m1_encode(divide_rn(hi, d, FAST_DIV, True))
    return codes_lo, codes_hi


@triton.jit
def quantize_block_halves(lo, hi, g, FMT: tl.constexpr, FAST_DIV: tl.constexpr = False,
                          HW_FP8: tl.constexpr = False):
    """Quantize blocks given as their two halves, lo and hi float32 ``[BM, NB, SB/2]``.
    FAST_DIV: divisions by Markstein's sequence (``divide_rn``); HW_FP8: E4M3 scales by the
    GPU's conversion instruction (sm_89+). Both give the same bits as the plain arithmetic.

    Returns int32 codes ``(codes_lo, codes_hi)``, the stored scales ``[BM, NB]`` and the
    dequantized ``(values_lo, values_hi)``. A thread holds whole blocks this way (each half is
    one 16-byte load), so the block maximum and the per-block scale need no data exchange.
    """
    amax = tl.maximum(tl.max(tl.abs(lo), axis=2), tl.max(tl.abs(hi), axis=2))
    if FMT == 0:
        wanted = tl.math.div_rn(amax, 6.0 * g)
        wanted = tl.minimum(tl.maximum(wanted, 2.0**-9), 448.0)
        bits, scale = e4m3_round(wanted, HW_FP8)
        bits = tl.where(amax > 0, bits, 56)
        scale = tl.where(amax > 0, scale, 1.0)
        codes_lo, codes_hi = nvfp4_codes(lo, hi, scale * g, g, FAST_DIV)
        values_lo = (e2m1_value(codes_lo) * scale[:, :, None]) * g
        values_hi = (e2m1_value(codes_hi) * scale[:, :, None]) * g
        stored = bits.to(tl.uint8)
    elif FMT == 1:
        exponent = mx_exponent_ceil(amax)
        step = power_of_two(exponent)
        # x / 2^e == x * 2^-e exactly (a power of two; both round the same real once)
        inverse = power_of_two(-exponent)[:, :, None]
        codes_lo = e2m1_encode(lo * inverse)
        codes_hi = e2m1_encode(hi * inverse)
        values_lo = e2m1_value(codes_lo) * step[:, :, None]
        values_hi = e2m1_value(codes_hi) * step[:, :, None]
        stored = (exponent + 127).to(tl.uint8)
    else:
        raw = tl.where(amax > 0, tl.math.div_rn(amax, 7.0), 1.0)
        step16 = tl.minimum(tl.maximum(raw, 2.0**-24), 65504.0).to(tl.float16)
        step = step16.to(tl.float32)
        # steps are float16 values >= 2^-24: the division needs no lift
        q_lo = tl.minimum(tl.maximum(rint(divide_rn(lo, step, FAST_DIV, False)), -8.0), 7.0)
        q_hi = tl.minimum(tl.maximum(rint(divide_rn(hi, step, FAST_DIV, False)), -8.0), 7.0)
        codes_lo = q_lo.to(tl.int32) + 8
        codes_hi = q_hi.to(tl.int32) + 8
        values_lo = q_lo * step[:, :, None]
        values_hi = q_hi * step[:, :, None]
        stored = step16
    return codes_lo, codes_hi, stored, values_lo, values_hi


@triton.jit
def pack_pairs(codes):
    """int32 codes ``[BM, NB, H]`` -> uint8 ``[BM, NB, H/2]``: code 2j in the low nibble."""
    even, odd = tl.split(tl.reshape(codes, [codes.shape[0], codes.shape[1], codes.shape[2] // 2, 2]))
    return (even + (odd << 4)).to(tl.uint8)  # + not |: one LEA per pair


@triton.jit
def load_columns(x_ptr, perm_ptr, rows, cols, col_end, has_residual_cols, M, K, S, stride_xm,
                  SB: tl.constexpr, HAS_PERM: tl.constexpr, HAS_RESIDUAL: tl.constexpr):
    """float32 ``[BM, NB, H]`` of the source columns of output columns ``cols`` ``[NB, H]``
    (col >= K maps to the residual's source col - S; cols >= col_end, a multiple of SB: 0).
    ``has_residual_cols``: whether any of ``cols`` is >= K (a scalar the caller knows)."""
    valid = cols < tl.multiple_of(col_end, SB)  # whole blocks in or out: vector loads
    row_base = x_ptr + rows[:, None, None] * stride_xm
    mask = (rows < M)[:, None, None] & valid[None, :, :]
    if HAS_PERM:
        src = tl.where(cols < K, cols, cols - S) if HAS_RESIDUAL else cols
        src = tl.load(perm_ptr + src, mask=valid, other=0)
        x = tl.load(row_base + src[None, :, :], mask=mask, other=0.0)
    elif HAS_RESIDUAL:
        # two contiguous loads (main columns, and the residual's sources S columns back) instead
        # of one gather: S written as a multiple of 16 keeps both 16-byte vector loads; the
        # second only in the chunks that hold residual blocks
        in_main = (cols < K)[None, :, :]
        x = tl.load(row_base + cols[None, :, :], mask=mask & in_main, other=0.0)
        if has_residual_cols:  # a scalar: no reduction over the distributed cols tensor
            x_res = tl.load(row_base + (cols - (S // 16) * 16)[None, :, :], mask=mask & ~in_main, other=0.0)
            x = tl.where(in_main, x, x_res)
    else:
        x = tl.load(row_base + cols[None, :, :], mask=mask, other=0.0)
    return x.to(tl.float32)


@triton.jit
def load_block_halves(x_ptr, perm_ptr, rows, block0, M, K, S, stride_xm, SB: tl.constexpr,
                      NB: tl.constexpr, HAS_PERM: tl.constexpr, HAS_RESIDUAL: tl.constexpr = True,
                      col_end=None):
    """The NB blocks from block ``block0`` (a scalar) of rows ``rows`` (``[BM]``) as two
    halves, float32 ``[BM, NB, SB/2]`` each, and their output columns ``[NB, SB/2]``
    (``quantize_block_halves``'s operands); blocks at or past ``col_end`` (default K + S) read as 0."""
    if col_end is None:
        col_end = K + (S // SB) * SB
    H: tl.constexpr = SB // 2
    cols_lo = block0 * SB + (tl.arange(0, NB) * SB)[:, None] + tl.arange(0, H)[None, :]
    cols_hi = cols_lo + H
    has_residual_cols = (block0 + NB) * SB > K
    lo = load_columns(x_ptr, perm_ptr, rows, cols_lo, col_end, has_residual_cols, M, K, S, stride_xm, SB,
                       HAS_PERM, HAS_RESIDUAL)
    hi = load_columns(x_ptr, perm_ptr, rows, cols_hi, col_end, has_residual_cols, M, K, S, stride_xm, SB,
                       HAS_PERM, HAS_RESIDUAL)
    return lo, hi, cols_lo, cols_hi


@triton.jit
def lowrank_accumulate(xa, x, cols, a_ptr, K, R, R_PAD: tl.constexpr, F32_DOT: tl.constexpr):
    """xa ``[BM, R_PAD]`` += x ``[BM, NB, H]`` (main columns only) @ A[cols, :]."""
    BM: tl.constexpr = x.shape[0]
    n: tl.constexpr = x.shape[1] * x.shape[2]
    main = tl.reshape(tl.where((cols < K)[None, :, :], x, 0.0), [BM, n])
    flat_cols = tl.reshape(cols, [n])
    r_offs = tl.arange(0, R_PAD)
    a = tl.load(a_ptr + flat_cols[:, None] * R + r_offs[None, :],
                mask=(flat_cols < K)[:, None] & (r_offs < R)[None, :], other=0.0)
    return mma(main.to(a.dtype), a, xa, F32_DOT)
