"""The skinny W4A16 kernel with its weight streamed by the tensor memory accelerator (Hopper).

``w4a16_skinny.py``'s kernel loads every lane's packed codes with 16-byte register loads, two
128-column segments ahead. On an H100 that load structure alone streams the weight at ~2.0 TB/s
(``scripts/skinny_stream_probe.py``: the same kernel with its decode and MMAs removed), against
~2.8 TB/s for cuBLAS's bf16 GEMV, so no cheaper decode can take it to 3x of bf16. Here each
program asks for its whole share of the weight at once: one TMA bulk copy per 128-column segment
(``BN`` rows x 64 bytes) and one for the block scales, each segment with its own mbarrier, so a
program's bytes are all in flight while it waits for the first segment, and the copies cost no
registers. Each lane then reads its 16 bytes of two rows from shared memory and runs the same
inline PTX (decode, block-scale multiply, ``mma.m16n8k16``) as the register-load kernel.

Rows: warp w's MMA tile is rows ``8 w + g`` and ``8 W + 8 w + g`` of the program's ``BN = 16 W``
rows (lane (g, q)), so each half of a segment's buffer is one plain [8 W, 8] int64 view whose
row-major order is the [P, 2] operand order of ``w4a16_skinny`` (p = 32 w + 4 g + q, 8-byte half
h). NVFP4 only, M <= 8, K % 256 == 0 (the scale rows' 16-byte alignment); needs Gluon (triton >=
3.5) and sm_90. ``available`` says whether this process can run it.
"""

from __future__ import annotations

import functools

import torch

from residq.kernels import w4a4_tma
from residq.kernels.w4a16_skinny_ptx import skinny_mma_ptx

try:
    from triton.experimental import gluon
    from triton.experimental.gluon import language as gl
    from triton.experimental.gluon.language.nvidia.hopper import fence_async_shared, mbarrier, tma
    from triton.experimental.gluon.nvidia.hopper import TensorDescriptor as GluonDescriptor
except ImportError:
    gluon = None

SEGMENT_BYTES = 64  # one 128-column segment of a packed FP4 row


def available(device: torch.device) -> bool:
    """True when this kernel can run on ``device`` (Gluon present, CUDA sm_90+)."""
    return gluon is not None and w4a4_tma.available(device)


if gluon is not None:

    @gluon.jit
    def _skinny_tma_kernel(
        codes_desc, scale_desc, x_ptr, g_ptr, out_ptr, ws_ptr, counter_ptr, zero_ptr,
        M, N, K, stride_xm, stride_om,
        CH: gl.constexpr, SPLIT: gl.constexpr, W: gl.constexpr, PTX: gl.constexpr, num_warps: gl.constexpr,
    ):
        """``out = x @ W^T`` for M <= 8 tokens: program (pid_n, pid_k) owns rows ``[pid_n * 16 W,
        +16 W)`` and the CH segments from ``pid_k * CH``; split-K sums go through the fp32
        workspace, whose last program (atomic ticket) writes the output (as ``_skinny_kernel``)."""
        BN: gl.constexpr = 16 * W
        P: gl.constexpr = 32 * W
        pid_n = gl.program_id(0)
        pid_k = gl.program_id(1)
        row0 = pid_n * BN
        seg0 = pid_k * CH
        plain: gl.constexpr = gl.SwizzledSharedLayout(vec=1, per_phase=1, max_phase=1, order=[1, 0])
        codes_smem = gl.allocate_shared_memory(gl.uint8, [CH, BN, 64], codes_desc.layout)
        scale_smem = gl.allocate_shared_memory(gl.uint8, [BN, 8 * CH], scale_desc.layout)
        bars = gl.allocate_shared_memory(gl.int64, [CH + 1, 1], mbarrier.MBarrierLayout())
        for i in gl.static_range(CH + 1):
            mbarrier.init(bars.index(i), count=1)
        fence_async_shared()
        # everything this program reads, requested at once (rows past N and columns past K
        # arrive as zeros)
        mbarrier.expect(bars.index(CH), scale_desc.block_type.nbytes)
        tma.async_copy_global_to_shared(scale_desc, [row0, seg0 * 8], bars.index(CH), scale_smem)
        for c in gl.static_range(CH):
            mbarrier.expect(bars.index(c), codes_desc.block_type.nbytes)
            tma.async_copy_global_to_shared(codes_desc, [row0, (seg0 + c) * 64], bars.index(c), codes_smem.index(c))

        # a [8 W, 8] tile (rows x int64 words or scale bytes): thread (w, g, q) holds row 8 w + g,
        # entries 2 q and 2 q + 1; reshaped to [P, 2] it is w4a16_skinny's operand order
        tile: gl.constexpr = gl.BlockedLayout([1, 2], [8, 4], [W, 1], [1, 0])
        lane: gl.constexpr = gl.BlockedLayout([1, 2], [32, 1], [W, 1], [1, 0])
        p = gl.arange(0, P, layout=gl.SliceLayout(1, lane))[:, None]
        h = gl.arange(0, 2, layout=gl.SliceLayout(0, lane))[None, :]
        g = (p % 32) // 4
        q = p % 4
        zeros = zero_ptr.to(gl.int64, bitcast=True)
        acc0 = gl.zeros([P, 2], gl.float32, lane)
        acc1 = gl.zeros([P, 2], gl.float32, lane)
        acc2 = gl.zeros([P, 2], gl.float32, lane)
        acc3 = gl.zeros([P, 2], gl.float32, lane)
        mbarrier.wait(bars.index(CH), 0)
        segments = K // 128
        for c in gl.static_range(CH):
            seg = seg0 + c
            mbarrier.wait(bars.index(c), 0)
            words = codes_smem.index(c)._reinterpret(gl.int64, [BN, 8], plain)
            a = gl.convert_layout(gl.reshape(words.slice(0, 8 * W, dim=0).load(tile), [P, 2]), lane)
            b = gl.convert_layout(gl.reshape(words.slice(8 * W, 8 * W, dim=0).load(tile), [P, 2]), lane)
            scales = scale_smem.slice(8 * c, 8, dim=1)
            sa = gl.convert_layout(gl.reshape(scales.slice(0, 8 * W, dim=0).load(tile), [P, 2]), lane)
            sb = gl.convert_layout(gl.reshape(scales.slice(8 * W, 8 * W, dim=0).load(tile), [P, 2]), lane)
            ok = (g < M) & (seg < segments)
            col = seg * 128 + q * 32 + h * 16
            x0 = gl.where(ok, (x_ptr + g * stride_xm + col).to(gl.int64, bitcast=True), zeros)
            c0, c1, c2, c3 = gl.inline_asm_elementwise(
                PTX, "=f,=f,=f,=f,l,l,r,r,l", [a, b, sa.to(gl.int32), sb.to(gl.int32), x0],
                dtype=(gl.float32, gl.float32, gl.float32, gl.float32), is_pure=True, pack=1)
            acc0 += c0
            acc1 += c1
            acc2 += c2
            acc3 += c3
        for i in gl.static_range(CH + 1):
            mbarrier.invalidate(bars.index(i))
        # the shift decode's 2^-7 (w4a16_skinny_ptx.SHIFT_DECODE_EXPONENT) and the global scale
        scale = gl.load(g_ptr) * 128.0
        out_layout: gl.constexpr = gl.SliceLayout(1, lane)
        pv = gl.arange(0, P, layout=out_layout)
        ra = row0 + 8 * (pv // 32) + (pv % 32) // 4
        rb = ra + 8 * W
        tok = 2 * (pv % 4)
        sums = (gl.sum(acc0, axis=1) * scale, gl.sum(acc1, axis=1) * scale,
                gl.sum(acc2, axis=1) * scale, gl.sum(acc3, axis=1) * scale)
        rows = (ra, ra, rb, rb)
        toks = (tok, tok + 1, tok, tok + 1)
        if SPLIT == 1:
            for i in gl.static_range(4):
                mask = (toks[i] < M) & (rows[i] < N)
                gl.store(out_ptr + toks[i] * stride_om + rows[i], sums[i].to(out_ptr.dtype.element_ty), mask=mask)
        else:
            for i in gl.static_range(4):
                mask = (toks[i] < M) & (rows[i] < N)
                gl.atomic_add(ws_ptr + toks[i] * N + rows[i], sums[i], mask=mask, sem="relaxed", scope="gpu")
            gl.thread_barrier()
            arrived = gl.atomic_add(counter_ptr + pid_n, 1, sem="acq_rel", scope="gpu")
            if arrived == SPLIT - 1:
                for i in gl.static_range(4):
                    mask = (toks[i] < M) & (rows[i] < N)
                    offs = toks[i] * N + rows[i]
                    summed = gl.load(ws_ptr + offs, mask=mask, other=0.0, cache_modifier=".cg")
                    gl.store(out_ptr + toks[i] * stride_om + rows[i], summed.to(out_ptr.dtype.element_ty), mask=mask)
                    gl.store(ws_ptr + offs, gl.zeros_like(summed), mask=mask, cache_modifier=".cg")
                gl.atomic_xchg(counter_ptr + pid_n, 0, sem="relaxed", scope="gpu")


@functools.cache
def _layout(rows: int, cols: int):
    return gl.NVMMASharedLayout(swizzle_byte_width=0, element_bitwidth=8, rank=2)


def supported(x: torch.Tensor, packed: dict[str, torch.Tensor], fmt: str) -> bool:
    """True when this kernel can take the call: NVFP4, M <= 8, bf16/fp16 x, K % 256 == 0,
    contiguous 16-byte aligned codes and scales, Gluon on an sm_90+ GPU."""
    m, k = x.shape
    codes, scale = packed["codes"], packed["scale"]
    return (fmt == "nvfp4" and m <= 8 and k % 256 == 0 and available(x.device) and x.stride(1) == 1
            and x.stride(0) % 8 == 0 and x.data_ptr() % 16 == 0 and codes.is_contiguous()
            and scale.is_contiguous() and codes.data_ptr() % 16 == 0 and scale.data_ptr() % 16 == 0)


def launch(x: torch.Tensor, packed: dict[str, torch.Tensor], out: torch.Tensor, cfg: dict,
           ptx: str | None = None) -> torch.Tensor:
    """``out (M, N) = x (M, K) @ W^T`` for a packed NVFP4 weight (``supported`` must hold);
    ``cfg``: ``num_warps`` (W, 16 W rows per program) and ``CH`` (segments per program, 2-8).
    ``ptx`` replaces the per-lane PTX (``scripts/skinny_stream_probe.py``'s loads-only probe)."""
    from residq.kernels.w4a16_skinny import _skinny_workspace  # the shared self-resetting workspace

    m, k = x.shape
    codes, scale = packed["codes"], packed["scale"]
    n = codes.shape[0]
    warps, ch = cfg["num_warps"], cfg["CH"]
    rows = 16 * warps
    segments = k // 128
    split = -(-segments // ch)
    codes_desc = GluonDescriptor(codes, [n, k // 2], [codes.stride(0), 1], [rows, SEGMENT_BYTES], _layout(rows, 64))
    scale_desc = GluonDescriptor(scale, [n, k // 16], [scale.stride(0), 1], [rows, 8 * ch], _layout(rows, 8 * ch))
    grid_n = -(-n // rows)
    ws, counters, zeros = _skinny_workspace(x.device, m * n if split > 1 else 0, grid_n)
    _skinny_tma_kernel[(grid_n, split)](
        codes_desc, scale_desc, x, packed["global_scale"], out, ws, counters, zeros,
        m, n, k, x.stride(0), out.stride(0),
        CH=ch, SPLIT=split, W=warps, PTX=ptx or skinny_mma_ptx(0, x.dtype == torch.bfloat16, 1), num_warps=warps,
    )
    return out
