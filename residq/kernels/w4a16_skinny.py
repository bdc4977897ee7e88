"""The skinny (decode) W4A16 kernel: M <= 16 tokens, K % 128 == 0.

One ``mma.m16n8k16`` fragment per warp and 16 weight rows, built in registers straight from the
packed bytes by inline PTX (no shared memory, no data exchange between threads; the layout is
described below); split-K through a self-resetting fp32 workspace, one launch per call.
``residq.kernels.w4a16.launch`` chooses between this kernel and the tiled one
(``resolve_config``); the packed layout is the same for both (``block_formats.py``).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from types import MappingProxyType

import torch
import triton
import triton.language as tl

from residq.kernels.block_formats import FORMAT_IDS
from residq.kernels.w4a16_skinny_plain import lane_segment_plain
from residq.kernels.w4a16_skinny_ptx import skinny_mma_ptx

SM_COUNT_GUESS = 132
_skinny_workspaces: dict[torch.device, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}

#
# Decode-time kernel. Work is spread the way a Hopper ``mma.sync.m16n8k16`` wants it, so that
# no data moves between threads: a warp owns 16 weight rows, lane (g, q) = (lane // 4, lane % 4)
# holds rows g and g + 8 and, of every 128-column segment of them, the 16 packed bytes
# [16 q, 16 q + 16). Those 32 codes of each row are 8 MMA k-slabs' worth for this lane (4 per
# slab per row); inside a slab the K positions are permuted consistently for weights and x
# (any permutation of K leaves the sum unchanged). Activations x (M <= 16 rows) are the MMA's
# B operand (n = x row), so one instruction serves 16 weight rows x 8 tokens. A program owns
# BN = 16 * num_warps * R rows and CH segments of K; its result goes through ``_reduce_store``.
#
# The per-lane work (decode 32 codes of two rows to exact 16-bit values, block-scale multiply,
# 8 MMAs per 8 tokens, x loaded straight from global memory) is one inline-PTX block; the
# interpreter (and ``use_asm=False``) computes the same per-lane partial sums with plain tensor
# arithmetic instead (``w4a16_skinny_plain.py``). The PTX is built in ``w4a16_skinny_ptx.py``.


@triton.jit
def _segment_operands(codes_ptr, scale_ptr, row_a, row_b, q, h, seg, segments, N, K, FMT: tl.constexpr):
    """One segment's packed codes of rows ``row_a`` and ``row_b`` (int64 ``[P, 2]``, 8 bytes per
    half) and their raw block scales (int32; NVFP4 ``[P, 2]``, MXFP4 ``[P, 1]``, INT4 zeros)."""
    seg_ok = (q * 0 + seg) < segments
    ok_a = (row_a < N) & seg_ok
    ok_b = (row_b < N) & seg_ok
    stride64 = tl.multiple_of(K // 16, 8)  # int64 words per row (K % 128 == 0)
    EMPTY: tl.constexpr = -8608480567731124088 if FMT == 2 else 0  # bytes 0x88 (INT4 zero) / 0
    codes64 = codes_ptr.to(tl.pointer_type(tl.int64), bitcast=True)
    col64 = seg * 8 + q * 2 + h  # [P, 2]
    a = tl.load(codes64 + row_a * stride64 + col64, mask=ok_a, other=EMPTY)
    b = tl.load(codes64 + row_b * stride64 + col64, mask=ok_b, other=EMPTY)
    if FMT == 0:  # the E4M3 byte of each half's block of 16
        stride_s = tl.multiple_of(K // 16, 8)
        sa = tl.load(scale_ptr + row_a * stride_s + seg * 8 + q * 2 + h, mask=ok_a, other=0)
        sb = tl.load(scale_ptr + row_b * stride_s + seg * 8 + q * 2 + h, mask=ok_b, other=0)
    elif FMT == 1:  # the lane's E8M0 byte (block of 32), loaded [P, 1]: a [P, 2] load
        # repeating one address per row could take a layout that splits h across lanes
        stride_s = tl.multiple_of(K // 32, 4)
        sa = tl.load(scale_ptr + row_a * stride_s + seg * 4 + q, mask=ok_a, other=0)
        sb = tl.load(scale_ptr + row_b * stride_s + seg * 4 + q, mask=ok_b, other=0)
    else:  # INT4 steps are applied after the MMAs
        sa = q * 0
        sb = q * 0
    return a, b, sa.to(tl.int32), sb.to(tl.int32)


@triton.jit
def _lane_mma(a, b, sa, sb, x_ptr, zeros, g, col, ok, M, stride_xm, T: tl.constexpr, PTX: tl.constexpr):
    """``skinny_mma_ptx`` on one lane's operands: x rows g (and g + 8 with T == 2) from column
    ``col``, read from the zero buffer where ``ok`` is False or the row is past M. Returns the 8
    accumulator terms (the last 4 are zeros with T == 1)."""
    x0 = tl.where((g < M) & ok, (x_ptr + g * stride_xm + col).to(tl.int64, bitcast=True), zeros)
    if T == 1:
        c0, c1, c2, c3 = tl.inline_asm_elementwise(
            PTX, "=f,=f,=f,=f,l,l,r,r,l", [a, b, sa, sb, x0],
            dtype=(tl.float32, tl.float32, tl.float32, tl.float32), is_pure=True, pack=1)
        c4 = tl.zeros_like(c0)
        c5, c6, c7 = c4, c4, c4
    else:
        x1 = tl.where((g + 8 < M) & ok, (x_ptr + (g + 8) * stride_xm + col).to(tl.int64, bitcast=True), zeros)
        c0, c1, c2, c3, c4, c5, c6, c7 = tl.inline_asm_elementwise(
            PTX, "=f,=f,=f,=f,=f,=f,=f,=f,l,l,r,r,l,l", [a, b, sa, sb, x0, x1],
            dtype=(tl.float32,) * 8, is_pure=True, pack=1)
    return c0, c1, c2, c3, c4, c5, c6, c7


@triton.jit
def _ragged_segment_asm(codes_ptr, scale_ptr, x_ptr, zero_ptr, row_a, row_b, g, q, h, seg, segments, M, N, K,
                        stride_xm, FMT: tl.constexpr, T: tl.constexpr, PTX: tl.constexpr):
    """``RAGGED_K`` (FP4, K % 16 == 0 but rows not 16-byte aligned): one segment's MMA sums, the
    two 8-byte halves each run on ``[P, 1]`` operands; returned ``[P, 2]``, the sums in column 0.

    Why ``[P, 1]``: the PTX's MMA fragments need element p on lane p % 32 of warp p // 32.
    ``_segment_operands``' ``[P, 2]`` tiles get that layout (both halves in one thread) only
    from 16-byte vector loads; with 8-byte-aligned rows Triton lays h across lanes instead.
    A ``[P, 1]`` tensor has one element per lane in p order, whatever the alignment. Halves
    past column K read code 0 and x from the zero buffer.
    """
    codes64 = codes_ptr.to(tl.pointer_type(tl.int64), bitcast=True)
    zeros = zero_ptr.to(tl.int64, bitcast=True)
    s0 = tl.zeros_like(q).to(tl.float32)
    s1, s2, s3, s4, s5, s6, s7 = s0, s0, s0, s0, s0, s0, s0
    for hh in tl.static_range(2):
        col = seg * 128 + q * 32 + hh * 16  # [P, 1]: this half's first column
        ok = (col < K) & (seg < segments)
        ok_a = ok & (row_a < N)
        ok_b = ok & (row_b < N)
        word = seg * 8 + q * 2 + hh
        a = tl.load(codes64 + row_a * (K // 16) + word, mask=ok_a, other=0)
        b = tl.load(codes64 + row_b * (K // 16) + word, mask=ok_b, other=0)
        if FMT == 0:
            sa = tl.load(scale_ptr + row_a * (K // 16) + word, mask=ok_a, other=0).to(tl.int32)
            sb = tl.load(scale_ptr + row_b * (K // 16) + word, mask=ok_b, other=0).to(tl.int32)
        else:
            sa = tl.load(scale_ptr + row_a * (K // 32) + seg * 4 + q, mask=ok_a, other=0).to(tl.int32)
            sb = tl.load(scale_ptr + row_b * (K // 32) + seg * 4 + q, mask=ok_b, other=0).to(tl.int32)
        c0, c1, c2, c3, c4, c5, c6, c7 = _lane_mma(a, b, sa, sb, x_ptr, zeros, g, col, ok, M, stride_xm, T, PTX)
        s0 += c0
        s1 += c1
        s2 += c2
        s3 += c3
        s4 += c4  # zeros with T == 1 (unused by the caller then)
        s5 += c5
        s6 += c6
        s7 += c7
    first = h == 0
    return (tl.where(first, s0, 0.0), tl.where(first, s1, 0.0), tl.where(first, s2, 0.0), tl.where(first, s3, 0.0),
            tl.where(first, s4, 0.0), tl.where(first, s5, 0.0), tl.where(first, s6, 0.0), tl.where(first, s7, 0.0))


@triton.jit
def _skinny_out(acc, row, token, out_ptr, ws_ptr, M, N, stride_om, SPLIT: tl.constexpr):
    """Store (SPLIT == 1) or atomically add into the fp32 workspace one accumulator tensor."""
    mask = (token < M) & (row < N)
    if SPLIT == 1:
        tl.store(out_ptr + token * stride_om + row, acc.to(out_ptr.dtype.element_ty), mask=mask)
    else:
        tl.atomic_add(ws_ptr + token * N + row, acc, mask=mask, sem="relaxed", scope="gpu")


@triton.jit
def _skinny_finish(row, token, out_ptr, ws_ptr, M, N, stride_om):
    """Last program of a row block: workspace sums -> output, workspace back to zero."""
    mask = (token < M) & (row < N)
    offs = token * N + row
    summed = tl.load(ws_ptr + offs, mask=mask, other=0.0, cache_modifier=".cg")
    tl.store(out_ptr + token * stride_om + row, summed.to(out_ptr.dtype.element_ty), mask=mask)
    tl.store(ws_ptr + offs, tl.zeros_like(summed), mask=mask, cache_modifier=".cg")


@triton.jit(do_not_specialize=["M"])
def _skinny_kernel(
    x_ptr, codes_ptr, scale_ptr, g_ptr, g2_ptr, g3_ptr, out_ptr, ws_ptr, counter_ptr, zero_ptr,
    M, N, K, K_MAIN, stride_xm, stride_om,
    FMT: tl.constexpr, T: tl.constexpr, R: tl.constexpr, CH: tl.constexpr, SPLIT: tl.constexpr,
    W: tl.constexpr, BF16: tl.constexpr, USE_ASM: tl.constexpr, PTX: tl.constexpr,
    PREFETCH: tl.constexpr = 2, HAS_G2: tl.constexpr = False, RAGGED_K: tl.constexpr = False,
):
    """``out = x @ W^T`` for M <= 8 T tokens (T token tiles of 8), K a multiple of 128 (or, with
    ``RAGGED_K``, of 16: the last segment's missing halves count as zeros; FP4 only).

    NVFP4: the fp32 sums are multiplied by the weight's global scale ``g`` and, with ``HAS_G2``,
    by a second float32 scalar: ``g2`` for programs whose segments start below column
    ``K_MAIN``, ``g3`` for the others (W4A4 at decode sizes: the activation's global scale, and
    ARCQuant's residual scale for the columns from K_MAIN on; the launcher keeps every program
    on one side).

    Program (pid_n, pid_k): rows ``[pid_n * BN, +BN)``, BN = 16 W R, and the 128-column
    segments ``[pid_k * CH, +CH)``. Tensors are ``[P, 2]``, P = 32 W R: element (p, h) is the
    8-byte half h of the 16 bytes of lane p % 32 of warp (p // 32) % W (Triton's layout of a
    16-byte-per-row int64 tile; all lanes of a warp share p // 32), so every PTX call of a warp
    sees one consistent MMA fragment (see the comment above ``skinny_mma_ptx``).
    """
    BN: tl.constexpr = 16 * W * R
    P: tl.constexpr = 32 * W * R
    pid_n = tl.program_id(0)
    pid_k = tl.program_id(1)
    p = tl.arange(0, P)[:, None]
    h = tl.arange(0, 2)[None, :]
    g = (p % 32) // 4
    q = p % 4
    row_a = pid_n * BN + (p // 32) * 16 + g  # [P, 1]
    row_b = row_a + 8
    segments = tl.cdiv(K, 128)
    acc0 = tl.zeros([P, 2], dtype=tl.float32)  # (row g, token 2q), summed over h at the end
    acc1 = tl.zeros([P, 2], dtype=tl.float32)  # (row g, token 2q + 1)
    acc2 = tl.zeros([P, 2], dtype=tl.float32)  # (row g + 8, token 2q)
    acc3 = tl.zeros([P, 2], dtype=tl.float32)  # (row g + 8, token 2q + 1)
    acc4 = tl.zeros([P, 2], dtype=tl.float32)  # the same, tokens + 8 (T == 2)
    acc5 = tl.zeros([P, 2], dtype=tl.float32)
    acc6 = tl.zeros([P, 2], dtype=tl.float32)
    acc7 = tl.zeros([P, 2], dtype=tl.float32)
    if USE_ASM and not RAGGED_K:
        a_next, b_next, sa_next, sb_next = _segment_operands(
            codes_ptr, scale_ptr, row_a, row_b, q, h, pid_k * CH, segments, N, K, FMT)
        if PREFETCH == 2:
            a_next2, b_next2, sa_next2, sb_next2 = _segment_operands(
                codes_ptr, scale_ptr, row_a, row_b, q, h, pid_k * CH + 1, segments, N, K, FMT)
    for c in tl.static_range(CH):
        seg = pid_k * CH + c
        seg_ok = (q * 0 + seg) < segments  # [P, 1] (the interpreter wants tensor masks)
        ok_a = (row_a < N) & seg_ok
        ok_b = (row_b < N) & seg_ok
        if USE_ASM and RAGGED_K:
            c0, c1, c2, c3, c4, c5, c6, c7 = _ragged_segment_asm(
                codes_ptr, scale_ptr, x_ptr, zero_ptr, row_a, row_b, g, q, h, seg, segments, M, N, K,
                stride_xm, FMT, T, PTX)
        elif USE_ASM:
            # this segment's operands were loaded PREFETCH segments ago (see _segment_operands);
            # load the ones PREFETCH segments ahead now, so their latency overlaps these MMAs
            a, b, sa, sb = a_next, b_next, sa_next, sb_next
            if PREFETCH == 2:
                a_next, b_next, sa_next, sb_next = a_next2, b_next2, sa_next2, sb_next2
            if c + PREFETCH < CH:
                if PREFETCH == 2:
                    a_next2, b_next2, sa_next2, sb_next2 = _segment_operands(
                        codes_ptr, scale_ptr, row_a, row_b, q, h, pid_k * CH + c + 2, segments, N, K, FMT)
                else:
                    a_next, b_next, sa_next, sb_next = _segment_operands(
                        codes_ptr, scale_ptr, row_a, row_b, q, h, pid_k * CH + c + 1, segments, N, K, FMT)
            zeros = zero_ptr.to(tl.int64, bitcast=True)
            c0, c1, c2, c3, c4, c5, c6, c7 = _lane_mma(a, b, sa, sb, x_ptr, zeros, g, seg * 128 + q * 32 + h * 16,
                                                       seg_ok, M, stride_xm, T, PTX)
        else:
            first = h == 0  # the plain path puts a whole segment's sums into half 0
            c0, c1, c2, c3 = lane_segment_plain(codes_ptr, scale_ptr, x_ptr, row_a, row_b, q, seg, M,
                                                 N, K, stride_xm, FMT, 0)
            c0, c1, c2, c3 = (tl.where(first, c0, 0.0), tl.where(first, c1, 0.0),
                              tl.where(first, c2, 0.0), tl.where(first, c3, 0.0))
            if T == 2:
                c4, c5, c6, c7 = lane_segment_plain(codes_ptr, scale_ptr, x_ptr, row_a, row_b, q, seg,
                                                     M, N, K, stride_xm, FMT, 1)
                c4, c5, c6, c7 = (tl.where(first, c4, 0.0), tl.where(first, c5, 0.0),
                                  tl.where(first, c6, 0.0), tl.where(first, c7, 0.0))
        if FMT == 2:  # INT4: the fp16 step of the segment's (single) group, per row
            step_a = tl.load(scale_ptr + row_a * (K // 128) + seg, mask=ok_a, other=0.0).to(tl.float32)
            step_b = tl.load(scale_ptr + row_b * (K // 128) + seg, mask=ok_b, other=0.0).to(tl.float32)
            acc0 += c0 * step_a
            acc1 += c1 * step_a
            acc2 += c2 * step_b
            acc3 += c3 * step_b
            if T == 2:
                acc4 += c4 * step_a
                acc5 += c5 * step_a
                acc6 += c6 * step_b
                acc7 += c7 * step_b
        else:
            acc0 += c0
            acc1 += c1
            acc2 += c2
            acc3 += c3
            if T == 2:
                acc4 += c4
                acc5 += c5
                acc6 += c6
                acc7 += c7
    scale = 1.0
    if FMT == 0:
        scale = tl.load(g_ptr)
        if HAS_G2:
            scale = scale * tl.where(pid_k * CH * 128 < K_MAIN, tl.load(g2_ptr), tl.load(g3_ptr))
        if USE_ASM:  # the shift decode's 2^-7 (see w4a16_skinny_ptx.SHIFT_DECODE_EXPONENT)
            scale = scale * 128.0
    pv = tl.arange(0, P)
    ra = pid_n * BN + (pv // 32) * 16 + (pv % 32) // 4
    rb = ra + 8
    tok = 2 * (pv % 4)
    _skinny_out(tl.sum(acc0, axis=1) * scale, ra, tok, out_ptr, ws_ptr, M, N, stride_om, SPLIT)
    _skinny_out(tl.sum(acc1, axis=1) * scale, ra, tok + 1, out_ptr, ws_ptr, M, N, stride_om, SPLIT)
    _skinny_out(tl.sum(acc2, axis=1) * scale, rb, tok, out_ptr, ws_ptr, M, N, stride_om, SPLIT)
    _skinny_out(tl.sum(acc3, axis=1) * scale, rb, tok + 1, out_ptr, ws_ptr, M, N, stride_om, SPLIT)
    if T == 2:
        _skinny_out(tl.sum(acc4, axis=1) * scale, ra, tok + 8, out_ptr, ws_ptr, M, N, stride_om, SPLIT)
        _skinny_out(tl.sum(acc5, axis=1) * scale, ra, tok + 9, out_ptr, ws_ptr, M, N, stride_om, SPLIT)
        _skinny_out(tl.sum(acc6, axis=1) * scale, rb, tok + 8, out_ptr, ws_ptr, M, N, stride_om, SPLIT)
        _skinny_out(tl.sum(acc7, axis=1) * scale, rb, tok + 9, out_ptr, ws_ptr, M, N, stride_om, SPLIT)
    if SPLIT > 1:
        tl.debug_barrier()
        arrived = tl.atomic_add(counter_ptr + pid_n, 1, sem="acq_rel", scope="gpu")
        if arrived == SPLIT - 1:
            _skinny_finish(ra, tok, out_ptr, ws_ptr, M, N, stride_om)
            _skinny_finish(ra, tok + 1, out_ptr, ws_ptr, M, N, stride_om)
            _skinny_finish(rb, tok, out_ptr, ws_ptr, M, N, stride_om)
            _skinny_finish(rb, tok + 1, out_ptr, ws_ptr, M, N, stride_om)
            if T == 2:
                _skinny_finish(ra, tok + 8, out_ptr, ws_ptr, M, N, stride_om)
                _skinny_finish(ra, tok + 9, out_ptr, ws_ptr, M, N, stride_om)
                _skinny_finish(rb, tok + 8, out_ptr, ws_ptr, M, N, stride_om)
                _skinny_finish(rb, tok + 9, out_ptr, ws_ptr, M, N, stride_om)
            tl.atomic_xchg(counter_ptr + pid_n, 0, sem="relaxed", scope="gpu")


@functools.lru_cache(maxsize=1024)
def skinny_config(m: int, n: int, k: int, fmt: str) -> Mapping:
    """Configuration of ``_skinny_kernel`` (M <= 16): 4 warps x 16 rows, and enough 128-column
    segments per program (CH) that a program streams >= 16 KB of codes while the grid still
    gives every SM several programs (tuned on H100, see benchmarks/README.md). Cached per
    shape (it is asked on every decode call), hence read-only: copy it to change it."""
    rows = 64
    segments = k // 128
    ch = 8
    while ch > 2 and triton.cdiv(n, rows) * triton.cdiv(segments, ch) < 3 * SM_COUNT_GUESS:
        ch //= 2
    # FP4: a 128-register cap lets ptxas issue the prefetched segments' loads up front (without
    # it, it sinks them below the first MMAs); 3-8% faster on H100 at M = 1, INT4 unchanged
    maxnreg = 128 if fmt in ("nvfp4", "mxfp4") else None
    return MappingProxyType({"kernel": "skinny", "num_warps": 4, "R": 1, "CH": min(ch, segments),
                             "PREFETCH": 2, "maxnreg": maxnreg})


def _skinny_workspace(device: torch.device, elems: int, counters: int):
    """Zeroed fp32 sums, tile counters and 256 zero bytes; the kernel leaves them zeroed."""
    held = _skinny_workspaces.get(device)
    if held is None or held[0].numel() < elems or held[1].numel() < counters:
        held = (torch.zeros(max(elems, 1), dtype=torch.float32, device=device),
                torch.zeros(max(counters, 1024), dtype=torch.int32, device=device),
                torch.zeros(256, dtype=torch.uint8, device=device))
        _skinny_workspaces[device] = held
    return held


SKINNY_MAX_M = 8  # the skinny kernel is the default up to here (one token tile); 9..16 below
SKINNY_T2_MAX_WEIGHTS = 4096 * 4096  # 9..16 tokens: skinny up to this many weights (N K), else tiled


def skinny_supported(x: torch.Tensor, packed: dict[str, torch.Tensor], fmt: str) -> bool:
    """True when ``_skinny_kernel`` can run: M <= 16, K % 128 == 0, 16-byte aligned rows."""
    m, k = x.shape
    codes, scale = packed["codes"], packed["scale"]
    return (m <= 16 and k % 128 == 0 and x.stride(1) == 1 and x.stride(0) % 8 == 0
            and x.data_ptr() % 16 == 0 and codes.is_contiguous() and codes.data_ptr() % 16 == 0
            and scale.is_contiguous() and scale.data_ptr() % 4 == 0)


def launch_skinny(x, packed, fmt, out, cfg, use_asm, extra_scale=None, k_main=None, extra_scale_after=None):
    """Run ``_skinny_kernel`` for ``x (M, K) @ W^T`` into ``out (M, N)`` with config ``cfg``.

    ``extra_scale`` (NVFP4): a float32 scalar tensor that also multiplies the fp32 sums; with
    ``k_main`` (a multiple of 128 * CH), ``extra_scale_after`` replaces it for columns from
    ``k_main`` on. K need only be a multiple of 16 (NVFP4) or 32 (MXFP4) here."""
    m, k = x.shape
    n = packed["codes"].shape[0]
    warps, r, ch = cfg["num_warps"], cfg.get("R", 1), cfg["CH"]
    rows = 16 * warps * r
    split = triton.cdiv(triton.cdiv(k, 128), ch)
    if k_main is not None and k_main % (128 * ch):
        raise ValueError(f"k_main={k_main} must be a multiple of 128 * CH = {128 * ch}")
    grid = (triton.cdiv(n, rows), split)
    ws, counters, zeros = _skinny_workspace(x.device, m * n if split > 1 else 0, grid[0])
    fmt_id = FORMAT_IDS[fmt]
    bf16 = x.dtype == torch.bfloat16
    tiles = 1 if m <= 8 else 2
    _skinny_kernel[grid](
        x, packed["codes"], packed["scale"], packed.get("global_scale", ws),
        extra_scale if extra_scale is not None else ws,
        extra_scale_after if extra_scale_after is not None else (extra_scale if extra_scale is not None else ws),
        out, ws, counters, zeros,
        m, n, k, k if k_main is None else k_main, x.stride(0), out.stride(0),
        FMT=fmt_id, T=tiles, R=r, CH=ch, SPLIT=split, W=warps, BF16=bf16, USE_ASM=use_asm,
        PTX=skinny_mma_ptx(fmt_id, bf16, tiles) if use_asm else "", PREFETCH=cfg.get("PREFETCH", 2),
        HAS_G2=extra_scale is not None, RAGGED_K=k % 128 != 0,
        num_warps=warps, num_stages=1, maxnreg=cfg.get("maxnreg"),
    )
    return out
