"""ARHQ handler: rank 0 is the plain method, GPTQ residual beats RTN, the branch pays off."""

import pytest
import torch
from residq_testing import layer_inputs, output_error_db, stats_for

from residq.formats.spec import FormatSpec
from residq.methods.arhq import int8_columns, quantize_layer_arhq
from residq.methods.gptq import gptq_quantize
from residq.methods.rtn import rtn_quantize
from residq.nn.quant_linear import QuantLinear
from residq.recipe import Recipe

NVFP4 = FormatSpec(kind="nvfp4")
FORMATS = {
    "nvfp4": (NVFP4, NVFP4),
    "mxfp4": (FormatSpec(kind="mxfp4"), FormatSpec(kind="mxfp4")),
    "int4g32-int4token": (FormatSpec(kind="int", bits=4, group_size=32),
                          FormatSpec(kind="int", bits=4, granularity="token")),
    "int4pc-int4tensor": (FormatSpec(kind="int", bits=4, granularity="channel"),
                          FormatSpec(kind="int", bits=4, granularity="tensor")),
    "int2g64asym-int8token": (FormatSpec(kind="int", bits=2, symmetric=False, group_size=64),
                          FormatSpec(kind="int", bits=8, granularity="token")),
}


@pytest.fixture(scope="module")
def problem():
    torch.manual_seed(0)
    k, m = 128, 64
    return torch.randn(m, k), layer_inputs(2048, k, 1), layer_inputs(1024, k, 2)


@pytest.mark.parametrize("residual", ["rtn", "gptq"])
def test_rank_zero_is_the_plain_method(problem, residual):
    w, x_cal, _ = problem
    stats = stats_for(x_cal, NVFP4)
    recipe = Recipe(weight=NVFP4, activation=NVFP4, method="arhq", rank=0, residual=residual)
    layer = quantize_layer_arhq("l", w, None, stats, recipe)
    plain = rtn_quantize(w, NVFP4) if residual == "rtn" else gptq_quantize(w, stats.quantized_gram, NVFP4)
    assert layer.lowrank_a is None and layer.lowrank_b is None and layer.info["rank"] == 0
    assert torch.equal(layer.weight.codes, plain.codes)
    assert torch.equal(layer.weight.scale, plain.scale)


@pytest.mark.parametrize("fmt", FORMATS)
def test_gptq_residual_never_worse_than_rtn_residual_on_held_out(problem, fmt):
    w, x_cal, x_test = problem
    weight_spec, act_spec = FORMATS[fmt]
    stats = stats_for(x_cal, act_spec)
    snr = {}
    for residual in ("rtn", "gptq"):
        recipe = Recipe(weight=weight_spec, activation=act_spec, method="arhq", rank=16, residual=residual)
        snr[residual] = output_error_db(quantize_layer_arhq("l", w, None, stats, recipe), w, x_test)
    assert snr["gptq"] >= snr["rtn"], snr


@pytest.mark.parametrize("fmt", ["nvfp4", "int4pc-int4tensor"])
def test_branch_improves_held_out_snr_and_energy_is_reported(problem, fmt):
    w, x_cal, x_test = problem
    weight_spec, act_spec = FORMATS[fmt]
    stats = stats_for(x_cal, act_spec)
    snr = {}
    for rank in (0, 16):
        recipe = Recipe(weight=weight_spec, activation=act_spec, method="arhq", rank=rank)
        layer = quantize_layer_arhq("l", w, None, stats, recipe)
        snr[rank] = output_error_db(layer, w, x_test)
    assert snr[16] > snr[0] + 1.0, snr
    assert 0 < layer.info["energy_kept"] < 1
    assert layer.info["params_pct"] == pytest.approx(100 * 16 * (64 + 128) / (64 * 128))


def test_adaptive_rank_and_ridge(problem):
    w, x_cal, _ = problem
    stats = stats_for(x_cal, NVFP4)
    recipe = Recipe(weight=NVFP4, activation=NVFP4, method="arhq", rank="adaptive", tau=0.2, ridge=1.0)
    layer = quantize_layer_arhq("l", w, None, stats, recipe)
    assert layer.info["rank"] % 16 == 0 and layer.info["rank"] > 0
    assert layer.info["energy_kept"] >= 0.8
    assert layer.info["ridge_gamma"] > 0


def test_int8_factors_are_stored_counted_and_reloaded(problem):
    w, x_cal, x_test = problem
    stats = stats_for(x_cal, NVFP4)
    snr, size = {}, {}
    for dtype in ("float16", "int8"):
        recipe = Recipe(weight=NVFP4, activation=NVFP4, method="arhq", rank=16, lowrank_dtype=dtype)
        layer = quantize_layer_arhq("l", w, None, stats, recipe)
        snr[dtype] = output_error_db(layer, w, x_test)
        module = QuantLinear.from_quantized(layer, 128)
        size[dtype] = module.storage_bytes()
    assert module.lowrank_a.dtype == torch.int8 and module.lowrank_a_scale.shape == (16,)
    assert size["float16"] - size["int8"] == 16 * (64 + 128) - 2 * 16 * 4
    assert abs(snr["float16"] - snr["int8"]) < 0.5
    rebuilt = QuantLinear.from_config(module.layer_config())
    rebuilt.load_state_dict(module.state_dict())
    with torch.no_grad():
        assert torch.equal(rebuilt(x_test[:8]), module(x_test[:8]))


def test_int8_columns_round_trip():
    f = torch.tensor([[1.0, -0.5], [-2.54, 0.25]], dtype=torch.float64)
    codes, scale = int8_columns(f)
    assert codes[:, 0].tolist() == [50, -127] and codes[:, 1].tolist() == [-127, 64]
    assert torch.allclose(codes * scale.double(), f, atol=float(scale.max()) / 2)


def test_weight_only_recipe_is_refused(problem):
    w, x_cal, _ = problem
    with pytest.raises(ValueError, match="needs an activation format"):
        quantize_layer_arhq("l", w, None, stats_for(x_cal, NVFP4), Recipe(weight=NVFP4, method="arhq", rank=4))


def test_presets_and_rank_policies_parse():
    from residq.presets import PRESETS

    for name in ("w4a4-nvfp4-svdquant", "w4a4-nvfp4-arhq", "w4a4-mxfp4-arhq", "w4a4-int4-arhq",
                 "w2a4-int2g64-arhq", "w4a4-int4pc-arhq", "w2a4-int2pc-arhq", "w4a4-int4pc-rtn",
                 "w4a4-int4pc-gptq", "w4a4-int4pc-smoothquant", "w2a4-int2pc-smoothquant"):
        assert name in PRESETS
    assert PRESETS["w4a4-int4pc-arhq"].rank == 64 and PRESETS["w2a4-int2pc-arhq"].rank == 128
    assert PRESETS["w4a4-int4pc-arhq"].activation.is_per_tensor
    base = PRESETS["w4a4-nvfp4-arhq"]
    assert base.with_overrides(["rank=adaptive", "tau=0.1"]).rank == "adaptive"
    assert base.with_overrides(["rank_budget=0.05"]).rank_budget == 0.05
    with pytest.raises(ValueError, match="eig_floor must be in"):
        base.with_overrides(["eig_floor=0"])


@pytest.mark.parametrize("fmt", ["nvfp4", "int4pc-int4tensor"])
def test_refit_lowers_the_calibration_error_and_keeps_the_residual(problem, fmt):
    w, x_cal, _ = problem
    weight_spec, act_spec = FORMATS[fmt]
    stats = stats_for(x_cal, act_spec)
    layers = {refit: quantize_layer_arhq("l", w, None, stats, Recipe(weight=weight_spec, activation=act_spec,
                                                                   method="arhq", rank=16, refit=refit))
              for refit in (False, True)}
    assert torch.equal(layers[True].weight.codes, layers[False].weight.codes)
    calibration = {refit: output_error_db(layer, w, x_cal) for refit, layer in layers.items()}
    assert calibration[True] > calibration[False], calibration
