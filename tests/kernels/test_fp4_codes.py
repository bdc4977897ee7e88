"""Torch reference arithmetic of the kernels (no Triton needed): codes, packing, block formats."""

import pytest
import torch

from residq.formats import FormatSpec, dequantize, pack, quantize
from residq.kernels.block_formats import check_k, dequantize_blocks, quantize_blocks
from residq.kernels.fp4_codes import (
    e2m1_decode,
    e2m1_encode,
    e4m3_bits,
    e4m3_values,
    e8m0_values,
    mx_exponent_ceil,
    pack_nibbles,
    unpack_nibbles,
)

SPECS = {
    "nvfp4": FormatSpec(kind="nvfp4"),
    "mxfp4": FormatSpec(kind="mxfp4"),
    "int4": FormatSpec(kind="int", bits=4, granularity="group", group_size=128),
}


def test_e2m1_ties_go_to_even_and_saturate():
    values = torch.tensor([0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0, 7.0, -0.25, -0.3, -5.0, 0.0])
    expected = [0, 2, 2, 4, 4, 6, 6, 7, 0, 9, 14, 0]
    assert e2m1_encode(values).tolist() == expected


def test_e2m1_roundtrip_of_representable_values():
    codes = torch.tensor([c for c in range(16) if c != 8], dtype=torch.uint8)
    assert torch.equal(e2m1_encode(e2m1_decode(codes)), codes)


def test_nibbles_pack_low_first():
    codes = torch.tensor([[1, 2, 15, 0]], dtype=torch.uint8)
    packed = pack_nibbles(codes)
    assert packed.tolist() == [[0x21, 0x0F]]
    assert torch.equal(unpack_nibbles(packed), codes)


def test_scale_bytes():
    assert e4m3_bits(torch.tensor([1.0, 448.0, 2.0**-9])).tolist() == [0x38, 0x7E, 0x01]
    assert e4m3_values(torch.tensor([0x38], dtype=torch.uint8)).item() == 1.0
    assert e8m0_values(torch.tensor([127, 0, 254], dtype=torch.uint8)).tolist() == [1.0, 2.0**-127, 2.0**127]


def test_mx_exponent_is_smallest_covering_power():
    amax = torch.tensor([6.0, 6.0000005, 3.0, 0.0, 1e-3])
    e = mx_exponent_ceil(amax)
    assert e.tolist() == [0, 1, -1, 0, -12]
    covered = 6.0 * torch.ldexp(torch.ones(5), e)
    half_covered = 3.0 * torch.ldexp(torch.ones(3), e[:3])
    assert bool((covered[:3] >= amax[:3]).all()) and bool((half_covered < amax[:3]).all())


@pytest.mark.parametrize("fmt", ["nvfp4", "mxfp4", "int4"])
def test_block_formats_match_residq_formats_bit_for_bit(fmt):
    torch.manual_seed(0)
    x = torch.randn(16, 256) * torch.rand(16, 1) * 5
    x[2, :128] = 0.0
    x[3] = 0.0
    mine = quantize_blocks(x, fmt)
    theirs = pack(quantize(x, SPECS[fmt]))
    for key, value in mine.items():
        assert torch.equal(value, theirs[key]), key
    assert torch.equal(dequantize_blocks(mine, fmt), dequantize(quantize(x, SPECS[fmt])))


def test_block_formats_static_global_scale():
    x = torch.randn(4, 64)
    g = torch.tensor(0.003)
    mine = quantize_blocks(x, "nvfp4", g)
    theirs = pack(quantize(x, SPECS["nvfp4"], g))
    assert mine["global_scale"].item() == pytest.approx(0.003)
    for key in ("codes", "scale"):
        assert torch.equal(mine[key], theirs[key])


def test_check_k_message():
    with pytest.raises(ValueError, match="multiple of 128"):
        check_k(200, "int4")
    with pytest.raises(ValueError, match="unknown 4-bit format"):
        check_k(256, "fp8")
