"""Tile order, global scales and epilogue shared by the W4A4 GEMM kernels (``w4a4.py``,
``w4a4_tma.py``)."""

from __future__ import annotations

import triton
import triton.language as tl

from residq.kernels.triton_mma import mma


@triton.jit
def grouped_tile(tile, tiles_m, tiles_n, GROUP_M: tl.constexpr):
    """(pid_m, pid_n) of output tile ``tile`` in grouped order: GROUP_M row tiles in a row share
    each weight tile while it is in L2."""
    group = tile // (GROUP_M * tiles_n)
    first_m = group * GROUP_M
    group_rows = tl.minimum(tiles_m - first_m, GROUP_M)
    pid_m = first_m + (tile % (GROUP_M * tiles_n)) % group_rows
    pid_n = (tile % (GROUP_M * tiles_n)) // group_rows
    return pid_m, pid_n


@triton.jit
def before_residual_range(acc, gx_ptr, gr_ptr, S, FMT: tl.constexpr):
    """Between the K ranges ``[0, K)`` and ``[K, K + S)``: NVFP4 with ARCQuant (S > 0) rescales the
    main sum by ``g_x / g_r`` so both ranges continue under the residual's own global scale ``g_r``.
    Returns ``(acc, g_last)``, the activation scale that the final ``after_k_ranges`` applies
    (``g_x`` without a residual; 1.0 for MXFP4 and INT4, which have no global scale)."""
    g_last = 1.0
    if FMT == 0:
        g_x = tl.load(gx_ptr)
        g_last = g_x
        if S > 0:
            g_last = tl.load(gr_ptr)
            acc = acc * tl.math.div_rn(g_x, g_last)
    return acc, g_last


@triton.jit
def after_k_ranges(acc, g_last, gw_ptr, FMT: tl.constexpr):
    """NVFP4: the fp32 sum times ``g_last * g_w`` (activation and weight global scales)."""
    if FMT == 0:
        acc = acc * (g_last * tl.load(gw_ptr))
    return acc


@triton.jit
def add_lowrank(acc, xa_ptr, b_ptr, offs_m, offs_n, M, N, R, R_PAD: tl.constexpr, F32_DOT: tl.constexpr):
    """ARHQ's branch (arXiv 2605.00140): acc ``[BM, BN]`` += ``(X A)[offs_m] @ B[offs_n]^T``
    with ``X A`` ``(M, R)`` and ``B`` ``(N, R)`` 16-bit, zero-padded to R_PAD."""
    r_offs = tl.arange(0, R_PAD)
    xa = tl.load(xa_ptr + offs_m[:, None] * R + r_offs[None, :],
                 mask=(offs_m < M)[:, None] & (r_offs < R)[None, :], other=0.0)
    b = tl.load(b_ptr + offs_n[None, :] * R + r_offs[:, None],
                mask=(offs_n < N)[None, :] & (r_offs < R)[:, None], other=0.0)
    return mma(xa, b, acc, F32_DOT)
