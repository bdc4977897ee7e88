"""ARCQuant: the augmented GEMM, the 2^-3 selection rule, the deployed quantizer, composition."""

import pytest
import torch
from residq_testing import tiny_model

from residq.formats import dequantize, fake_quantize
from residq.formats.spec import FormatSpec
from residq.methods.arcquant import (
    augment_weight,
    choose_channel_count,
    make_arc_act_quantizer,
    outlier_fraction,
    quantize_layer_arcquant,
    rule_channel_count,
)
from residq.methods.rtn import rtn_quantize
from residq.methods.stats import InputStats
from residq.nn.quant_linear import QuantLinear
from residq.recipe import Recipe

NVFP4 = FormatSpec(kind="nvfp4")


def _data(n=64, k=64, m=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, k, generator=g) * (1 + 20 * (torch.rand(k, generator=g) > 0.9))
    w = torch.randn(m, k, generator=g)
    stats = InputStats(k, name="t", sample_rows=256)
    stats.update(x)
    return x, w, stats


def test_augmented_gemm_equals_two_products_computed_separately():
    x, w, stats = _data()
    recipe = Recipe(weight=NVFP4, activation=NVFP4, method="arcquant", arc_fraction=0.25)
    layer = quantize_layer_arcquant("l", w, None, stats, recipe)
    s = layer.augmented
    assert s == 16 and layer.weight.codes.shape == (24, 64 + s)
    out = QuantLinear.from_quantized(layer, 64)(x)
    xp = x[:, layer.input_perm]
    q1 = fake_quantize(xp, NVFP4)
    q2 = fake_quantize(xp[:, -s:] - q1[:, -s:], NVFP4)
    w_q = dequantize(rtn_quantize(w[:, layer.input_perm], NVFP4))
    expected = q1 @ w_q.T + q2 @ w_q[:, -s:].T
    assert torch.allclose(out, expected, rtol=1e-5, atol=1e-4)
    # and the residual channels really help: closer to the float output than Q1 alone
    ref = x @ w.T
    assert (out - ref).norm() < 0.8 * (q1 @ w_q.T - ref).norm()


def test_augmented_weight_duplicates_codes_and_scales():
    w = torch.randn(8, 64)
    q = rtn_quantize(w, NVFP4)
    aug = augment_weight(q, 32)
    assert torch.equal(aug.codes[:, 64:], q.codes[:, 32:]) and torch.equal(aug.scale[:, 4:], q.scale[:, 2:])
    assert torch.equal(aug.global_scale, q.global_scale)


def test_selection_rule_reproduces_hand_computed_s():
    x = torch.full((2, 64), 0.5)
    x[0, 0], x[0, 1:10] = 8.0, 2.0  # threshold 8/8 = 1: 10 entries above
    x[1, :] = 1.0
    x[1, 0], x[1, 1:30] = 16.0, 4.0  # threshold 2: 30 entries above
    assert outlier_fraction(x) == 40 / 128
    stats = InputStats(64, name="t")
    stats.update(x)
    perm = torch.arange(64)
    # K * frac = 20 -> ceil(20 / 16) * 16 = 32; alignment 64 -> 64 (= K, the cap).
    assert choose_channel_count(None, stats, Recipe(weight=NVFP4, activation=NVFP4, arc_align=16), perm) == 32
    assert choose_channel_count(None, stats, Recipe(weight=NVFP4, activation=NVFP4, arc_align=64), perm) == 64
    assert rule_channel_count(0.9, 576, 64) == 576 and rule_channel_count(0.01, 576, 16) == 16


def test_alignment_minimum_and_mxfp4_blocks():
    _, _, stats = _data()
    with pytest.raises(ValueError, match="alignment must be >= 16"):
        choose_channel_count(None, stats, Recipe(weight=NVFP4, activation=NVFP4, arc_align=8), torch.arange(64))
    mx = FormatSpec(kind="mxfp4")
    s = choose_channel_count(None, stats, Recipe(weight=mx, activation=mx, arc_fraction=0.1), torch.arange(64))
    assert s == 32  # 6.4 -> one 16-alignment, rounded to a whole 32-element MX block


def test_deployed_quantizer_matches_the_layer_forward():
    x, w, stats = _data()
    recipe = Recipe(weight=NVFP4, activation=NVFP4, method="arcquant", arc_weight="gptq")
    layer = quantize_layer_arcquant("l", w, None, stats, recipe)
    module = QuantLinear.from_quantized(layer, 64)
    w_main = dequantize(layer.weight)[:, :64]
    w_orig = torch.empty_like(w_main)
    w_orig[:, layer.input_perm] = w_main
    effective = make_arc_act_quantizer(recipe, stats)(x)
    assert torch.allclose(module(x), effective @ w_orig.T, rtol=1e-5, atol=1e-4)


def test_error_selection_is_aligned_and_refuses_deployed_stats():
    _, w, stats = _data()
    recipe = Recipe(weight=NVFP4, activation=NVFP4, method="arcquant", arc_select="error")
    s = quantize_layer_arcquant("l", w, None, stats, recipe).augmented
    assert s % 16 == 0 and 0 <= s <= 16
    with pytest.raises(ValueError, match="arc_select='error'"):
        quantize_layer_arcquant("l", w, None, stats, Recipe(weight=NVFP4, activation=NVFP4, method="arcquant",
                                                              arc_select="error", rank=16))


def test_flagship_composition_beats_plain_arcquant(calib_ids):
    from residq.api import quantize
    from residq.presets import PRESETS

    holdout = torch.randint(0, 256, (2, 32), generator=torch.Generator().manual_seed(5))
    snr = {}
    for name in ("w4a4-nvfp4-arcquant", "w4a4-nvfp4-flagship"):
        result = quantize(tiny_model("llama", hidden=64, layers=1), PRESETS[name], calib_ids,
                          device="cpu", progress=False, holdout=holdout)
        snr[name] = sum(r.info["snr_db"] for r in result.layers) / len(result.layers)
        assert all(r.info["augmented"] % 16 == 0 for r in result.layers)
    assert snr["w4a4-nvfp4-flagship"] > snr["w4a4-nvfp4-arcquant"] + 1.0


def stats_s(stats, recipe):
    return choose_channel_count(None, stats, recipe, torch.arange(stats.k))


def test_flagship_layer_with_deployed_stats_survives_config_round_trip():
    x, w, stats = _data()
    recipe = Recipe(weight=NVFP4, activation=NVFP4, method="arcquant", arc_weight="gptq", rank=8)
    with pytest.raises(ValueError, match="deployed quantizer"):
        quantize_layer_arcquant("l", w, None, stats, recipe)
    deployed = InputStats(64, name="t", act_quantizer=make_arc_act_quantizer(recipe, stats), sample_rows=256)
    deployed.update(x)
    layer = quantize_layer_arcquant("l", w, None, deployed, recipe)
    assert layer.lowrank_a.shape == (64, 8) and layer.augmented == stats_s(stats, recipe)
    module = QuantLinear.from_quantized(layer, 64)
    rebuilt = QuantLinear.from_config(module.layer_config())
    rebuilt.load_state_dict(module.state_dict())
    assert rebuilt.augmented == module.augmented > 0
    assert torch.equal(rebuilt(x), module(x))
