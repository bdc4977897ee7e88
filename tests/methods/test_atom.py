"""Atom: mixed INT8 outlier / INT4 g128 weights and activations after reordering."""

import torch

from residq.formats import dequantize, fake_quantize
from residq.formats.spec import FormatSpec
from residq.methods.atom import mixed_precision_weight, quantize_layer_atom
from residq.methods.stats import InputStats
from residq.nn.activation import OUTLIER_SPEC
from residq.nn.quant_linear import QuantLinear
from residq.recipe import Recipe

INT4_G128 = FormatSpec(kind="int", bits=4, granularity="group", group_size=128)


def test_mixed_weight_equals_parts_quantized_separately():
    torch.manual_seed(0)
    w = torch.randn(8, 320)
    q = mixed_precision_weight(w, INT4_G128, 64)
    head = fake_quantize(w[:, :256], INT4_G128)
    tail = fake_quantize(w[:, 256:], FormatSpec(kind="int", bits=8, granularity="group", group_size=64))
    assert torch.equal(dequantize(q), torch.cat([head, tail], 1))
    assert q.codes[:, :256].abs().max() <= 8


def test_layer_reorders_and_keeps_outlier_activations_in_int8():
    torch.manual_seed(0)
    k = 320
    x = torch.randn(32, k)
    x[:, 5] *= 50
    w = torch.randn(16, k)
    stats = InputStats(k, name="t")
    stats.update(x)
    recipe = Recipe(weight=INT4_G128, activation=INT4_G128, method="atom", atom_outliers=64)
    layer = quantize_layer_atom("l", w, None, stats, recipe)
    assert int(layer.input_perm[-1]) == 5 and layer.act_outliers == 64
    module = QuantLinear.from_quantized(layer, k)
    xp = x[:, layer.input_perm]
    act = torch.cat([fake_quantize(xp[:, :256], INT4_G128), fake_quantize(xp[:, 256:], OUTLIER_SPEC)], 1)
    assert torch.allclose(module(x), act @ dequantize(layer.weight).T, rtol=1e-5, atol=1e-4)
    rebuilt = QuantLinear.from_config(module.layer_config())
    rebuilt.load_state_dict(module.state_dict())
    assert torch.equal(rebuilt(x), module(x))
