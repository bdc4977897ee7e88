"""SmoothQuant folding keeps every family's float function, and helps W8A8 on outlier inputs."""

import pytest
import torch
from residq_testing import FAMILIES, tiny_model

from residq.formats.spec import FormatSpec
from residq.models.arch import architecture_of, decoder_layers
from residq.models.capture import capture_block_inputs, run_block
from residq.recipe import Recipe
from residq.transforms.smooth import choose_scales, head_tied_index, smooth_block, smooth_scales

NVFP4 = FormatSpec(kind="nvfp4")


def logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits.double()


def smooth_whole_model(model, ids, recipe):
    arch = architecture_of(model)
    inputs = capture_block_inputs(model, arch, ids, ids.shape[0], torch.device("cpu"))
    for index, block in enumerate(decoder_layers(model, arch)):
        kwargs = inputs.layer_kwargs[index]
        smooth_block(block, arch, f"model.layers.{index}", inputs, kwargs, recipe, torch.device("cpu"))
        inputs.hidden = [run_block(block, h, kwargs) for h in inputs.hidden]


CASES = [(family, 0.5) for family in FAMILIES] + [("llama", None), ("gemma2", None)]


@pytest.mark.parametrize(("family", "alpha"), CASES)
def test_folded_model_equals_original(family, alpha, calib_ids):
    model = tiny_model(family, hidden=32, layers=1)
    calib_ids = calib_ids[:2]
    with torch.no_grad():  # make the scales far from 1 so a wrong fold would show
        for block in decoder_layers(model, architecture_of(model)):
            block.input_layernorm.weight.mul_(torch.linspace(0.1, 8.0, block.input_layernorm.weight.numel()))
    before = logits(model, calib_ids)
    recipe = Recipe(weight=NVFP4, activation=NVFP4, smooth_alpha=alpha)
    weights_before = model.model.layers[0].self_attn.q_proj.weight.clone()
    smooth_whole_model(model, calib_ids, recipe)
    after = logits(model, calib_ids)
    rel = ((after - before).norm() / before.norm()).item()
    assert rel < 1e-5, f"{family}: folded logits differ by {rel:.2e}"
    if alpha is not None:
        assert not torch.allclose(weights_before, model.model.layers[0].self_attn.q_proj.weight)


def test_head_tied_index_maps_gqa_heads_to_their_kv_head():
    # 4 query heads of dim 2 share 2 kv heads: heads 0,1 -> kv 0; heads 2,3 -> kv 1.
    assert head_tied_index(8, 2, 2).tolist() == [0, 1, 0, 1, 2, 3, 2, 3]


def test_smooth_scales_formula():
    s = smooth_scales(torch.tensor([4.0, 1.0, 0.0]), torch.tensor([1.0, 4.0, 1.0]), 0.5)
    assert torch.allclose(s, torch.tensor([2.0, 0.5, (1e-5) ** 0.5]))


def test_alpha_search_beats_no_smoothing_on_outlier_channels():
    torch.manual_seed(0)
    k, m = 64, 32
    x = torch.randn(1024, k)
    x[:, :4] *= 50.0  # outlier channels
    w = torch.randn(m, k) * 0.1
    recipe = Recipe(weight=FormatSpec(kind="int", bits=8, granularity="channel"),
                    activation=FormatSpec(kind="int", bits=8, granularity="token"), smooth_alpha=None)
    s = choose_scales(x.abs().amax(0), x, [w], recipe)
    assert s is not None
    from residq.transforms.smooth import _group_error

    assert _group_error(x, [w], s, recipe) < 0.5 * _group_error(x, [w], None, recipe)
