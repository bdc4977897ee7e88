"""The skinny (decode) W4A16 kernel: M <= 16 tokens, K % 128 == 0.

One ``mma.m16n8k16`` fragment per warp and 16 weight rows, built in registers straight from the
packed bytes by inline PTX (no shared memory, no data exchange between threads; the layout is
described below); split-K through a self-resetting fp32 workspace, one launch per call.
``residq.kernels.w4a16.launch`` chooses between this kernel and the tiled one
(``resolve_config``); the packed layout is the same for both (``block_formats.py``).
"""

from __future__ import annotations

import functools

import torch
import triton
import triton.language as tl

from residq.kernels.block_formats import FORMAT_IDS
from residq.kernels.triton_codes import e2m1_value, e4m3_value, power_of_two

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
# arithmetic instead.

_DECODE_FP4_TABLE = """
and.b32 m, {w}, 0x77777777;
shr.u32 m23, m, 16;
prmt.b32 h01, 0x3F3F3F00, 0x40404040, m;
prmt.b32 h23, 0x3F3F3F00, 0x40404040, m23;
shl.b32 t, {w}, 4;
prmt.b32 s01, t, {w}, 0xD9C8;
prmt.b32 s23, t, {w}, 0xFBEA;
lop3.b32 h01, s01, 0x80808080, h01, 0xEA;
lop3.b32 h23, s23, 0x80808080, h23, 0xEA;
prmt.b32 l01, 0xC0800000, 0xC0804000, m;
prmt.b32 l23, 0xC0800000, 0xC0804000, m23;
prmt.b32 {d0}, l01, h01, 0x6240;
prmt.b32 {d2}, l23, h23, 0x6240;
prmt.b32 {d1}, l01, h01, 0x7351;
prmt.b32 {d3}, l23, h23, 0x7351;
"""
_DECODE_INT4 = """
prmt.b32 t01, {w}, 0, 0x4140;
prmt.b32 t23, {w}, 0, 0x4342;
lop3.b32 {d0}, t01, 0x000F000F, magic, 0xEA;
lop3.b32 {d2}, t23, 0x000F000F, magic, 0xEA;
shr.u32 t01, t01, 4;
shr.u32 t23, t23, 4;
lop3.b32 {d1}, t01, 0x000F000F, magic, 0xEA;
lop3.b32 {d3}, t23, 0x000F000F, magic, 0xEA;
"""
# NVFP4 "shift" decode: codes n_a and n_{a+4} of a word (16 bits apart) land in the two halves of
# a 16-bit pair with one shift each for the magnitude and the sign. The 3 magnitude bits placed
# at the bottom of the exponent field give E2M1 * 2^-126 (bf16) or E2M1 * 2^-14 (fp16), exactly,
# code 1 (0.5) as a subnormal; the block scale is pre-multiplied by 2^119 (bf16) or 2^7 (fp16), so
# value * scale = E2M1 * s * 2^-7 exactly, and the kernel multiplies its fp32 sum by 2^7.
SHIFT_DECODE_EXPONENT = 7


def _shift_decode(word: str, dst: list[str], bf16: bool) -> list[str]:
    mag_pos, mask = (6, "0x01C001C0") if bf16 else (9, "0x0E000E00")
    lines = []
    for a in range(4):
        mag_shift, sign_shift = mag_pos - 4 * a, 12 - 4 * a
        op = f"shl.b32 t, {word}, {mag_shift};" if mag_shift >= 0 else f"shr.u32 t, {word}, {-mag_shift};"
        lines += [op, f"and.b32 t, t, {mask};"]
        if sign_shift:
            lines += [f"shl.b32 s01, {word}, {sign_shift};",
                      f"lop3.b32 {dst[a]}, s01, 0x80008000, t, 0xEA;"]
        else:
            lines.append(f"lop3.b32 {dst[a]}, {word}, 0x80008000, t, 0xEA;")
    return lines


@functools.cache
def skinny_mma_ptx(fmt: int, bf16: bool, n_tiles: int) -> str:
    """Inline PTX for one lane's 8-byte half of its 16 bytes of one 128-column segment.

    Operands (one element per call): outputs ``$0..$(4T-1)``: per token tile t the MMA
    accumulators c0..c3 (rows g, g, g+8, g+8; tokens 2q, 2q+1, 2q, 2q+1, + 8t); inputs: the
    row-g codes (b64), the row-(g+8) codes (b64), their raw block scales (b32 each: NVFP4 the
    E4M3 byte of this half's block, MXFP4 the E8M0 byte, INT4 unused) and per token tile the
    address of the 16 activations (32 bytes) that meet these codes (b64; lanes without a token
    read zeros instead). Every call runs 4 MMAs (k-slabs) per token tile; all lanes of a warp
    handle the same row group and half in the same call, so the MMA fragments line up.

    Every decoder returns, per 32-bit word of 8 codes n0..n7, four 16-bit pairs d0..d3 such that
    (d0, d1) are one k-slab's A pairs (k = 2q, 2q+1 | 2q+8, 2q+9) and (d2, d3) the next slab's;
    ``pairs`` names the codes in the low and high half of each, and the x pairs follow them.
    """
    kind = "bf16" if bf16 else "f16"
    outs = 4 * n_tiles
    a0, b0, sa, sb = (f"${outs + i}" for i in range(4))
    xptr = [f"${outs + 4 + t}" for t in range(n_tiles)]
    shift = fmt == 0
    pairs = [(0, 4), (1, 5), (2, 6), (3, 7)] if shift else [(0, 2), (1, 3), (4, 6), (5, 7)]
    lines = ["{",
             f".reg .b32 cw<2>, cv<2>, da<8>, db<8>, xr<{8 * n_tiles}>, sca, scb;",
             f".reg .f32 acc<{4 * n_tiles}>;",
             ".reg .b32 m, m23, h01, h23, l01, l23, t, s01, s23, t01, t23, magic, one, bias, f0, f1;",
             ".reg .b16 e01, q0, q1;",
             ".reg .f32 g0;",
             f"mov.b64 {{cw0, cw1}}, {a0};", f"mov.b64 {{cv0, cv1}}, {b0};"]
    for t in range(n_tiles):  # activations: 16 values (32 bytes) per token tile
        for v in range(2):
            regs = ", ".join(f"xr{8 * t + 4 * v + i}" for i in range(4))
            lines.append(f"ld.global.nc.v4.b32 {{{regs}}}, [{xptr[t]}+{16 * v}];")
    # the block scale as a 16-bit pair (both halves equal)
    if fmt == 0:  # E4M3 byte -> f16 (exact) -> x 2^119 (bf16) / 2^7 (fp16), see SHIFT_DECODE_EXPONENT
        for src, dst in ((sa, "sca"), (sb, "scb")):
            lines += [f"cvt.u16.u32 e01, {src};", "cvt.rn.f16x2.e4m3x2 f0, e01;", "mov.b32 {q0, q1}, f0;",
                      "cvt.f32.f16 g0, q0;",
                      f"mul.f32 g0, g0, {'0f7B000000' if bf16 else '0f43000000'};",
                      f"cvt.rn.{kind}x2.f32 {dst}, g0, g0;"]
    elif fmt == 1:  # E8M0 byte e -> bf16 bits e << 7
        for src, dst in ((sa, "sca"), (sb, "scb")):
            lines += [f"and.b32 f0, {src}, 0xFF;", "shl.b32 f0, f0, 7;", f"prmt.b32 {dst}, f0, 0, 0x1010;"]
    if fmt == 2:
        if bf16:
            lines += ["mov.b32 magic, 0x43004300;", "mov.b32 one, 0x3F803F80;", "mov.b32 bias, 0xC308C308;"]
        else:
            lines += ["mov.b32 magic, 0x64006400;", "mov.b32 bias, 0x64086408;"]
    lines += [f"mov.f32 acc{i}, 0f00000000;" for i in range(4 * n_tiles)]
    for word in range(2):
        for cw, dst, sc in (("cw", "da", "sca"), ("cv", "db", "scb")):
            regs = [f"{dst}{4 * word + i}" for i in range(4)]
            w = f"{cw}{word}"
            if fmt == 0:
                lines += _shift_decode(w, regs, bf16)
            elif fmt == 1:
                lines.append(_DECODE_FP4_TABLE.format(w=w, d0=regs[0], d1=regs[1], d2=regs[2], d3=regs[3]).strip())
            else:
                lines.append(_DECODE_INT4.format(w=w, d0=regs[0], d1=regs[1], d2=regs[2], d3=regs[3]).strip())
                for r in regs:
                    lines.append(f"fma.rn.bf16x2 {r}, {r}, one, bias;" if bf16 else f"sub.f16x2 {r}, {r}, bias;")
            if fmt != 2:
                lines += [f"mul.rn.{kind}x2 {r}, {r}, {sc};" for r in regs]
        for slab in range(2):  # d0 d1 (codes of pairs 0, 1) and d2 d3
            i0, i1 = 4 * word + 2 * slab, 4 * word + 2 * slab + 1
            a_regs = f"da{i0}, db{i0}, da{i1}, db{i1}"
            for t in range(n_tiles):
                for reg, (lo, hi) in zip(("f0", "f1"), pairs[2 * slab: 2 * slab + 2]):
                    # x register 4 word + j holds the activations of codes (2j, 2j+1) of the word
                    xa, xb = f"xr{8 * t + 4 * word + lo // 2}", f"xr{8 * t + 4 * word + hi // 2}"
                    sel = (0x10 if lo % 2 == 0 else 0x32) | ((0x54 if hi % 2 == 0 else 0x76) << 8)
                    lines.append(f"prmt.b32 {reg}, {xa}, {xb}, 0x{sel:04X};")
                c = ", ".join(f"acc{4 * t + i}" for i in range(4))
                lines.append(f"mma.sync.aligned.m16n8k16.row.col.f32.{kind}.{kind}.f32 "
                             f"{{{c}}}, {{{a_regs}}}, {{f0, f1}}, {{{c}}};")
    lines += [f"mov.f32 ${i}, acc{i};" for i in range(4 * n_tiles)]
    lines.append("}")
    return "\n".join(lines)


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
def _lane_segment_plain(codes_ptr, scale_ptr, x_ptr, row_a, row_b, q, seg, M, N, K, stride_xm,
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
    x_ptr, codes_ptr, scale_ptr, g_ptr, out_ptr, ws_ptr, counter_ptr, zero_ptr,
    M, N, K, stride_xm, stride_om,
    FMT: tl.constexpr, T: tl.constexpr, R: tl.constexpr, CH: tl.constexpr, SPLIT: tl.constexpr,
    W: tl.constexpr, BF16: tl.constexpr, USE_ASM: tl.constexpr, PTX: tl.constexpr,
):
    """``out = x @ W^T`` for M <= 8 T tokens (T token tiles of 8), K a multiple of 128.

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
    segments = K // 128
    stride64 = tl.multiple_of(K // 16, 8)  # int64 words per row (K % 128 == 0)
    EMPTY: tl.constexpr = -8608480567731124088 if FMT == 2 else 0  # bytes 0x88 (INT4 zero) / 0
    acc0 = tl.zeros([P, 2], dtype=tl.float32)  # (row g, token 2q), summed over h at the end
    acc1 = tl.zeros([P, 2], dtype=tl.float32)  # (row g, token 2q + 1)
    acc2 = tl.zeros([P, 2], dtype=tl.float32)  # (row g + 8, token 2q)
    acc3 = tl.zeros([P, 2], dtype=tl.float32)  # (row g + 8, token 2q + 1)
    acc4 = tl.zeros([P, 2], dtype=tl.float32)  # the same, tokens + 8 (T == 2)
    acc5 = tl.zeros([P, 2], dtype=tl.float32)
    acc6 = tl.zeros([P, 2], dtype=tl.float32)
    acc7 = tl.zeros([P, 2], dtype=tl.float32)
    for c in tl.static_range(CH):
        seg = pid_k * CH + c
        seg_ok = (q * 0 + seg) < segments  # [P, 1] (the interpreter wants tensor masks)
        ok_a = (row_a < N) & seg_ok
        ok_b = (row_b < N) & seg_ok
        if USE_ASM:
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
            sa = sa.to(tl.int32)
            sb = sb.to(tl.int32)
            zeros = zero_ptr.to(tl.int64, bitcast=True)
            x_off = seg * 128 + q * 32 + h * 16
            x_addr0 = tl.where((g < M) & seg_ok, (x_ptr + g * stride_xm + x_off).to(tl.int64, bitcast=True), zeros)
            if T == 1:
                c0, c1, c2, c3 = tl.inline_asm_elementwise(
                    PTX, "=f,=f,=f,=f,l,l,r,r,l", [a, b, sa, sb, x_addr0],
                    dtype=(tl.float32, tl.float32, tl.float32, tl.float32), is_pure=True, pack=1)
            else:
                x_addr1 = tl.where((g + 8 < M) & seg_ok,
                                   (x_ptr + (g + 8) * stride_xm + x_off).to(tl.int64, bitcast=True), zeros)
                c0, c1, c2, c3, c4, c5, c6, c7 = tl.inline_asm_elementwise(
                    PTX, "=f,=f,=f,=f,=f,=f,=f,=f,l,l,r,r,l,l", [a, b, sa, sb, x_addr0, x_addr1],
                    dtype=(tl.float32,) * 8, is_pure=True, pack=1)
        else:
            first = h == 0  # the plain path puts a whole segment's sums into half 0
            c0, c1, c2, c3 = _lane_segment_plain(codes_ptr, scale_ptr, x_ptr, row_a, row_b, q, seg, M,
                                                 N, K, stride_xm, FMT, 0)
            c0, c1, c2, c3 = (tl.where(first, c0, 0.0), tl.where(first, c1, 0.0),
                              tl.where(first, c2, 0.0), tl.where(first, c3, 0.0))
            if T == 2:
                c4, c5, c6, c7 = _lane_segment_plain(codes_ptr, scale_ptr, x_ptr, row_a, row_b, q, seg,
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
        if USE_ASM:  # the shift decode's 2^-7 (see SHIFT_DECODE_EXPONENT)
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


def skinny_config(m: int, n: int, k: int, fmt: str) -> dict:
    """Configuration of ``_skinny_kernel`` (M <= 16): 4 warps x 16 rows, and enough 128-column
    segments per program (CH) that a program streams >= 16 KB of codes while the grid still
    gives every SM several programs (tuned on H100, see benchmarks/README.md)."""
    rows = 64
    segments = k // 128
    ch = 8
    while ch > 2 and triton.cdiv(n, rows) * triton.cdiv(segments, ch) < 3 * SM_COUNT_GUESS:
        ch //= 2
    return {"kernel": "skinny", "num_warps": 4, "R": 1, "CH": min(ch, segments)}


def _skinny_workspace(device: torch.device, elems: int, counters: int):
    """Zeroed fp32 sums, tile counters and 256 zero bytes; the kernel leaves them zeroed."""
    held = _skinny_workspaces.get(device)
    if held is None or held[0].numel() < elems or held[1].numel() < counters:
        held = (torch.zeros(max(elems, 1), dtype=torch.float32, device=device),
                torch.zeros(max(counters, 1024), dtype=torch.int32, device=device),
                torch.zeros(256, dtype=torch.uint8, device=device))
        _skinny_workspaces[device] = held
    return held


SKINNY_MAX_M = 8  # the skinny kernel is the default up to here (one token tile); 9..16 on request


def skinny_supported(x: torch.Tensor, packed: dict[str, torch.Tensor], fmt: str) -> bool:
    """True when ``_skinny_kernel`` can run: M <= 16, K % 128 == 0, 16-byte aligned rows."""
    m, k = x.shape
    codes, scale = packed["codes"], packed["scale"]
    return (m <= 16 and k % 128 == 0 and x.stride(1) == 1 and x.stride(0) % 8 == 0
            and x.data_ptr() % 16 == 0 and codes.is_contiguous() and codes.data_ptr() % 16 == 0
            and scale.is_contiguous() and scale.data_ptr() % 4 == 0)


def launch_skinny(x, packed, fmt, out, cfg, use_asm):
    """Run ``_skinny_kernel`` for ``x (M, K) @ W^T`` into ``out (M, N)`` with config ``cfg``."""
    m, k = x.shape
    n = packed["codes"].shape[0]
    warps, r, ch = cfg["num_warps"], cfg.get("R", 1), cfg["CH"]
    rows = 16 * warps * r
    split = triton.cdiv(k // 128, ch)
    grid = (triton.cdiv(n, rows), split)
    ws, counters, zeros = _skinny_workspace(x.device, m * n if split > 1 else 0, grid[0])
    fmt_id = FORMAT_IDS[fmt]
    bf16 = x.dtype == torch.bfloat16
    tiles = 1 if m <= 8 else 2
    _skinny_kernel[grid](
        x, packed["codes"], packed["scale"], packed.get("global_scale", ws), out, ws, counters, zeros,
        m, n, k, x.stride(0), out.stride(0),
        FMT=fmt_id, T=tiles, R=r, CH=ch, SPLIT=split, W=warps, BF16=bf16, USE_ASM=use_asm,
        PTX=skinny_mma_ptx(fmt_id, bf16, tiles) if use_asm else "", num_warps=warps, num_stages=1,
    )
    return out
