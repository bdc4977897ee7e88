"""AWQ: scales, alpha search, folding through input_scale."""

import torch

from residq.formats import dequantize
from residq.formats.spec import FormatSpec
from residq.methods.awq import awq_scales, quantize_layer_awq
from residq.methods.rtn import rtn_quantize
from residq.methods.stats import InputStats
from residq.nn.quant_linear import QuantLinear
from residq.recipe import Recipe

INT4_G32 = FormatSpec(kind="int", bits=4, granularity="group", group_size=32)


def test_scales_are_normalized_and_alpha_zero_is_identity():
    s = awq_scales(torch.tensor([1.0, 4.0, 16.0]), 0.5)
    assert torch.allclose(s, torch.tensor([0.5, 1.0, 2.0]))
    assert torch.equal(awq_scales(torch.tensor([1.0, 9.0]), 0.0), torch.ones(2))


def test_awq_beats_rtn_on_salient_channels():
    torch.manual_seed(0)
    x = torch.randn(512, 64)
    x[:, :4] *= 30
    w = torch.randn(32, 64)
    stats = InputStats(64, name="t")
    stats.update(x)
    layer = quantize_layer_awq("l", w, None, stats, Recipe(weight=INT4_G32, method="awq", awq_grid=11))
    assert layer.info["awq_alpha"] > 0
    out = QuantLinear.from_quantized(layer, 64)(x)
    ref = x @ w.T
    rtn_err = (x @ dequantize(rtn_quantize(w, INT4_G32)).T - ref).norm()
    assert (out - ref).norm() < 0.9 * rtn_err
