"""The output-matched target: least squares of Q_x(X) W̃ᵀ ≈ X Wᵀ, W itself without activation error."""

import pytest
import torch
from residq_testing import layer_inputs, output_error_db, stats_for

from residq.formats.spec import FormatSpec
from residq.methods.arhq import quantize_layer_arhq
from residq.methods.output_target import output_matched_weight
from residq.recipe import Recipe

NVFP4 = FormatSpec(kind="nvfp4")


def test_target_is_the_least_squares_weight():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(300, 10, generator=g, dtype=torch.float64)
    Xq = torch.round(X * 2) / 2
    W = torch.randn(6, 10, generator=g, dtype=torch.float64)
    target = output_matched_weight(W, X.T @ Xq, Xq.T @ Xq, damp=0.0)
    least_squares = torch.linalg.lstsq(Xq, X @ W.T).solution.T
    assert torch.allclose(target, least_squares, atol=1e-9)
    assert torch.allclose(output_matched_weight(W, X.T @ X, X.T @ X, damp=0.0), W, atol=1e-9)


def test_shape_errors_name_the_shapes():
    with pytest.raises(ValueError, match=r"expected \(4, 4\)"):
        output_matched_weight(torch.zeros(3, 4), torch.zeros(5, 5), torch.zeros(4, 4))


def test_output_target_raises_calibration_snr_of_arhq():
    torch.manual_seed(0)
    w, x_cal = torch.randn(64, 128), layer_inputs(2048, 128, 1)
    stats = stats_for(x_cal, NVFP4)
    snr = {}
    for target in ("weight", "output"):
        recipe = Recipe(weight=NVFP4, activation=NVFP4, method="arhq", rank=16, gptq_target=target)
        snr[target] = output_error_db(quantize_layer_arhq("l", w, None, stats, recipe), w, x_cal)
    assert snr["output"] > snr["weight"], snr
