"""Triton device functions for 4-bit codes: encode (activation quantizer) and decode (GEMMs).

Everything here mirrors ``fp4_codes.py`` / ``block_formats.py`` bit for bit. Encoders use
integer and correctly rounded float arithmetic only (``div_rn``, no fast division, no
``log2``), so they give the same bits in Triton's CPU interpreter and on the GPU.

Decoders turn a tile of packed bytes into two tiles of values, one for the low nibbles (the
even K positions) and one for the high nibbles (the odd K positions). With ``USE_ASM`` they run
inline PTX (``prmt`` byte-table lookups, 8 values in ~13 instructions); without it, plain
Triton arithmetic that the interpreter can run. Both return exact values (E2M1 magnitudes and
INT4 codes are exact in fp16 and bf16).
"""

from __future__ import annotations

import triton
import triton.language as tl

# fp16 high bytes of the E2M1 magnitudes [0, .5, 1, 1.5 | 2, 3, 4, 6] (low bytes are all 0).
_F16_TABLE_LO = 0x3E3C3800
_F16_TABLE_HI = 0x46444240
# bf16 of the same magnitudes, split into high-byte and low-byte tables.
_BF16_HIGH_LO = 0x3F3F3F00
_BF16_HIGH_HI = 0x40404040
_BF16_LOW_LO = 0xC0800000
_BF16_LOW_HI = 0xC0804000

# Shared head: magnitude-byte lookups h01/h23 for the nibbles [lo0 hi0 lo1 hi1] / [lo2 hi2 lo3
# hi3] of the 4 input bytes in $IN, then the sign bits (0xFF bytes where negative) or-ed in.
_SIGN_AND_MAGNITUDE = """
and.b32 m, $IN, 0x77777777;
shr.u32 m23, m, 16;
prmt.b32 h01, tlo, thi, m;
prmt.b32 h23, tlo, thi, m23;
shl.b32 t, $IN, 4;
prmt.b32 s01, t, $IN, 0xD9C8;
prmt.b32 s23, t, $IN, 0xFBEA;
lop3.b32 h01, s01, sgn, h01, 0xEA;
lop3.b32 h23, s23, sgn, h23, 0xEA;
"""

FP4_TO_F16_ASM = tl.constexpr(
    "{\n.reg .b32 m, m23, h01, h23, t, s01, s23, tlo, thi, sgn, z;\n"
    f"mov.b32 tlo, {_F16_TABLE_LO};\nmov.b32 thi, {_F16_TABLE_HI};\n"
    "mov.b32 sgn, 0x80808080;\nmov.b32 z, 0;\n"
    + _SIGN_AND_MAGNITUDE.replace("$IN", "$4")
    + "prmt.b32 $0, h01, z, 0x2404;\nprmt.b32 $1, h23, z, 0x2404;\n"
    "prmt.b32 $2, h01, z, 0x3414;\nprmt.b32 $3, h23, z, 0x3414;\n}"
)

FP4_TO_BF16_ASM = tl.constexpr(
    "{\n.reg .b32 m, m23, h01, h23, l01, l23, t, s01, s23, tlo, thi, llo, lhi, sgn;\n"
    f"mov.b32 tlo, {_BF16_HIGH_LO};\nmov.b32 thi, {_BF16_HIGH_HI};\n"
    f"mov.b32 llo, {_BF16_LOW_LO};\nmov.b32 lhi, {_BF16_LOW_HI};\n"
    "mov.b32 sgn, 0x80808080;\n"
    + _SIGN_AND_MAGNITUDE.replace("$IN", "$4")
    + "prmt.b32 l01, llo, lhi, m;\nprmt.b32 l23, llo, lhi, m23;\n"
    "prmt.b32 $0, l01, h01, 0x6240;\nprmt.b32 $1, l23, h23, 0x6240;\n"
    "prmt.b32 $2, l01, h01, 0x7351;\nprmt.b32 $3, l23, h23, 0x7351;\n}"
)

# INT4 nibble n = q + 8 -> value q: place n in the mantissa of 1024.0 (fp16) / 128.0 (bf16),
# then subtract 1032 / 136 (exact).
_INT4_BODY = """
mov.b32 z, 0;
mov.b32 mask, 0x000F000F;
prmt.b32 t01, $4, z, 0x4140;
prmt.b32 t23, $4, z, 0x4342;
lop3.b32 $0, t01, mask, magic, 0xEA;
lop3.b32 $1, t23, mask, magic, 0xEA;
shr.u32 t01, t01, 4;
shr.u32 t23, t23, 4;
lop3.b32 $2, t01, mask, magic, 0xEA;
lop3.b32 $3, t23, mask, magic, 0xEA;
"""
INT4_TO_F16_ASM = tl.constexpr(
    "{\n.reg .b32 z, mask, t01, t23, magic, bias;\n"
    "mov.b32 magic, 0x64006400;\nmov.b32 bias, 0x64086408;\n" + _INT4_BODY
    + "sub.f16x2 $0, $0, bias;\nsub.f16x2 $1, $1, bias;\n"
    "sub.f16x2 $2, $2, bias;\nsub.f16x2 $3, $3, bias;\n}"
)
INT4_TO_BF16_ASM = tl.constexpr(
    "{\n.reg .b32 z, mask, t01, t23, magic, one, bias;\n"
    "mov.b32 magic, 0x43004300;\nmov.b32 one, 0x3F803F80;\nmov.b32 bias, 0xC308C308;\n"
    + _INT4_BODY
    + "fma.rn.bf16x2 $0, $0, one, bias;\nfma.rn.bf16x2 $1, $1, one, bias;\n"
    "fma.rn.bf16x2 $2, $2, one, bias;\nfma.rn.bf16x2 $3, $3, one, bias;\n}"
)

MAGIC_RINT = tl.constexpr(12582912.0)  # 1.5 * 2**23: (v + M) - M rounds |v| < 2**22 to nearest even


# ----------------------------------------------------------------------------- encode side


@triton.jit
def rint(v):
    """Round float32 ``v`` (``|v| < 2**22``) to the nearest integer, ties to even."""
    return (v + MAGIC_RINT) - MAGIC_RINT


@triton.jit
def e2m1_encode(v):
    """int32 E2M1 codes of float32 ``v`` (ties to even, saturate at 6, zero -> code 0).

    E2M1 is a float with one mantissa bit whose "subnormal" step is 0.5: for |v| >= 1 round
    the fp32 bits to one mantissa bit (nearest even) and read index = 2*exponent + mantissa
    - 252; below 1 the index is round_half_even(2|v|).
    """
    a = tl.minimum(tl.abs(v), 6.0)
    bits = a.to(tl.int32, bitcast=True)
    # round to one mantissa bit (add half an ulp minus one, plus the kept bit: ties to even) and
    # read 2*exponent + mantissa; the bias 252 << 22 is folded into the same addition
    normal_index = (bits + ((bits >> 22) & 1) + (0x1FFFFF - (252 << 22))) >> 22
    # 2a + 2^23 rounds 2a (exact, < 2) to an integer, ties to even, in the low mantissa bits:
    # one fused add instead of rint's two adds and a float-to-int conversion
    small_index = tl.fma(a, 2.0, 8388608.0).to(tl.int32, bitcast=True) - 0x4B000000
    idx = tl.where(a < 1.0, small_index, normal_index)
    # the sign only where the magnitude index is not 0, i.e. |v| > 0.25 (0.25 rounds to 0, even):
    # one comparison instead of two and an and
    return tl.where(v < -0.25, idx + 8, idx)


@triton.jit
def e2m1_value(code):
    """float32 value of int32 E2M1 codes in [0, 15]."""
    magnitude = code & 7
    exponent = magnitude >> 1
    half_mantissa = (magnitude & 1).to(tl.float32) * 0.5
    power = (1 << exponent).to(tl.float32) * 0.5
    value = tl.where(exponent == 0, half_mantissa, power * (1.0 + half_mantissa))
    return tl.where(code >= 8, -value, value)


@triton.jit
def e4m3_round(v, HARDWARE: tl.constexpr = False):
    """Round float32 ``v`` in [2**-9, 448] to E4M3 (nearest even): (int32 bits, float32 value).

    HARDWARE (GPUs with FP8 conversions, sm_89+): one saturating ``cvt`` and one conversion back
    instead of the ~15 integer operations of the other branch, which the interpreter runs (same
    bits).
    """
    if HARDWARE:
        fp8 = v.to(tl.float8e4nv, fp_downcast_rounding="rtne")
        code = fp8.to(tl.uint8, bitcast=True).to(tl.int32)
        value = fp8.to(tl.float32)
    else:
        bits = v.to(tl.int32, bitcast=True)
        biased = (bits >> 23) & 0xFF
        # normal range (v >= 2**-6): keep 3 mantissa bits, round half to even on the raw bits
        rounded = (bits + 0x7FFFF + ((bits >> 20) & 1)) & -1048576
        normal_value = rounded.to(tl.float32, bitcast=True)
        normal_bits = ((((rounded >> 23) & 0xFF) - 120) << 3) | ((rounded >> 20) & 7)
        # subnormal range: multiples of 2**-9 (q = 8 is 2**-6, whose E4M3 bits are also 8)
        q = rint(v * 512.0)
        is_subnormal = biased < 121
        value = tl.where(is_subnormal, q * (1.0 / 512.0), normal_value)
        code = tl.where(is_subnormal, q.to(tl.int32), normal_bits)
    return code, value


@triton.jit
def e4m3_value(bits):
    """float32 values of non-negative E4M3 bit patterns (int32 in [0, 126])."""
    exponent = (bits >> 3) & 15
    mantissa = bits & 7
    normal = (((exponent + 120) << 23) | (mantissa << 20)).to(tl.float32, bitcast=True)
    return tl.where(exponent == 0, mantissa.to(tl.float32) * (1.0 / 512.0), normal)


@triton.jit
def power_of_two(exponent):
    """float32 ``2**exponent`` for int32 exponents in [-127, 127] (exact)."""
    normal = ((exponent + 127) << 23).to(tl.float32, bitcast=True)
    return tl.where(exponent < -126, 2.0**-127, normal)


@triton.jit
def mx_exponent_ceil(amax):
    """int32 ``clamp(ceil(log2(amax / 6)), -127, 127)`` from the bits of float32 ``amax``; 0 for 0."""
    bits = amax.to(tl.int32, bitcast=True)
    frexp_exponent = ((bits >> 23) & 0xFF) - 126
    small_mantissa = (bits & 0x7FFFFF) <= 0x400000
    e = tl.where(small_mantissa, frexp_exponent - 3, frexp_exponent - 2)
    e = tl.minimum(tl.maximum(e, -127), 127)
    return tl.where(amax > 0, e, 0)


# ----------------------------------------------------------------------------- decode side


@triton.jit
def fp4_byte_values(packed, BF16: tl.constexpr, USE_ASM: tl.constexpr):
    """uint8 bytes -> (low-nibble, high-nibble) E2M1 values, fp16 or bf16 (``BF16``), same shape."""
    if USE_ASM:
        if BF16:
            lo, hi = tl.inline_asm_elementwise(
                FP4_TO_BF16_ASM, "=r,=r,=r,=r,r", [packed],
                dtype=(tl.bfloat16, tl.bfloat16), is_pure=True, pack=4,
            )
        else:
            lo, hi = tl.inline_asm_elementwise(
                FP4_TO_F16_ASM, "=r,=r,=r,=r,r", [packed],
                dtype=(tl.float16, tl.float16), is_pure=True, pack=4,
            )
    else:
        wide = packed.to(tl.int32)
        out_dtype = tl.bfloat16 if BF16 else tl.float16
        lo = e2m1_value(wide & 15).to(out_dtype)
        hi = e2m1_value(wide >> 4).to(out_dtype)
    return lo, hi


@triton.jit
def int4_byte_values(packed, BF16: tl.constexpr, USE_ASM: tl.constexpr):
    """uint8 bytes of stored nibbles ``q + 8`` -> (low, high) values ``q``, fp16 or bf16."""
    if USE_ASM:
        if BF16:
            lo, hi = tl.inline_asm_elementwise(
                INT4_TO_BF16_ASM, "=r,=r,=r,=r,r", [packed],
                dtype=(tl.bfloat16, tl.bfloat16), is_pure=True, pack=4,
            )
        else:
            lo, hi = tl.inline_asm_elementwise(
                INT4_TO_F16_ASM, "=r,=r,=r,=r,r", [packed],
                dtype=(tl.float16, tl.float16), is_pure=True, pack=4,
            )
    else:
        wide = packed.to(tl.int32)
        out_dtype = tl.bfloat16 if BF16 else tl.float16
        lo = ((wide & 15) - 8).to(tl.float32).to(out_dtype)
        hi = ((wide >> 4) - 8).to(tl.float32).to(out_dtype)
    return lo, hi


@triton.jit
def int4_byte_times16_i8(packed):
    """uint8 bytes of nibbles ``q + 8`` -> (low, high) int8 ``16 * q`` (exact, for int8 MMA)."""
    lo = ((packed & 15) ^ 8) << 4
    hi = (packed & 0xF0) ^ 0x80
    return lo.to(tl.int8, bitcast=True), hi.to(tl.int8, bitcast=True)


@triton.jit
def block_scale_values(raw, FMT: tl.constexpr):
    """float32 block scales from their stored form: FMT 0 E4M3 bytes, 1 E8M0 bytes, 2 float16."""
    if FMT == 0:
        return e4m3_value(raw.to(tl.int32))
    elif FMT == 1:
        return power_of_two(raw.to(tl.int32) - 127)
    else:
        return raw.to(tl.float32)
