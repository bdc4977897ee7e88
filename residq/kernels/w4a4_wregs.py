"""W4A4 GEMM with the weight decoded in registers: the "wregs" path of ``w4a4.launch``.

The activations come decoded once to bf16 (``decode.py``: ``e2m1 * block_scale``, exact); the
packed weight is decoded inside the GEMM, tile by tile, straight into the register operand of
Hopper's wgmma. For that the product is computed transposed,

    ``out^T (N, M) = deq(Wq) (N, K') @ deq(Xq)^T (K', M)``,

so the weight is the A operand (wgmma takes A from registers) and the activation tile is the B
operand, which Triton streams into shared memory with cp.async. The packed codes and block scales
are pipelined the same way, so no weight decode pass and no bf16 copy of the weight exist. The
epilogue is the one of ``w4a4._w4a4_kernel`` transposed: NVFP4 global scales, ARCQuant's
residual range ``[K, K+s)`` with its own activation scale ``g_r`` (the accumulator is rescaled by
``g_x / g_r`` between the two ranges), and ARHQ's ``(X A) B^T`` as one more product.
Both operands hold exact values, so the result equals the other paths up to fp32 summation order.
"""

from __future__ import annotations

import triton
import triton.language as tl

from residq.kernels.triton_mma import mma
from residq.kernels.triton_tiles import load_decoded_tile


@triton.jit
def _accumulate_t(acc, x_ptr, wc_ptr, ws_ptr, rows_m, offs_n, N, k_begin, k_end, k_total, x_stride,
                  FMT: tl.constexpr, BLOCK_K: tl.constexpr, STAGES: tl.constexpr,
                  USE_ASM: tl.constexpr, F32_DOT: tl.constexpr):
    """acc ``[BN, BM]`` += ``deq(W)[:, k] @ X[:, k]^T`` over ``[k_begin, k_end)``."""
    BN: tl.constexpr = acc.shape[0]
    for k0 in tl.range(k_begin, k_end, BLOCK_K, num_stages=STAGES):
        cols = k0 + tl.arange(0, BLOCK_K)
        x_t = tl.load(x_ptr + rows_m[None, :] * x_stride + cols[:, None], mask=(cols < k_end)[:, None], other=0.0)
        lo, hi, _ = load_decoded_tile(wc_ptr, ws_ptr, offs_n, N, k0, k_end, k_total, FMT, BLOCK_K, True, USE_ASM)
        w = tl.reshape(tl.join(lo, hi), [BN, BLOCK_K])  # (even, odd) pairs back in K order
        acc = mma(w, x_t, acc, F32_DOT)
    return acc


@triton.jit(do_not_specialize=["M", "S", "R"])
def w4a4_wregs_kernel(
    x_ptr, gx_ptr, gr_ptr, wc_ptr, ws_ptr, gw_ptr, xa_ptr, b_ptr, out_ptr,
    M, N, K, S, R, stride_om, x_stride,
    FMT: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
    GROUP_M: tl.constexpr, HAS_LOWRANK: tl.constexpr, R_PAD: tl.constexpr,
    USE_ASM: tl.constexpr, F32_DOT: tl.constexpr, STAGES: tl.constexpr,
):
    """One ``[BLOCK_M, BLOCK_N]`` output tile; ``x_ptr``: bf16 decoded activations ``(M, K+s)``
    with row stride ``x_stride``; ``wc_ptr``/``ws_ptr``: the packed weight ``(N, K+s)``."""
    pid = tl.program_id(0)
    tiles_m = tl.cdiv(M, BLOCK_M)
    tiles_n = tl.cdiv(N, BLOCK_N)
    group = pid // (GROUP_M * tiles_n)  # grouped order: GROUP_M row tiles share weight tiles in L2
    first_m = group * GROUP_M
    group_rows = tl.minimum(tiles_m - first_m, GROUP_M)
    pid_m = first_m + (pid % (GROUP_M * tiles_n)) % group_rows
    pid_n = (pid % (GROUP_M * tiles_n)) // group_rows
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    rows_m = offs_m % M  # wrapped rows: no row mask on the loads (the store masks them)
    k_total = K + (S // 16) * 16  # as in w4a4._w4a4_kernel: keeps the K + s masks 16-aligned
    acc = tl.zeros([BLOCK_N, BLOCK_M], dtype=tl.float32)
    acc = _accumulate_t(acc, x_ptr, wc_ptr, ws_ptr, rows_m, offs_n, N, 0, K, k_total, x_stride,
                        FMT, BLOCK_K, STAGES, USE_ASM, F32_DOT)
    if FMT == 0:
        g_x = tl.load(gx_ptr)
        g_last = g_x
        if S > 0:
            g_last = tl.load(gr_ptr)
            acc = acc * tl.math.div_rn(g_x, g_last)
        acc = _accumulate_t(acc, x_ptr, wc_ptr, ws_ptr, rows_m, offs_n, N, K, k_total, k_total, x_stride,
                            FMT, BLOCK_K, STAGES, USE_ASM, F32_DOT)
        acc = acc * (g_last * tl.load(gw_ptr))
    else:
        acc = _accumulate_t(acc, x_ptr, wc_ptr, ws_ptr, rows_m, offs_n, N, K, k_total, k_total, x_stride,
                            FMT, BLOCK_K, STAGES, USE_ASM, F32_DOT)
    if HAS_LOWRANK:
        r_offs = tl.arange(0, R_PAD)
        b = tl.load(b_ptr + offs_n[:, None] * R + r_offs[None, :],
                    mask=(offs_n < N)[:, None] & (r_offs < R)[None, :], other=0.0)
        xa_t = tl.load(xa_ptr + offs_m[None, :] * R + r_offs[:, None],
                       mask=(offs_m < M)[None, :] & (r_offs < R)[:, None], other=0.0)
        acc = mma(b, xa_t, acc, F32_DOT)
    mask = (offs_m < M)[:, None] & (offs_n < N)[None, :]
    tl.store(out_ptr + offs_m[:, None] * stride_om + offs_n[None, :],
             tl.trans(acc).to(out_ptr.dtype.element_ty), mask=mask)
