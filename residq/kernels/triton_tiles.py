"""Load one K-slice of a packed 4-bit operand and decode it to 16-bit values in registers.

A packed operand (weights ``(N, K)`` or quantized activations ``(M, K)``) is ``codes`` uint8
``(rows, K/2)`` plus block scales ``(rows, K/SB)`` (see ``block_formats.py``). For a tile of
``rows`` and the K range ``[k0, k0 + BLOCK_K)`` this returns the low-nibble (even K) and
high-nibble (odd K) values as ``[R, BLOCK_K/2]`` tiles:

- FMT 0 (NVFP4) and 1 (MXFP4): ``e2m1 * block_scale`` (exact in fp16 for NVFP4, exact in bf16
  for both), the global scale left for the epilogue;
- FMT 2 (INT4): the integer ``q`` (exact), plus the float32 step ``[R, 1]`` for the caller to
  apply after the tile product (``q * step`` is not exact in 16 bits); needs BLOCK_K == 128.

Out-of-range rows/columns decode to 0.
"""

from __future__ import annotations

import triton
import triton.language as tl

from residq.kernels.triton_codes import (
    block_scale_values,
    fp4_byte_values,
    int4_byte_times16_i8,
    int4_byte_values,
)


@triton.jit
def load_decoded_tile(codes_ptr, scale_ptr, rows, n_rows, k0, k_limit, k_total,
                      FMT: tl.constexpr, BLOCK_K: tl.constexpr, BF16: tl.constexpr,
                      USE_ASM: tl.constexpr, INT8: tl.constexpr = False):
    """(lo ``[R, BLOCK_K/2]``, hi ``[R, BLOCK_K/2]``, step float32 ``[R, G]``), G = BLOCK_K/SB.

    ``k_total`` is the row length in elements (the stride), ``k_limit`` the first column not
    to read (a multiple of SB). ``INT8`` (INT4 only): values as int8 ``16 * q`` instead.
    """
    SB: tl.constexpr = 16 if FMT == 0 else (32 if FMT == 1 else 128)
    G: tl.constexpr = BLOCK_K // SB
    HALF: tl.constexpr = BLOCK_K // 2
    byte_cols = k0 // 2 + tl.arange(0, HALF)
    row_ok = rows < n_rows
    empty_byte: tl.constexpr = 0x88 if FMT == 2 else 0  # decodes to 0 in every format
    raw = tl.load(codes_ptr + rows[:, None] * (k_total // 2) + byte_cols[None, :],
                  mask=row_ok[:, None] & (byte_cols < k_limit // 2)[None, :], other=empty_byte)
    scale_cols = k0 // SB + tl.arange(0, G)
    scale_raw = tl.load(scale_ptr + rows[:, None] * (k_total // SB) + scale_cols[None, :],
                        mask=row_ok[:, None] & (scale_cols < k_limit // SB)[None, :], other=0)
    step = block_scale_values(scale_raw, FMT)
    if FMT == 2 and INT8:
        lo, hi = int4_byte_times16_i8(raw)
    elif FMT == 2:
        lo, hi = int4_byte_values(raw, BF16, USE_ASM)
    else:
        lo, hi = scaled_fp4_values(raw, step, FMT, BF16, USE_ASM)
    return lo, hi, step


@triton.jit
def scaled_fp4_values(raw, step, FMT: tl.constexpr, BF16: tl.constexpr, USE_ASM: tl.constexpr):
    """NVFP4 / MXFP4 codes ``raw`` uint8 ``[R, HALF]`` (two per byte) and their float32 block
    scales ``step`` ``[R, HALF / (SB/2)]`` -> (even K, odd K) values ``e2m1 * scale``, each
    ``[R, HALF]`` fp16 or bf16 (exact)."""
    SB: tl.constexpr = 16 if FMT == 0 else 32
    R: tl.constexpr = raw.shape[0]
    HALF: tl.constexpr = raw.shape[1]
    G: tl.constexpr = 2 * HALF // SB
    lo, hi = fp4_byte_values(raw, BF16, USE_ASM)
    lo = tl.reshape(lo, [R, G, SB // 2])
    hi = tl.reshape(hi, [R, G, SB // 2])
    if USE_ASM:  # 16-bit products are exact
        scale16 = step.to(lo.dtype)[:, :, None]
        lo = lo * scale16
        hi = hi * scale16
    else:  # the interpreter has no bf16 arithmetic: multiply in fp32 (still exact)
        lo = (lo.to(tl.float32) * step[:, :, None]).to(lo.dtype)
        hi = (hi.to(tl.float32) * step[:, :, None]).to(hi.dtype)
    return tl.reshape(lo, [R, HALF]), tl.reshape(hi, [R, HALF])


@triton.jit
def to_dot_order(t, R: tl.constexpr, HALF: tl.constexpr):
    """Permute the K positions of a ``[R, HALF]`` tile (HALF a multiple of 16) into "dot order".

    A Hopper 16-bit MMA operand held in registers gives lane ``q`` (of 4) the K indices
    ``{2q, 2q+1, 2q+8, 2q+9}`` of every 16-wide slab. Placing memory position
    ``p = q*(HALF/4) + s*4 + h*2 + i`` at dot index ``s*16 + h*8 + q*2 + i`` makes each lane's
    values one contiguous run of HALF/4 bytes, so the packed codes load 16 bytes at a time.
    The other operand must be permuted alike; the sum over K is unchanged.
    """
    S: tl.constexpr = HALF // 16
    t5 = tl.reshape(t, [R, 4, S, 2, 2])
    return tl.reshape(tl.permute(t5, (0, 2, 3, 1, 4)), [R, HALF])


@triton.jit
def to_dot_order_t(t, R: tl.constexpr, HALF: tl.constexpr):
    """``to_dot_order(t)`` transposed: ``[HALF, R]`` (for the operand that goes through shared memory)."""
    S: tl.constexpr = HALF // 16
    t5 = tl.reshape(t, [R, 4, S, 2, 2])
    return tl.reshape(tl.permute(t5, (2, 3, 1, 4, 0)), [HALF, R])
