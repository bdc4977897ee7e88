"""Channel reordering: order, stats permutation, FP outputs unchanged."""

import torch

from residq.formats.spec import FormatSpec
from residq.methods.rtn import quantize_layer_rtn
from residq.methods.stats import InputStats
from residq.nn.quant_linear import QuantLinear
from residq.recipe import Recipe
from residq.transforms.reorder import invert_permutation, permute_stats, reorder_permutation, reordered


def _stats(x):
    stats = InputStats(x.shape[1], name="t", sample_rows=64)
    stats.update(x)
    return stats


def test_permutation_sorts_absmax_ascending():
    perm = reorder_permutation(torch.tensor([3.0, 1.0, 7.0, 2.0]))
    assert perm.tolist() == [1, 3, 0, 2]
    assert invert_permutation(perm)[perm].tolist() == [0, 1, 2, 3]


def test_permuted_stats_describe_permuted_input():
    torch.manual_seed(0)
    x = torch.randn(50, 8) * torch.arange(1, 9)
    perm = torch.tensor([7, 0, 3, 1, 2, 6, 5, 4])
    got, want = permute_stats(_stats(x), perm), _stats(x[:, perm])
    assert torch.allclose(got.hessian, want.hessian) and torch.equal(got.absmax, want.absmax)


def test_reordering_alone_leaves_fp_outputs_unchanged():
    torch.manual_seed(0)
    x = torch.randn(40, 32) * torch.rand(32) * 10
    w = torch.randn(16, 32)
    perm = reorder_permutation(x.abs().amax(0))
    assert torch.allclose(x[:, perm] @ w[:, perm].T, x @ w.T, atol=1e-4)
    # through QuantLinear, with integer weights that INT8 per-channel holds exactly (scale 1)
    stats = _stats(x)
    recipe = Recipe(weight=FormatSpec(kind="int", bits=8, granularity="channel"))
    w8 = torch.randint(-127, 128, (16, 32)).float()
    w8[:, 0] = 127.0
    plain = QuantLinear.from_quantized(quantize_layer_rtn("l", w8, None, stats, recipe), 32)
    layer = reordered(quantize_layer_rtn)("l", w8, None, stats, recipe)
    assert torch.equal(layer.input_perm, perm)
    moved = QuantLinear.from_quantized(layer, 32)
    assert torch.allclose(moved(x), plain(x), rtol=1e-5, atol=1e-3)
