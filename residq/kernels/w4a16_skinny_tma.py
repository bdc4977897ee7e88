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
    def _issue_codes(codes_desc, ring, bars, j, pid, row_blocks, ITEM_SEGS: gl.constexpr, ROWS: gl.constexpr,
                     STAGES: gl.constexpr, PROGRAMS: gl.constexpr):
        """TMA of this program's j-th segment (item pid + (j // ITEM_SEGS) PROGRAMS) into slot j % STAGES."""
        item = pid + (j // ITEM_SEGS) * PROGRAMS
        seg = (item // row_blocks) * ITEM_SEGS + j % ITEM_SEGS
        slot = j % STAGES
        mbarrier.expect(bars.index(slot), codes_desc.block_type.nbytes)
        tma.async_copy_global_to_shared(codes_desc, [(item % row_blocks) * ROWS, seg * 64], bars.index(slot),
                                        ring.index(slot))

    @gluon.jit
    def _issue_scales(scale_desc, buffers, sbars, t, pid, row_blocks, ITEM_SEGS: gl.constexpr, ROWS: gl.constexpr,
                      PROGRAMS: gl.constexpr):
        """TMA of the block scales of this program's t-th item into buffer t % 2."""
        item = pid + t * PROGRAMS
        mbarrier.expect(sbars.index(t % 2), scale_desc.block_type.nbytes)
        tma.async_copy_global_to_shared(scale_desc, [(item % row_blocks) * ROWS, (item // row_blocks) * ITEM_SEGS * 8],
                                        sbars.index(t % 2), buffers.index(t % 2))

    @gluon.jit
    def _lane_operands(words, scales, c, W: gl.constexpr, tile: gl.constexpr, lane: gl.constexpr):
        """One segment's [P, 2] operands (row-a codes, row-b codes, their scale bytes as int32)
        from the shared buffers: rows ``8 w + g`` and ``8 W + 8 w + g``, see the module docstring."""
        P: gl.constexpr = 32 * W
        a = gl.convert_layout(gl.reshape(words.slice(0, 8 * W, dim=0).load(tile), [P, 2]), lane)
        b = gl.convert_layout(gl.reshape(words.slice(8 * W, 8 * W, dim=0).load(tile), [P, 2]), lane)
        seg_scales = scales.slice(8 * c, 8, dim=1)
        sa = gl.convert_layout(gl.reshape(seg_scales.slice(0, 8 * W, dim=0).load(tile), [P, 2]), lane)
        sb = gl.convert_layout(gl.reshape(seg_scales.slice(8 * W, 8 * W, dim=0).load(tile), [P, 2]), lane)
        return a, b, sa.to(gl.int32), sb.to(gl.int32)

    @gluon.jit
    def _item_epilogue(acc0, acc1, acc2, acc3, scale, row0, rb, out_ptr, ws_ptr, counter_ptr, M, N, stride_om,
                       split, W: gl.constexpr, lane: gl.constexpr):
        """Rows ``[row0, row0 + 16 W)``: store the sums (one K chunk), or add them into the fp32
        workspace, the last of the row block's ``split`` chunks (atomic ticket) writing the output
        and zeroing the workspace and its ticket (as ``_skinny_kernel``)."""
        P: gl.constexpr = 32 * W
        pv = gl.arange(0, P, layout=gl.SliceLayout(1, lane))
        ra = row0 + 8 * (pv // 32) + (pv % 32) // 4
        rb_rows = ra + 8 * W
        tok = 2 * (pv % 4)
        sums = (gl.sum(acc0, axis=1) * scale, gl.sum(acc1, axis=1) * scale,
                gl.sum(acc2, axis=1) * scale, gl.sum(acc3, axis=1) * scale)
        rows = (ra, ra, rb_rows, rb_rows)
        toks = (tok, tok + 1, tok, tok + 1)
        if split == 1:
            for i in gl.static_range(4):
                mask = (toks[i] < M) & (rows[i] < N)
                gl.store(out_ptr + toks[i] * stride_om + rows[i], sums[i].to(out_ptr.dtype.element_ty), mask=mask)
        else:
            for i in gl.static_range(4):
                mask = (toks[i] < M) & (rows[i] < N)
                gl.atomic_add(ws_ptr + toks[i] * N + rows[i], sums[i], mask=mask, sem="relaxed", scope="gpu")
            gl.thread_barrier()
            arrived = gl.atomic_add(counter_ptr + rb, 1, sem="acq_rel", scope="gpu")
            if arrived == split - 1:
                for i in gl.static_range(4):
                    mask = (toks[i] < M) & (rows[i] < N)
                    offs = toks[i] * N + rows[i]
                    summed = gl.load(ws_ptr + offs, mask=mask, other=0.0, cache_modifier=".cg")
                    gl.store(out_ptr + toks[i] * stride_om + rows[i], summed.to(out_ptr.dtype.element_ty), mask=mask)
                    gl.store(ws_ptr + offs, gl.zeros_like(summed), mask=mask, cache_modifier=".cg")
                gl.atomic_xchg(counter_ptr + rb, 0, sem="relaxed", scope="gpu")

    @gluon.jit
    def _skinny_stream_kernel(
        codes_desc, scale_desc, x_ptr, g_ptr, out_ptr, ws_ptr, counter_ptr, zero_ptr,
        M, N, K, stride_xm, stride_om,
        ITEM_SEGS: gl.constexpr, STAGES: gl.constexpr, PROGRAMS: gl.constexpr, W: gl.constexpr,
        PTX: gl.constexpr, num_warps: gl.constexpr,
    ):
        """``out = x @ W^T`` for M <= 8 tokens. Work items are (row block of 16 W rows, chunk of
        ITEM_SEGS segments); program p takes items p, p + PROGRAMS, ... and streams their
        segments through a STAGES-deep ring of TMA copies (each item's block scales one item
        ahead, double-buffered), so the copies run ahead across item boundaries."""
        ROWS: gl.constexpr = 16 * W
        P: gl.constexpr = 32 * W
        pid = gl.program_id(0)
        row_blocks = gl.cdiv(N, ROWS)
        segments = K // 128
        split = gl.cdiv(segments, ITEM_SEGS)
        mine = gl.cdiv(row_blocks * split - pid, PROGRAMS)
        total = mine * ITEM_SEGS
        plain: gl.constexpr = gl.SwizzledSharedLayout(vec=1, per_phase=1, max_phase=1, order=[1, 0])
        ring = gl.allocate_shared_memory(gl.uint8, [STAGES, ROWS, 64], codes_desc.layout)
        scale_buffers = gl.allocate_shared_memory(gl.uint8, [2, ROWS, 8 * ITEM_SEGS], scale_desc.layout)
        bars = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
        sbars = gl.allocate_shared_memory(gl.int64, [2, 1], mbarrier.MBarrierLayout())
        for i in gl.static_range(STAGES):
            mbarrier.init(bars.index(i), count=1)
        for i in gl.static_range(2):
            mbarrier.init(sbars.index(i), count=1)
        fence_async_shared()
        if mine > 0:
            _issue_scales(scale_desc, scale_buffers, sbars, 0, pid, row_blocks, ITEM_SEGS, ROWS, PROGRAMS)
        for first in gl.static_range(STAGES):
            if first < total:
                _issue_codes(codes_desc, ring, bars, first, pid, row_blocks, ITEM_SEGS, ROWS, STAGES, PROGRAMS)

        tile: gl.constexpr = gl.BlockedLayout([1, 2], [8, 4], [W, 1], [1, 0])
        lane: gl.constexpr = gl.BlockedLayout([1, 2], [32, 1], [W, 1], [1, 0])
        p = gl.arange(0, P, layout=gl.SliceLayout(1, lane))[:, None]
        h = gl.arange(0, 2, layout=gl.SliceLayout(0, lane))[None, :]
        g = (p % 32) // 4
        q = p % 4
        zeros = zero_ptr.to(gl.int64, bitcast=True)
        # the shift decode's 2^-7 (w4a16_skinny_ptx.SHIFT_DECODE_EXPONENT) and the global scale
        scale = gl.load(g_ptr) * 128.0
        for t in range(mine):
            item = pid + t * PROGRAMS
            rb = item % row_blocks
            # this item's scales have landed; the next item's go into the other buffer
            mbarrier.wait(sbars.index(t % 2), (t // 2) & 1)
            if t + 1 < mine:
                _issue_scales(scale_desc, scale_buffers, sbars, t + 1, pid, row_blocks, ITEM_SEGS, ROWS, PROGRAMS)
            scales = scale_buffers.index(t % 2)._reinterpret(gl.uint8, [ROWS, 8 * ITEM_SEGS], plain)
            acc0 = gl.zeros([P, 2], gl.float32, lane)
            acc1 = gl.zeros([P, 2], gl.float32, lane)
            acc2 = gl.zeros([P, 2], gl.float32, lane)
            acc3 = gl.zeros([P, 2], gl.float32, lane)
            for c in gl.static_range(ITEM_SEGS):
                step = t * ITEM_SEGS + c
                seg = (item // row_blocks) * ITEM_SEGS + c
                slot = step % STAGES
                mbarrier.wait(bars.index(slot), (step // STAGES) & 1)
                words = ring.index(slot)._reinterpret(gl.int64, [ROWS, 8], plain)
                a, b, sa, sb = _lane_operands(words, scales, c, W, tile, lane)
                gl.thread_barrier()  # every warp has its operands: the slot can be refilled
                if step + STAGES < total:
                    _issue_codes(codes_desc, ring, bars, step + STAGES, pid, row_blocks, ITEM_SEGS, ROWS, STAGES,
                                 PROGRAMS)
                ok = (g < M) & (seg < segments)
                col = seg * 128 + q * 32 + h * 16
                x0 = gl.where(ok, (x_ptr + g * stride_xm + col).to(gl.int64, bitcast=True), zeros)
                c0, c1, c2, c3 = gl.inline_asm_elementwise(
                    PTX, "=f,=f,=f,=f,l,l,r,r,l", [a, b, sa, sb, x0],
                    dtype=(gl.float32, gl.float32, gl.float32, gl.float32), is_pure=True, pack=1)
                acc0 += c0
                acc1 += c1
                acc2 += c2
                acc3 += c3
            _item_epilogue(acc0, acc1, acc2, acc3, scale, rb * ROWS, rb, out_ptr, ws_ptr, counter_ptr, M, N,
                           stride_om, split, W, lane)


@functools.cache
def _layout():
    """Unswizzled shared layout of the byte tiles the TMA copies (read back row-major)."""
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
    """``out (M, N) = x (M, K) @ W^T`` for a packed NVFP4 weight (``supported`` must hold).
    ``cfg``: ``num_warps`` (W: 16 W rows per work item), ``ITEM_SEGS`` (128-column segments per
    item, 2-32), ``STAGES`` (TMA ring depth), ``per_sm`` (persistent programs per SM). ``ptx``
    replaces the per-lane PTX (``scripts/skinny_stream_probe.py``'s loads-only probe)."""
    from residq.kernels.w4a16_skinny import _skinny_workspace  # the shared self-resetting workspace

    m, k = x.shape
    codes, scale = packed["codes"], packed["scale"]
    n = codes.shape[0]
    warps = cfg["num_warps"]
    item_segs = max(2, min(cfg["ITEM_SEGS"], k // 128) // 2 * 2)  # even: 16-byte rows of scales
    rows = 16 * warps
    split = -(-(k // 128) // item_segs)
    row_blocks = -(-n // rows)
    codes_desc = GluonDescriptor(codes, [n, k // 2], [codes.stride(0), 1], [rows, SEGMENT_BYTES], _layout())
    scale_desc = GluonDescriptor(scale, [n, k // 16], [scale.stride(0), 1], [rows, 8 * item_segs], _layout())
    programs = min(row_blocks * split, cfg.get("per_sm", 2) * w4a4_tma._sm_count(
        x.device.index if x.device.index is not None else torch.cuda.current_device()))
    ws, counters, zeros = _skinny_workspace(x.device, m * n if split > 1 else 0, row_blocks)
    _skinny_stream_kernel[(programs,)](
        codes_desc, scale_desc, x, packed["global_scale"], out, ws, counters, zeros,
        m, n, k, x.stride(0), out.stride(0),
        ITEM_SEGS=item_segs, STAGES=cfg.get("STAGES", 4), PROGRAMS=programs, W=warps,
        PTX=ptx or skinny_mma_ptx(0, x.dtype == torch.bfloat16, 1), num_warps=warps,
    )
    return out
