"""Inline PTX of the skinny W4A16 kernel (``w4a16_skinny.py``): one lane's decode of its packed
codes to exact 16-bit values, the block-scale multiply and its ``mma.m16n8k16`` instructions,
built as a string per (format, dtype, token tiles) and passed to the kernel as a constexpr.

The lane/fragment layout it assumes is described in ``w4a16_skinny.py``.
"""

from __future__ import annotations

import functools

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
