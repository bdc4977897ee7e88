"""W4A4 on Hopper with the weight decoded inside the GEMM: no bf16 copy of the weight.

The "decoded" path (``w4a4_tma.py``) decodes both packed operands to bf16 in global memory and
then multiplies. At prefill sizes the weight's decode pass is the larger one: it writes 2 bytes
per weight and the GEMM reads them back (at (14336, 4096) on an H100 about 58 us next to a
~310 us GEMM), and it is most of what keeps that path below cuBLAS bf16.

This kernel (Gluon, Triton's explicit-layout dialect, triton >= 3.5) reads the weight packed
(codes uint8 ``(N, (K+s)/2)`` and block scales, see ``block_formats.py``). It is persistent and
warp-specialized; each program runs two partitions over the same sequence of K steps:

- 4 producer warps: per step, wait until a slot is free, TMA-load the activation tile into it
  (the activation is decoded once beforehand by ``decode.py``: the small operand at prefill),
  take the weight tile's packed codes from a cp.async ring filled three steps ahead (8-byte
  copies: any row alignment, so ARCQuant's K + s works too) and its scales from registers
  loaded one step ahead, decode ``e2m1 * block_scale`` (exact in bf16) into the slot's weight
  buffer, and arrive on the slot's ``ready`` barrier;
- 8 consumer warps (two warpgroups): wait for ``ready``, issue the asynchronous wgmma, and once
  the one before has finished hand its slot back through ``empty``; then the epilogue.

The weight tile is the bf16 tensor the decoded path reads and the k16 chunks enter the fp32
accumulator in the same order, so the output equals the decoded path's bit for bit. The price:
each weight tile is decoded once per row block of the activation (M / BLOCK_M times; 256-token
tiles, ``DEFAULT_TILES``, halve that against the decoded path's 128).

Tile order and epilogue from ``w4a4_epilogue.py`` (Gluon calls those Triton functions): NVFP4
global scales, ARCQuant's rescale between ``[0, K)`` and ``[K, K + s)``; ARHQ's low-rank branch
is one more wgmma from shared memory.
"""

from __future__ import annotations

import functools

import torch

from residq.kernels import w4a4_tma
from residq.kernels.w4a4_epilogue import after_k_ranges, before_residual_range, grouped_tile

try:  # Gluon ships with triton >= 3.5
    from triton.experimental import gluon
    from triton.experimental.gluon import language as gl
    from triton.experimental.gluon.language.nvidia.hopper import (
        async_copy,
        fence_async_shared,
        mbarrier,
        tma,
        warpgroup_mma,
        warpgroup_mma_wait,
    )
    from triton.experimental.gluon.nvidia.hopper import TensorDescriptor as GluonDescriptor
except ImportError:  # older triton: w4a4.launch keeps the decoded path
    gluon = None

DEFAULT_TILES = {"BLOCK_M": 256, "BLOCK_N": 128, "BLOCK_K": 64, "num_warps": 8, "num_stages": 4}


def available(device: torch.device) -> bool:
    """True when this kernel can run on ``device`` (Gluon present, CUDA sm_90+)."""
    return gluon is not None and w4a4_tma.available(device)


SHARED_BYTES = 227 * 1024  # an H100 program's shared memory


def stages_that_fit(cfg: dict, r_pad: int, has_lowrank: bool) -> int:
    """``cfg["num_stages"]``, lowered (to at least 2) until the buffers fit in shared memory: per
    stage an activation tile and a decoded weight tile, plus the producers' ring of packed codes
    and ARHQ's operand tiles."""
    bm, bn, bk = cfg["BLOCK_M"], cfg["BLOCK_N"], cfg["BLOCK_K"]
    per_stage = 2 * (bm + bn) * bk
    fixed = cfg.get("code_stages", 4) * bn * bk // 2 + (2 * (bm + bn) * r_pad if has_lowrank else 0) + 1024
    stages = cfg["num_stages"]
    while stages > 2 and fixed + per_stage * stages > SHARED_BYTES:
        stages -= 1
    return stages


if gluon is not None:
    from residq.kernels.triton_codes import FP4_TO_BF16_ASM, block_scale_values

    @gluon.jit
    def _decode_step(raw, scales, FMT: gl.constexpr, BLOCK_N: gl.constexpr, BLOCK_K: gl.constexpr,
                     SB: gl.constexpr, tile_layout: gl.constexpr):
        """``[BN, BLOCK_K]`` bf16 ``e2m1 * block_scale`` in K order from codes and raw scales."""
        lo, hi = gl.inline_asm_elementwise(FP4_TO_BF16_ASM, "=r,=r,=r,=r,r", [raw],
                                           dtype=(gl.bfloat16, gl.bfloat16), is_pure=True, pack=4)
        values = gl.reshape(gl.join(lo, hi), [BLOCK_N, BLOCK_K])  # (even, odd) pairs -> K order
        values = gl.convert_layout(values, tile_layout)
        grouped = gl.reshape(values, [BLOCK_N, BLOCK_K // SB, SB])
        step = block_scale_values(scales, FMT).to(gl.bfloat16)
        step = gl.convert_layout(step, gl.SliceLayout(2, grouped.type.layout))
        grouped = grouped * gl.expand_dims(step, 2)  # bf16 products are exact
        return gl.convert_layout(gl.reshape(grouped, [BLOCK_N, BLOCK_K]), tile_layout)

    @gluon.jit
    def _add_lowrank(acc, xa_ptr, b_ptr, off_m, off_n, M, N, R, BLOCK_M: gl.constexpr,
                     BLOCK_N: gl.constexpr, R_PAD: gl.constexpr, num_warps: gl.constexpr):
        """acc ``[BM, BN]`` += ``XA[off_m:] @ B[off_n:]^T`` with ``XA`` ``(M, R)``, ``B``
        ``(N, R)`` 16-bit, zero-padded to R_PAD: one wgmma from shared memory."""
        dtype: gl.constexpr = xa_ptr.dtype.element_ty
        load_layout: gl.constexpr = gl.BlockedLayout([1, 8], [4, 8], [num_warps, 1], [1, 0])
        cols = gl.arange(0, R_PAD, layout=gl.SliceLayout(0, load_layout))
        rows_m = off_m + gl.arange(0, BLOCK_M, layout=gl.SliceLayout(1, load_layout))
        rows_n = off_n + gl.arange(0, BLOCK_N, layout=gl.SliceLayout(1, load_layout))
        xa = gl.load(xa_ptr + rows_m[:, None] * R + cols[None, :],
                     mask=(rows_m < M)[:, None] & (cols < R)[None, :], other=0.0)
        b = gl.load(b_ptr + rows_n[:, None] * R + cols[None, :],
                    mask=(rows_n < N)[:, None] & (cols < R)[None, :], other=0.0)
        xa_smem = gl.allocate_shared_memory(dtype, [BLOCK_M, R_PAD],
                                            gl.NVMMASharedLayout.get_default_for([BLOCK_M, R_PAD], dtype), xa)
        b_smem = gl.allocate_shared_memory(dtype, [BLOCK_N, R_PAD],
                                           gl.NVMMASharedLayout.get_default_for([BLOCK_N, R_PAD], dtype), b)
        fence_async_shared()
        gl.thread_barrier()
        acc = warpgroup_mma(xa_smem, b_smem.permute((1, 0)), acc, is_async=True)
        return warpgroup_mma_wait(num_outstanding=0, deps=(acc,))


    @gluon.jit
    def _tile_origin(tile, M, N, BLOCK_M: gl.constexpr, BLOCK_N: gl.constexpr, GROUP_M: gl.constexpr):
        """(off_m, off_n) of output tile ``tile`` in grouped order (``w4a4_epilogue.grouped_tile``)."""
        pid_m, pid_n = grouped_tile(tile, gl.cdiv(M, BLOCK_M), gl.cdiv(N, BLOCK_N), GROUP_M)
        return pid_m * BLOCK_M, pid_n * BLOCK_N

    @gluon.jit
    def _copy_codes(code_slot, codes_ptr, rows, row_ok, code_stride, k0, k_end, BLOCK_K: gl.constexpr,
                    code_layout: gl.constexpr):
        """cp.async of K step ``k0``'s packed codes into one ring slot, masked by row (and by column
        in a range's partial last step; a step at or past ``k_end`` copies nothing). Each thread
        later reads back exactly the bytes it copied (same layout), so its own ``wait_group``
        orders the two."""
        # K, K + s and every step start are multiples of 16 elements: rows and steps start on
        # 8-byte boundaries, which lets each thread copy its bytes in 8-byte pieces
        byte_cols = gl.max_contiguous(gl.multiple_of(
            k0 // 2 + gl.arange(0, BLOCK_K // 2, layout=gl.SliceLayout(0, code_layout)), 8), 8)
        code_rows = gl.convert_layout(rows, gl.SliceLayout(1, code_layout))
        code_ok = gl.convert_layout(row_ok, gl.SliceLayout(1, code_layout))
        row_starts = gl.multiple_of(code_rows * code_stride, 8)
        code_ptrs = codes_ptr + row_starts[:, None] + byte_cols[None, :]
        if k0 + BLOCK_K <= k_end:
            async_copy.async_copy_global_to_shared(code_slot, code_ptrs, mask=code_ok[:, None])
        else:  # K bounds are multiples of 16 elements: the column mask is constant over 8 bytes
            col_ok = gl.max_constancy(byte_cols < k_end // 2, 8)
            async_copy.async_copy_global_to_shared(code_slot, code_ptrs, mask=code_ok[:, None] & col_ok[None, :])

    @gluon.jit
    def _load_scales(scale_ptr, rows, row_ok, scale_stride, k0, k_end, BLOCK_K: gl.constexpr, SB: gl.constexpr,
                     scale_layout: gl.constexpr):
        """Raw block scales ``[BN, BLOCK_K/SB]`` of K step ``k0`` (0 past ``k_end``), into registers
        (a row's scales of one step are 2-4 bytes: below cp.async's 4-byte minimum or alignment)."""
        scale_cols = k0 // SB + gl.arange(0, BLOCK_K // SB, layout=gl.SliceLayout(0, scale_layout))
        scale_rows = gl.convert_layout(rows, gl.SliceLayout(1, scale_layout))
        scale_ok = gl.convert_layout(row_ok, gl.SliceLayout(1, scale_layout))
        return gl.load(scale_ptr + scale_rows[:, None] * scale_stride + scale_cols[None, :],
                       mask=scale_ok[:, None] & (scale_cols < k_end // SB)[None, :], other=0)

    @gluon.jit
    def _ws_producer_range(x_desc, x_smem, w_smem, ready, empty, code_ring,
                           codes_ptr, scale_ptr, rows, row_ok, code_stride, scale_stride, off_m, k_begin, k_end,
                           count, FMT: gl.constexpr, BLOCK_N: gl.constexpr, BLOCK_K: gl.constexpr,
                           STAGES: gl.constexpr, CODE_STAGES: gl.constexpr, code_layout: gl.constexpr,
                           scale_layout: gl.constexpr, tile_layout: gl.constexpr):
        """One K range of a tile: per step, the activation tile's TMA load and the weight tile's
        decode into a free shared buffer, its packed codes and scales brought CODE_STAGES - 1
        steps ahead by cp.async; returns the step counter."""
        SB: gl.constexpr = 16 if FMT == 0 else 32
        for j in gl.static_range(CODE_STAGES - 1):
            _copy_codes(code_ring.index(j), codes_ptr, rows, row_ok, code_stride, k_begin + j * BLOCK_K, k_end,
                        BLOCK_K, code_layout)
            async_copy.commit_group()
        scales_next = _load_scales(scale_ptr, rows, row_ok, scale_stride, k_begin, k_end, BLOCK_K, SB, scale_layout)
        steps = gl.cdiv(k_end - k_begin, BLOCK_K)
        for i in range(steps):
            k0 = k_begin + i * BLOCK_K
            ahead = (i + CODE_STAGES - 1) % CODE_STAGES  # the slot read in step i - 1
            _copy_codes(code_ring.index(ahead), codes_ptr, rows, row_ok, code_stride,
                        k0 + (CODE_STAGES - 1) * BLOCK_K, k_end, BLOCK_K, code_layout)
            async_copy.commit_group()
            scales = scales_next
            scales_next = _load_scales(scale_ptr, rows, row_ok, scale_stride, k0 + BLOCK_K, k_end, BLOCK_K, SB,
                                       scale_layout)
            slot = count % STAGES
            mbarrier.wait(empty.index(slot), ((count // STAGES) & 1) ^ 1)  # step count - STAGES is done
            mbarrier.expect(ready.index(slot), x_desc.block_type.nbytes)  # one of ready's two arrivals
            tma.async_copy_global_to_shared(x_desc, [off_m, k0], ready.index(slot), x_smem.index(slot))
            async_copy.wait_group(CODE_STAGES - 1)  # this thread's copies of step i have landed
            raw = code_ring.index(i % CODE_STAGES).load(code_layout)
            w_tile = _decode_step(raw, scales, FMT, BLOCK_N, BLOCK_K, SB, tile_layout)
            w_smem.index(slot).store(w_tile)
            fence_async_shared()
            mbarrier.arrive(ready.index(slot), count=1)  # the other arrival, once all producer warps stored
            count += 1
        async_copy.wait_group(0)
        return count

    @gluon.jit
    def _ws_producer(x_desc, x_smem, w_smem, ready, empty, code_ring,
                     codes_ptr, scale_ptr, M, N, K, S, code_stride, scale_stride,
                     FMT: gl.constexpr, BLOCK_M: gl.constexpr, BLOCK_N: gl.constexpr, BLOCK_K: gl.constexpr,
                     GROUP_M: gl.constexpr, PROGRAMS: gl.constexpr, STAGES: gl.constexpr,
                     CODE_STAGES: gl.constexpr, WARPS: gl.constexpr):
        """Worker: TMA-loads the activation tiles and, with the packed weight loaded one step ahead,
        decodes each [BLOCK_N, BLOCK_K] weight tile into a free shared buffer (two threads per
        weight row), signalling both to the consumer."""
        code_layout: gl.constexpr = gl.BlockedLayout([1, BLOCK_K // 4], [16, 2], [WARPS, 1], [1, 0])
        scale_layout: gl.constexpr = gl.BlockedLayout([1, BLOCK_K // (32 if FMT == 0 else 64)], [16, 2],
                                                      [WARPS, 1], [1, 0])
        tile_layout: gl.constexpr = gl.BlockedLayout([1, BLOCK_K // 2], [16, 2], [WARPS, 1], [1, 0])
        k_total = K + (S // 16) * 16
        count = 0
        for tile in range(gl.program_id(0), gl.cdiv(M, BLOCK_M) * gl.cdiv(N, BLOCK_N), PROGRAMS):
            off_m, off_n = _tile_origin(tile, M, N, BLOCK_M, BLOCK_N, GROUP_M)
            rows = off_n + gl.arange(0, BLOCK_N, layout=gl.SliceLayout(1, tile_layout))
            row_ok = rows < N
            count = _ws_producer_range(x_desc, x_smem, w_smem, ready, empty, code_ring,
                                       codes_ptr, scale_ptr, rows, row_ok, code_stride, scale_stride,
                                       off_m, 0, K, count, FMT, BLOCK_N, BLOCK_K, STAGES, CODE_STAGES,
                                       code_layout, scale_layout, tile_layout)
            if S > 0:
                count = _ws_producer_range(x_desc, x_smem, w_smem, ready, empty, code_ring,
                                           codes_ptr, scale_ptr, rows, row_ok, code_stride,
                                           scale_stride, off_m, K, k_total, count, FMT, BLOCK_N, BLOCK_K, STAGES,
                                           CODE_STAGES, code_layout, scale_layout, tile_layout)

    @gluon.jit
    def _ws_mma_range(acc, x_smem, w_smem, ready, empty, k_begin, k_end, count, BLOCK_K: gl.constexpr,
                      STAGES: gl.constexpr):
        """acc += the range's steps; every wgmma done on return; hands each step's slot back."""
        for k0 in range(k_begin, k_end, BLOCK_K):
            slot = count % STAGES
            mbarrier.wait(ready.index(slot), (count // STAGES) & 1)  # activation landed, weight stored
            acc = warpgroup_mma(x_smem.index(slot), w_smem.index(slot).permute((1, 0)), acc, is_async=True)
            acc = warpgroup_mma_wait(num_outstanding=1, deps=(acc,))
            if k0 > k_begin:  # the step before is complete: its slot goes back to the producers
                mbarrier.arrive(empty.index((count - 1) % STAGES), count=1)
            count += 1
        acc = warpgroup_mma_wait(num_outstanding=0, deps=(acc,))
        if k_end > k_begin:
            mbarrier.arrive(empty.index((count - 1) % STAGES), count=1)
        return acc, count

    @gluon.jit
    def _ws_consumer(x_smem, w_smem, ready, empty, gx_ptr, gr_ptr, gw_ptr, xa_ptr,
                     b_ptr, out_ptr, M, N, K, S, R, stride_om,
                     FMT: gl.constexpr, BLOCK_M: gl.constexpr, BLOCK_N: gl.constexpr, BLOCK_K: gl.constexpr,
                     GROUP_M: gl.constexpr, PROGRAMS: gl.constexpr, STAGES: gl.constexpr,
                     HAS_LOWRANK: gl.constexpr, R_PAD: gl.constexpr, WARPS: gl.constexpr):
        """Default partition: wgmma over the ring and the decoded weight buffers, then the epilogue."""
        acc_layout: gl.constexpr = gl.NVMMADistributedLayout(
            version=[3, 0], warps_per_cta=[WARPS, 1], instr_shape=[16, BLOCK_N, 16])
        k_total = K + (S // 16) * 16
        count = 0
        for tile in range(gl.program_id(0), gl.cdiv(M, BLOCK_M) * gl.cdiv(N, BLOCK_N), PROGRAMS):
            off_m, off_n = _tile_origin(tile, M, N, BLOCK_M, BLOCK_N, GROUP_M)
            acc = gl.zeros([BLOCK_M, BLOCK_N], gl.float32, acc_layout)
            acc, count = _ws_mma_range(acc, x_smem, w_smem, ready, empty, 0, K, count,
                                       BLOCK_K, STAGES)
            acc, g_last = before_residual_range(acc, gx_ptr, gr_ptr, S, FMT)
            if S > 0:
                acc, count = _ws_mma_range(acc, x_smem, w_smem, ready, empty, K, k_total,
                                           count, BLOCK_K, STAGES)
            acc = after_k_ranges(acc, g_last, gw_ptr, FMT)
            offs_m = off_m + gl.arange(0, BLOCK_M, layout=gl.SliceLayout(1, acc_layout))
            offs_n = off_n + gl.arange(0, BLOCK_N, layout=gl.SliceLayout(0, acc_layout))
            if HAS_LOWRANK:
                acc = _add_lowrank(acc, xa_ptr, b_ptr, off_m, off_n, M, N, R, BLOCK_M, BLOCK_N, R_PAD, WARPS)
            mask = (offs_m < M)[:, None] & (offs_n < N)[None, :]
            gl.store(out_ptr + offs_m[:, None] * stride_om + offs_n[None, :],
                     acc.to(out_ptr.dtype.element_ty), mask=mask)

    @gluon.jit
    def _w4a4_wdec_ws_kernel(
        x_desc, codes_ptr, scale_ptr, gx_ptr, gr_ptr, gw_ptr, xa_ptr, b_ptr, out_ptr,
        M, N, K, S, R, stride_om, code_stride, scale_stride,
        FMT: gl.constexpr, BLOCK_M: gl.constexpr, BLOCK_N: gl.constexpr, BLOCK_K: gl.constexpr,
        GROUP_M: gl.constexpr, PROGRAMS: gl.constexpr, STAGES: gl.constexpr,
        HAS_LOWRANK: gl.constexpr, R_PAD: gl.constexpr, DECODER_WARPS: gl.constexpr,
        DECODER_REGS: gl.constexpr, CODE_STAGES: gl.constexpr, num_warps: gl.constexpr,
    ):
        """Warp-specialized: DECODER_WARPS producer warps that TMA-load the activation and decode
        the weight into shared memory, and the ``num_warps`` default warps that only issue wgmma
        and run the epilogue; mbarriers hand each buffer back and forth."""
        w_layout: gl.constexpr = gl.NVMMASharedLayout.get_default_for([BLOCK_N, BLOCK_K], gl.bfloat16)
        # one slot per K step in flight: an activation tile and a decoded weight tile; ``ready``
        # completes when the TMA bytes have landed and the producers have stored the weight
        # (two arrivals), ``empty`` when the consumer's wgmma on the slot is done
        x_smem = gl.allocate_shared_memory(gl.bfloat16, [STAGES, BLOCK_M, BLOCK_K], x_desc.layout)
        w_smem = gl.allocate_shared_memory(gl.bfloat16, [STAGES, BLOCK_N, BLOCK_K], w_layout)
        ready = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
        empty = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
        for i in gl.static_range(STAGES):
            mbarrier.init(ready.index(i), count=2)
            mbarrier.init(empty.index(i), count=1)
        plain: gl.constexpr = gl.SwizzledSharedLayout(vec=1, per_phase=1, max_phase=1, order=[1, 0])
        code_ring = gl.allocate_shared_memory(gl.uint8, [CODE_STAGES, BLOCK_N, BLOCK_K // 2], plain)
        fence_async_shared()
        gl.warp_specialize([
            (_ws_consumer, (x_smem, w_smem, ready, empty, gx_ptr, gr_ptr, gw_ptr, xa_ptr,
                            b_ptr, out_ptr, M, N, K, S, R, stride_om, FMT, BLOCK_M, BLOCK_N, BLOCK_K, GROUP_M,
                            PROGRAMS, STAGES, HAS_LOWRANK, R_PAD, num_warps)),
            (_ws_producer, (x_desc, x_smem, w_smem, ready, empty, code_ring,
                            codes_ptr, scale_ptr, M, N, K, S, code_stride, scale_stride, FMT, BLOCK_M, BLOCK_N,
                            BLOCK_K, GROUP_M, PROGRAMS, STAGES, CODE_STAGES, DECODER_WARPS)),
        ], [DECODER_WARPS], [DECODER_REGS])


@functools.cache
def _x_layout(block_m: int, block_k: int):
    return gl.NVMMASharedLayout.get_default_for([block_m, block_k], gl.bfloat16)


def launch(x_decoded: torch.Tensor, w_packed: dict[str, torch.Tensor], k: int, s: int, fmt_id: int,
           scales: tuple[torch.Tensor, torch.Tensor, torch.Tensor], lowrank_xa, lowrank_b,
           out: torch.Tensor, cfg: dict, r_pad: int) -> torch.Tensor:
    """``out (M, N)`` from the decoded activation ``x_decoded`` bf16 ``(M, >= K+s)`` (rows 16-byte
    aligned) and the packed NVFP4/MXFP4 weight ``w_packed`` (``codes`` ``(N, (K+s)/2)``,
    ``scale``); ``scales`` = (g_x, g_r, g_w) float32 scalars; ``cfg``: ``BLOCK_M``, ``BLOCK_N``,
    ``BLOCK_K``, ``GROUP_M``, ``num_warps``, ``num_stages``."""
    m, n = out.shape
    bm, bk = cfg["BLOCK_M"], cfg["BLOCK_K"]
    layout = _x_layout(bm, bk)
    x_desc = GluonDescriptor(x_decoded, [m, k + s], [x_decoded.stride(0), 1], [bm, bk], layout)
    codes, block_scales = w_packed["codes"].contiguous(), w_packed["scale"].contiguous()
    programs = w4a4_tma.program_count(out, m, n, cfg)
    has_lowrank = lowrank_xa is not None
    g_x, g_r, g_w = scales
    args = (x_desc, codes, block_scales, g_x, g_r, g_w,
            lowrank_xa if has_lowrank else out, lowrank_b if has_lowrank else out, out,
            m, n, k, s, lowrank_xa.shape[1] if has_lowrank else 0, out.stride(0), codes.stride(0),
            block_scales.stride(0))
    meta = {"FMT": fmt_id, "BLOCK_M": bm, "BLOCK_N": cfg["BLOCK_N"], "BLOCK_K": bk, "GROUP_M": cfg["GROUP_M"],
            "PROGRAMS": programs, "STAGES": stages_that_fit(cfg, r_pad, has_lowrank), "HAS_LOWRANK": has_lowrank,
            "R_PAD": r_pad, "num_warps": cfg["num_warps"]}
    decoder_warps = cfg.get("decoder_warps", 4)
    # registers per thread that let every warp of the program be resident (multiple of 8)
    maxnreg = 65536 // (32 * (cfg["num_warps"] + decoder_warps)) // 8 * 8
    _w4a4_wdec_ws_kernel[(programs,)](*args, **meta, DECODER_WARPS=decoder_warps,
                                      DECODER_REGS=cfg.get("decoder_regs", 152),
                                      CODE_STAGES=cfg.get("code_stages", 4), maxnreg=maxnreg)
    return out


