import math

import pytest
import torch

from residq.formats import (
    FormatSpec,
    decode,
    dequantize,
    encode,
    fake_quantize,
    fit_scales,
    pack,
    quantize,
    unpack,
)


def _weight(m: int = 6, k: int = 40) -> torch.Tensor:
    torch.manual_seed(0)
    return torch.randn(m, k) * torch.logspace(-1, 1, k)


def _column_scale(t: torch.Tensor | None, spec: FormatSpec, column: int, k: int):
    """The slice of a scale (or zero) tensor that owns ``column``, keeping the last dim."""
    if t is None or spec.is_per_tensor:
        return t
    block = column // spec.block_size(k)
    return t[:, block : block + 1]


def test_fit_scales_matches_quantize(any_spec):
    x = _weight()
    scale, zero, g = fit_scales(x, any_spec)
    qt = quantize(x, any_spec)
    assert torch.equal(scale, qt.scale)
    assert (zero is None) == (qt.zero is None) and (zero is None or torch.equal(zero, qt.zero))
    assert (g is None) == (any_spec.kind != "nvfp4")
    assert g is None or torch.equal(g, qt.global_scale)
    n_blocks = 1 if any_spec.is_per_tensor else math.ceil(40 / any_spec.block_size(40))
    assert scale.dtype == torch.float32 and scale.shape[-1] == n_blocks


def test_single_column_encode_decode_equals_full_quantize(any_spec):
    """The GPTQ column sweep: each column quantized alone with its block's scale."""
    w = _weight()
    k = w.shape[1]
    scale, zero, g = fit_scales(w, any_spec)
    qt = quantize(w, any_spec)
    full_values = dequantize(qt)
    for i in range(k):
        s_i = _column_scale(scale, any_spec, i, k)
        z_i = _column_scale(zero, any_spec, i, k)
        codes = encode(w[:, i : i + 1], s_i, z_i, g, any_spec)
        assert torch.equal(codes, qt.codes[:, i : i + 1]), f"column {i}"
        values = decode(codes, s_i, z_i, g, any_spec)
        assert torch.equal(values, full_values[:, i : i + 1]), f"column {i}"


def test_block_aligned_column_range_encodes_with_its_scales():
    spec = FormatSpec(kind="nvfp4")
    w = _weight(k=64)
    qt = quantize(w, spec)
    codes = encode(w[:, 16:48], qt.scale[:, 1:3], None, qt.global_scale, spec)
    assert torch.equal(codes, qt.codes[:, 16:48])


def test_encode_rejects_scales_that_do_not_tile_x():
    spec = FormatSpec("int", 4, True, "group", 8)
    with pytest.raises(ValueError, match="2 blocks.*K=20.*3 blocks of 8"):
        encode(torch.randn(2, 20), torch.ones(2, 2), None, None, spec)


def test_argument_errors_are_specific():
    asym = FormatSpec("int", 4, False, "channel")
    with pytest.raises(ValueError, match="zero point tensor is required"):
        encode(torch.randn(2, 4), torch.ones(2, 1), None, None, asym)
    with pytest.raises(ValueError, match="has no zero point"):
        encode(torch.randn(2, 4), torch.ones(2, 1), torch.zeros(2, 1), None, FormatSpec())
    with pytest.raises(ValueError, match="global scale"):
        decode(
            torch.zeros(2, 16, dtype=torch.uint8),
            torch.ones(2, 1),
            None,
            None,
            FormatSpec(kind="nvfp4"),
        )
    with pytest.raises(ValueError, match="positive and finite"):
        quantize(torch.randn(2, 16), FormatSpec(kind="nvfp4"), global_scale=torch.tensor(0.0))
    with pytest.raises(TypeError, match="floating-point"):
        quantize(torch.ones(2, 4, dtype=torch.int32), FormatSpec())


def _snr_db(x: torch.Tensor, y: torch.Tensor) -> float:
    return 10 * math.log10(x.pow(2).sum().item() / (x - y).pow(2).sum().item())


def test_error_decreases_with_bits_on_gaussian_data():
    torch.manual_seed(0)
    x = torch.randn(64, 256)
    snr = {
        b: _snr_db(x, fake_quantize(x, FormatSpec("int", b, True, "group", 64)))
        for b in (2, 3, 4, 8)
    }
    # uniform quantizer: about 6 dB per bit once the grid is fine enough
    assert snr[8] > 38 and 16 < snr[4] < 24 and snr[2] < 8
    assert snr[8] > snr[4] + 15 and snr[4] > snr[3] + 4 and snr[3] > snr[2] + 4
    nvfp4 = _snr_db(x, fake_quantize(x, FormatSpec(kind="nvfp4")))
    mxfp4 = _snr_db(x, fake_quantize(x, FormatSpec(kind="mxfp4")))
    fp8 = _snr_db(x, fake_quantize(x, FormatSpec(kind="fp8", granularity="token")))
    assert fp8 > 28 and 18 < nvfp4 < 24 and 15 < mxfp4 < nvfp4


def test_fake_quantize_keeps_dtype_has_no_grad_and_is_nan_free_on_zeros(any_spec):
    x = torch.zeros(3, 20, dtype=torch.float16)
    out = fake_quantize(x, any_spec)
    assert out.dtype == torch.float16 and out.shape == x.shape
    assert not out.isnan().any() and (out == 0).all()
    w = _weight().to(torch.bfloat16).requires_grad_()
    out = fake_quantize(w, any_spec)
    assert out.dtype == torch.bfloat16 and not out.requires_grad


def test_leading_dims_and_one_dim_inputs(any_spec):
    torch.manual_seed(2)
    x = torch.randn(2, 3, 24)
    expected = fake_quantize(x.reshape(6, 24), any_spec).reshape(2, 3, 24)
    assert torch.equal(fake_quantize(x, any_spec), expected)
    row = x[0, 0]
    assert torch.equal(fake_quantize(row, any_spec), fake_quantize(row[None], any_spec)[0])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_results_equal_cpu_results_bitwise(any_spec):
    torch.manual_seed(4)
    x = torch.randn(8, 77) * torch.logspace(-3, 3, 77)
    on_cpu = quantize(x, any_spec)
    on_gpu = quantize(x.cuda(), any_spec)
    assert torch.equal(on_gpu.scale.cpu(), on_cpu.scale)
    assert torch.equal(on_gpu.codes.cpu(), on_cpu.codes)
    assert torch.equal(dequantize(on_gpu).cpu(), dequantize(on_cpu))
    packed = pack(on_gpu)
    assert all(t.is_cuda for t in packed.values())
    back = unpack(packed, any_spec, tuple(x.shape))
    assert torch.equal(dequantize(back), dequantize(on_gpu))
