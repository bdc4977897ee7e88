"""W4A4's decoded path on Hopper: a persistent GEMM that reads both decoded bf16 operands with the
tensor memory accelerator (TMA).

``w4a4.launch`` decodes each packed operand once to exact bf16 (``decode.py``); this kernel then
multiplies them with the same K ranges and epilogue as ``w4a4._w4a4_kernel`` (NVFP4 global
scales, ARCQuant's rescale between ``[0, K)`` and ``[K, K + s)``, ARHQ's low-rank branch), and
gives the same bits: each output tile sums the same K tiles in the same order. What differs is how
tiles reach shared memory: TMA bulk copies (descriptors built on the host, out-of-range rows and
columns zero-filled by the hardware) instead of per-thread cp.async, four stages deep, with one
program per SM walking the output tiles. On an H100 at M = 2048 this took the GEMM alone from
~102 us to ~91 us at 4096 x 4096 (cuBLAS bf16: 88 us); see benchmarks/README.md.

Needs triton's ``TensorDescriptor`` (triton >= 3.4) and a GPU of compute capability 9.0 or
newer; ``available`` says whether this process has both, and ``w4a4.launch`` falls back to the
cp.async kernel otherwise.
"""

from __future__ import annotations

import functools

import torch
import triton
import triton.language as tl

from residq.kernels.w4a4_epilogue import add_lowrank, after_k_ranges, before_residual_range, grouped_tile

try:
    from triton.tools.tensor_descriptor import TensorDescriptor
except ImportError:  # triton < 3.4
    TensorDescriptor = None


@functools.cache
def _capability_ok(index: int) -> bool:
    return torch.cuda.get_device_capability(index) >= (9, 0)


@functools.cache
def _sm_count(index: int) -> int:
    return torch.cuda.get_device_properties(index).multi_processor_count


def available(device: torch.device) -> bool:
    """True when the TMA kernel can run on ``device`` (CUDA, sm_90+, triton with descriptors)."""
    if TensorDescriptor is None or device.type != "cuda":
        return False
    return _capability_ok(device.index if device.index is not None else torch.cuda.current_device())


@triton.jit
def _k_range(acc, x_desc, w_desc, off_m, off_n, k_begin, k_end, BLOCK_K: tl.constexpr,
             STAGES: tl.constexpr):
    """acc ``[BM, BN]`` += ``X[off_m:, k] @ W[off_n:, k]^T`` over ``[k_begin, k_end)``."""
    for k0 in tl.range(k_begin, k_end, BLOCK_K, num_stages=STAGES):
        acc = tl.dot(x_desc.load([off_m, k0]), w_desc.load([off_n, k0]).T, acc)
    return acc


@triton.jit(do_not_specialize=["M", "S", "R"])
def _w4a4_tma_kernel(
    x_desc, w_desc, gx_ptr, gr_ptr, gw_ptr, xa_ptr, b_ptr, out_ptr, M, N, K, S, R, stride_om,
    FMT: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
    GROUP_M: tl.constexpr, PROGRAMS: tl.constexpr, STAGES: tl.constexpr,
    HAS_LOWRANK: tl.constexpr, R_PAD: tl.constexpr,
):
    tiles_m = tl.cdiv(M, BLOCK_M)
    tiles_n = tl.cdiv(N, BLOCK_N)
    k_total = K + (S // 16) * 16  # S is a multiple of 16 (see w4a4._w4a4_kernel)
    for tile in tl.range(tl.program_id(0), tiles_m * tiles_n, PROGRAMS):
        pid_m, pid_n = grouped_tile(tile, tiles_m, tiles_n, GROUP_M)
        off_m = pid_m * BLOCK_M
        off_n = pid_n * BLOCK_N
        acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
        acc = _k_range(acc, x_desc, w_desc, off_m, off_n, 0, K, BLOCK_K, STAGES)
        acc, g_last = before_residual_range(acc, gx_ptr, gr_ptr, S, FMT)
        acc = _k_range(acc, x_desc, w_desc, off_m, off_n, K, k_total, BLOCK_K, STAGES)
        acc = after_k_ranges(acc, g_last, gw_ptr, FMT)
        offs_m = off_m + tl.arange(0, BLOCK_M)
        offs_n = off_n + tl.arange(0, BLOCK_N)
        if HAS_LOWRANK:
            acc = add_lowrank(acc, xa_ptr, b_ptr, offs_m, offs_n, M, N, R, R_PAD, False)
        mask = (offs_m < M)[:, None] & (offs_n < N)[None, :]
        tl.store(out_ptr + offs_m[:, None] * stride_om + offs_n[None, :],
                 acc.to(out_ptr.dtype.element_ty), mask=mask)


def program_count(out: torch.Tensor, m: int, n: int, cfg: dict) -> int:
    """Persistent grid size: one program per SM, at most one per output tile."""
    tiles = triton.cdiv(m, cfg["BLOCK_M"]) * triton.cdiv(n, cfg["BLOCK_N"])
    index = out.device.index if out.device.index is not None else torch.cuda.current_device()
    return min(tiles, _sm_count(index))


def launch(x_decoded: torch.Tensor, w_decoded: torch.Tensor, k: int, s: int, fmt_id: int,
           scales: tuple[torch.Tensor, torch.Tensor, torch.Tensor], lowrank_xa, lowrank_b,
           out: torch.Tensor, cfg: dict, r_pad: int) -> torch.Tensor:
    """``out (M, N)`` from decoded bf16 operands ``x_decoded`` ``(M, >= K+s)`` and ``w_decoded``
    ``(N, >= K+s)`` (rows 16-byte aligned); ``scales`` = (g_x, g_r, g_w) float32 scalars (any
    tensor for MXFP4); ``cfg``: ``BLOCK_M``, ``BLOCK_N``, ``BLOCK_K``, ``GROUP_M``, ``num_warps``,
    ``num_stages``."""
    m, n = out.shape
    bm, bn, bk = cfg["BLOCK_M"], cfg["BLOCK_N"], cfg["BLOCK_K"]
    x_desc = TensorDescriptor(x_decoded, [m, k + s], [x_decoded.stride(0), 1], [bm, bk])
    w_desc = TensorDescriptor(w_decoded, [n, k + s], [w_decoded.stride(0), 1], [bn, bk])
    programs = program_count(out, m, n, cfg)
    has_lowrank = lowrank_xa is not None
    r = lowrank_xa.shape[1] if has_lowrank else 0
    g_x, g_r, g_w = scales
    _w4a4_tma_kernel[(programs,)](
        x_desc, w_desc, g_x, g_r, g_w, lowrank_xa if has_lowrank else out, lowrank_b if has_lowrank else out,
        out, m, n, k, s, r, out.stride(0),
        FMT=fmt_id, BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk, GROUP_M=cfg["GROUP_M"], PROGRAMS=programs,
        STAGES=cfg["num_stages"], HAS_LOWRANK=has_lowrank, R_PAD=r_pad, num_warps=cfg["num_warps"],
    )
    return out
