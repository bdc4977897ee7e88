"""The calibration driver on tiny random models of every family in the architecture table."""

import pytest
import torch
from residq_testing import FAMILIES, tiny_model

from residq.api import quantize
from residq.methods.stats import CalibrationDataError
from residq.models.arch import UnsupportedArchitectureError, architecture_of, block_linears, decoder_layers
from residq.models.sequential import NonFiniteWeightError
from residq.nn.quant_linear import QuantLinear
from residq.presets import PRESETS


def logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits


def snr_db(ref, approx):
    return float(10 * torch.log10(ref.pow(2).sum() / (ref - approx).pow(2).sum()))


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_quantizes_all_block_linears_and_stays_close(family, calib_ids):
    model = tiny_model(family)
    arch = architecture_of(model)
    ids = calib_ids[:2]
    ref = logits(model, ids)
    recipe = PRESETS["w8a8-int8-rtn"]
    result = quantize(model, recipe, calib_ids, device="cpu", progress=False, holdout=calib_ids[:1])
    for block in decoder_layers(model, arch):
        assert all(isinstance(m, QuantLinear) for m in block_linears(block, arch).values())
    assert len(result.layers) == 7 * len(decoder_layers(model, arch))
    assert all(r.info["snr_db"] > 25 for r in result.layers)
    assert not isinstance(model.lm_head, QuantLinear)
    assert snr_db(ref, logits(model, ids)) > 20


def test_gptq_beats_rtn_end_to_end_on_tiny_llama(calib_ids):
    torch.manual_seed(3)
    ids = torch.randint(0, 256, (16, 32))
    ref = logits(tiny_model("llama"), ids[:4])
    errors = {}
    for name in ("w4a16-nvfp4-rtn", "w4a16-nvfp4-gptq"):
        model = tiny_model("llama")
        quantize(model, PRESETS[name], ids[4:], device="cpu", progress=False)
        errors[name] = snr_db(ref, logits(model, ids[:4]))
    assert errors["w4a16-nvfp4-gptq"] > errors["w4a16-nvfp4-rtn"]


def test_nan_weight_names_the_layer(calib_ids):
    model = tiny_model("llama")
    with torch.no_grad():
        model.model.layers[1].mlp.up_proj.weight[0, 0] = float("nan")
    with pytest.raises(NonFiniteWeightError, match=r"model\.layers\.1\.mlp\.up_proj"):
        quantize(model, PRESETS["w4a16-nvfp4-rtn"], calib_ids, device="cpu", progress=False)


def test_inf_activation_names_the_layer(calib_ids):
    model = tiny_model("llama")
    with torch.no_grad():
        model.model.layers[0].self_attn.v_proj.weight.fill_(float("inf"))
    with pytest.raises(CalibrationDataError, match=r"model\.layers\.0\.self_attn\.o_proj"):
        quantize(model, PRESETS["w4a16-nvfp4-rtn"].with_overrides(["ignore=lm_head,v_proj"]),
                 calib_ids, device="cpu", progress=False)


def test_ignore_list_keeps_layers_float(calib_ids):
    model = tiny_model("llama")
    recipe = PRESETS["w4a16-nvfp4-rtn"].with_overrides(["ignore=lm_head,down_proj"])
    quantize(model, recipe, calib_ids, device="cpu", progress=False)
    assert isinstance(model.model.layers[0].mlp.down_proj, torch.nn.Linear)
    assert isinstance(model.model.layers[0].mlp.up_proj, QuantLinear)


def test_unsupported_architecture_is_refused():
    import transformers

    config = transformers.GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=64)
    with pytest.raises(UnsupportedArchitectureError, match="gpt2.*supported decoder families"):
        architecture_of(transformers.GPT2LMHeadModel(config))


def test_bad_calibration_shape_is_refused():
    with pytest.raises(ValueError, match="n_samples, seqlen"):
        quantize(tiny_model("llama"), PRESETS["w4a16-nvfp4-rtn"], torch.zeros(5, dtype=torch.long))
