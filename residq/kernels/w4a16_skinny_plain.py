"""The skinny W4A16 kernel's per-lane sums with plain tensor arithmetic: what Triton's interpreter
(and ``use_asm=False``) runs in place of the inline PTX of ``w4a16_skinny_ptx.py``.

Same outputs as the PTX block for the same lane (``w4a16_skinny.py`` describes the layout), up to
fp32 summation order: exact e2m1 x block-scale values, times the activations, summed over one
128-column segment.
"""

from __future__ import annotations

import triton
import triton.language as tl

from residq.kernels.triton_codes import e2m1_value, e4m3_value, power_of_two


@triton.jit
def _lane_rows_plain(codes_ptr, scale_ptr, row, seg, N, K, xe, xo, FMT: tl.constexpr):
    """Sums over one 128-column segment of rows ``row`` ``[P, 1]`` times x ``[P, 64]``."""
    SB: tl.constexpr = 16 if FMT == 0 else (32 if FMT == 1 else 128)
    j = tl.arange(0, 64)[None, :]  # byte of the 128-column segment
    kk = seg * 128 + 2 * j
    ok = (row < N) & (kk < K)
    raw = tl.load(codes_ptr + row * (K // 2) + seg * 64 + j, mask=ok, other=0x88 if FMT == 2 else 0)
    wide = raw.to(tl.int32)
    if FMT == 2:  # the INT4 step is applied by the caller, after the segment's sum
        lo = ((wide & 15) - 8).to(tl.float32)
        hi = ((wide >> 4) - 8).to(tl.float32)
    else:
        sraw = tl.load(scale_ptr + row * (K // SB) + kk // SB, mask=ok, other=0).to(tl.int32)
        step = e4m3_value(sraw) if FMT == 0 else power_of_two(sraw - 127)
        lo = e2m1_value(wide & 15) * step
        hi = e2m1_value(wide >> 4) * step
    return tl.sum(lo * xe + hi * xo, axis=1)[:, None]


@triton.jit
def lane_segment_plain(codes_ptr, scale_ptr, x_ptr, row_a, row_b, q, seg, M, N, K, stride_xm,
                        FMT: tl.constexpr, T: tl.constexpr):
    """``skinny_mma_ptx``'s outputs for token tile T summed over the lane's two halves, with
    plain tensor arithmetic: c0, c1, c2, c3, ``[P, 1]`` each."""
    j = tl.arange(0, 64)[None, :]
    kk = seg * 128 + 2 * j
    token0 = T * 8 + 2 * q
    x_ok0 = (token0 < M) & (kk < K)
    x_ok1 = (token0 + 1 < M) & (kk < K)
    xe0 = tl.load(x_ptr + token0 * stride_xm + kk, mask=x_ok0, other=0.0).to(tl.float32)
    xo0 = tl.load(x_ptr + token0 * stride_xm + kk + 1, mask=x_ok0, other=0.0).to(tl.float32)
    xe1 = tl.load(x_ptr + (token0 + 1) * stride_xm + kk, mask=x_ok1, other=0.0).to(tl.float32)
    xo1 = tl.load(x_ptr + (token0 + 1) * stride_xm + kk + 1, mask=x_ok1, other=0.0).to(tl.float32)
    c0 = _lane_rows_plain(codes_ptr, scale_ptr, row_a, seg, N, K, xe0, xo0, FMT)
    c1 = _lane_rows_plain(codes_ptr, scale_ptr, row_a, seg, N, K, xe1, xo1, FMT)
    c2 = _lane_rows_plain(codes_ptr, scale_ptr, row_b, seg, N, K, xe0, xo0, FMT)
    c3 = _lane_rows_plain(codes_ptr, scale_ptr, row_b, seg, N, K, xe1, xo1, FMT)
    return c0, c1, c2, c3
