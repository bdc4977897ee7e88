"""QuaRot: the rotated float model computes the same logits, for every family it supports."""

import pytest
import torch
from residq_testing import FAMILIES, tiny_model

from residq.models.arch import architecture_of
from residq.nn.quant_linear import QuantLinear
from residq.transforms.rotate import HadamardInputLinear, RotationUnsupportedError, rotate_model


@pytest.mark.parametrize("family", FAMILIES)
def test_rotated_logits_equal_original(family):
    model = tiny_model(family, hidden=48)  # 48 = 12 * 4 and 96 = 12 * 8: Paley x Sylvester
    ids = torch.randint(0, 256, (2, 16), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        reference = model(ids).logits
    arch = architecture_of(model)
    if arch.sandwich_norms:
        with pytest.raises(RotationUnsupportedError, match="sandwich norms"):
            rotate_model(model, arch)
        return
    rotate_model(model, arch)
    assert isinstance(model.model.layers[0].mlp.down_proj, HadamardInputLinear)
    assert torch.all(model.model.layers[0].input_layernorm.weight == 1)
    with torch.no_grad():
        rotated = model(ids).logits
    assert (rotated - reference).abs().max() < 1e-5 * reference.abs().max() + 1e-6


def test_quarot_recipe_quantizes_and_saves_online_hadamard(calib_ids):
    from residq.api import quantize
    from residq.presets import PRESETS

    model = tiny_model("llama", hidden=48)
    quantize(model, PRESETS["w4a4-nvfp4-quarot-rtn"], calib_ids, device="cpu", progress=False)
    down = model.model.layers[0].mlp.down_proj
    assert isinstance(down, QuantLinear) and down.input_hadamard
    rebuilt = QuantLinear.from_config(down.layer_config())
    rebuilt.load_state_dict(down.state_dict())
    x = torch.randn(3, 96)
    assert torch.equal(rebuilt(x), down(x))
