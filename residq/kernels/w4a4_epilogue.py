"""Tile order and epilogue shared by the W4A4 GEMM kernels (``w4a4.py``, ``w4a4_tma.py``)."""

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
def add_lowrank(acc, xa_ptr, b_ptr, offs_m, offs_n, M, N, R, R_PAD: tl.constexpr, F32_DOT: tl.constexpr):
    """ARHQ's branch (arXiv 2605.00140): acc ``[BM, BN]`` += ``(X A)[offs_m] @ B[offs_n]^T``
    with ``X A`` ``(M, R)`` and ``B`` ``(N, R)`` 16-bit, zero-padded to R_PAD."""
    r_offs = tl.arange(0, R_PAD)
    xa = tl.load(xa_ptr + offs_m[:, None] * R + r_offs[None, :],
                 mask=(offs_m < M)[:, None] & (r_offs < R)[None, :], other=0.0)
    b = tl.load(b_ptr + offs_n[None, :] * R + r_offs[:, None],
                mask=(offs_n < N)[None, :] & (r_offs < R)[:, None], other=0.0)
    return mma(xa, b, acc, F32_DOT)
