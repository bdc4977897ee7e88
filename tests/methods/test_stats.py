"""InputStats: the moments equal their direct formulas, chunking changes nothing, the sample is
the rows with the largest random keys, bad data is named."""

import pytest
import torch

from residq.formats import fake_quantize
from residq.formats.spec import FormatSpec
from residq.methods.stats import CalibrationDataError, InputStats

NVFP4 = FormatSpec(kind="nvfp4")


def quantizer(t):
    return fake_quantize(t.float(), NVFP4)


def test_moments_equal_their_formulas_whatever_the_chunking():
    x = torch.randn(300, 32, generator=torch.Generator().manual_seed(0)) * 3
    whole = InputStats(32, act_quantizer=quantizer, chunk_rows=4096)
    whole.update(x)
    chunked = InputStats(32, act_quantizer=quantizer, chunk_rows=7)
    for part in x.split(50):
        chunked.update(part)
    x64 = x.double()
    xq = torch.cat([quantizer(c) for part in x.split(50) for c in part.split(7)]).double()  # dynamic g per chunk
    xq_whole = quantizer(x).double()
    e = x64 - xq_whole
    assert torch.allclose(whole.hessian, x64.T @ x64)
    assert torch.allclose(whole.residual_covariance, e.T @ e / 300)
    assert torch.allclose(whole.quantized_gram, xq_whole.T @ xq_whole)
    assert torch.allclose(whole.cross_gram, x64.T @ xq_whole)
    assert torch.allclose(chunked.hessian, whole.hessian)
    assert torch.allclose(chunked.cross_gram, x64.T @ xq)
    assert torch.equal(whole.absmax, x64.abs().amax(0)) and chunked.n == whole.n == 300


def test_sample_is_the_rows_with_the_largest_keys_in_arrival_order():
    x = torch.arange(1000 * 4, dtype=torch.float32).reshape(1000, 4)
    stats = InputStats(4, sample_rows=64, seed=5)
    for part in x.split(90):
        stats.update(part)
    generator = torch.Generator().manual_seed(5)
    keys = torch.cat([torch.rand(part.shape[0], generator=generator) for part in x.split(90)])
    expected = x[keys.topk(64).indices.sort().values]
    assert torch.equal(stats.sample, expected)


def test_non_finite_and_missing_data_are_named():
    stats = InputStats(4, name="model.layers.3.mlp")
    with pytest.raises(CalibrationDataError, match="model.layers.3.mlp"):
        _ = stats.hessian
    with pytest.raises(CalibrationDataError, match="NaN or Inf"):
        stats.update(torch.tensor([[1.0, float("nan"), 0.0, 0.0]]))
    with pytest.raises(ValueError, match="expected inputs with 4 channels"):
        stats.update(torch.zeros(2, 5))
