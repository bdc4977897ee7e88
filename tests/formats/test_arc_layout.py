"""ARCQuant's interleaved operand layout: block order and exact round trip."""

import pytest
import torch

from residq.formats import quantize
from residq.formats.arc_layout import interleaved_block_order, pack_arc, unpack_arc
from residq.formats.spec import FormatSpec


def test_block_order_pairs_each_outlier_block_with_its_residual():
    # 4 main blocks, 2 augmented: normal 0, 1, then (2, aug0=4), (3, aug1=5).
    assert interleaved_block_order(4, 2).tolist() == [0, 1, 2, 4, 3, 5]
    assert interleaved_block_order(3, 0).tolist() == [0, 1, 2]


@pytest.mark.parametrize("spec", [FormatSpec(kind="nvfp4"), FormatSpec(kind="mxfp4"),
                                  FormatSpec(kind="int", bits=4, granularity="group", group_size=16)])
def test_pack_unpack_round_trip_is_exact(spec):
    torch.manual_seed(0)
    x = torch.randn(5, 128) * torch.linspace(0.1, 8, 128)
    block = spec.block_size(128)
    s = 2 * block
    main = quantize(x, spec)
    residual = quantize(x[:, -s:] * 0.01, spec)
    packed = pack_arc(main, residual)
    assert packed["codes"].shape == (5, (128 + s) // 2)
    got_main, got_res = unpack_arc(packed, spec, (5,), 128, s)
    assert torch.equal(got_main.codes, main.codes) and torch.equal(got_res.codes, residual.codes)
    assert torch.equal(got_main.scale, main.scale) and torch.equal(got_res.scale, residual.scale)
    if spec.kind == "nvfp4":
        assert torch.equal(got_res.global_scale, residual.global_scale)
        assert not torch.equal(got_res.global_scale, got_main.global_scale)


def test_layout_places_residual_block_right_after_its_outlier_block():
    spec = FormatSpec(kind="nvfp4")
    x = torch.zeros(1, 32)
    x[0, 16:] = 6.0  # the outlier block: every code is 6 (E2M1 code 7)
    main = quantize(x, spec)
    res = quantize(torch.zeros(1, 16), spec)
    codes = pack_arc(main, res)["codes"][0]
    # blocks stored: main0 (zeros), main1 (code 7 = 0x77 bytes), aug0 (zeros).
    assert codes[:8].tolist() == [0] * 8 and codes[8:16].tolist() == [0x77] * 8 and codes[16:].tolist() == [0] * 8


def test_rejects_unaligned_s():
    spec = FormatSpec(kind="nvfp4")
    with pytest.raises(ValueError, match="multiples of the block 16"):
        pack_arc(quantize(torch.randn(2, 32), spec), quantize(torch.randn(2, 8), spec))
