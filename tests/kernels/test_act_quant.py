"""Activation quantizer kernel == its torch reference, bit for bit (GPU, or Triton's interpreter)."""

import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")  # CPU: run the kernels in Triton's interpreter
pytest.importorskip("triton")

from residq.formats import FormatSpec
from residq.kernels import act_quant
from residq.kernels.block_formats import dequantize_blocks
from residq.kernels.interpreter import kernel_device
from residq.nn.activation import quantize_activation as nn_quantize_activation

DEVICE, SKIP = kernel_device()
pytestmark = pytest.mark.skipif(DEVICE is None, reason=str(SKIP))


def _activations(m, k, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(m, k, generator=gen) * torch.rand(m, 1, generator=gen) * 4
    x[1, : k // 4] = 0.0  # all-zero blocks
    x[:, -16:] *= 30.0  # outlier channels last
    return x.to(torch.bfloat16).to(DEVICE)


def _cpu(t):
    return t.cpu() if isinstance(t, torch.Tensor) else t


def _reference(x, fmt, **kwargs):
    """The reference on the CPU: CUDA torch divides by Python floats through a reciprocal."""
    return act_quant.reference(x.cpu(), fmt, **{key: _cpu(v) for key, v in kwargs.items()})


def _assert_same(out, ref):
    out = {key: v.cpu() for key, v in out.items()}
    assert sorted(out) == sorted(ref)
    for key in ref:
        if key == "lowrank_xa":
            err = (out[key].float() - ref[key].float()).abs().max()
            assert err <= 2.0**-6 * ref[key].float().abs().max(), key
        else:
            assert torch.equal(out[key], ref[key]), key


@pytest.mark.parametrize("fmt", ["nvfp4", "mxfp4", "int4"])
@pytest.mark.parametrize("m, k, s, perm, gather", [(5, 256, 0, False, "pass"), (19, 384, 128, True, "pass"),
                                                  (19, 384, 128, True, "fused")])
def test_matches_reference(fmt, m, k, s, perm, gather):
    x = _activations(m, k)
    p = torch.randperm(k, generator=torch.Generator().manual_seed(1)).to(DEVICE) if perm else None
    _assert_same(act_quant.launch(x, fmt, perm=p, s=s, gather=gather), _reference(x, fmt, perm=p, s=s))


@pytest.mark.skipif(DEVICE is None or DEVICE.type != "cuda", reason="the gather pass kernel runs on the GPU only")
@pytest.mark.parametrize("fmt, s", [("nvfp4", 336), ("nvfp4", 0), ("mxfp4", 0)])
def test_default_gather_pass_on_large_activations(fmt, s):
    """From ``GATHER_PASS_MIN`` elements the default applies ``perm`` with the gather pass (and,
    NVFP4 with a dynamic scale, takes the amax from it): the same bits as the reference."""
    m, k = 256, 4096
    assert m * k >= act_quant.GATHER_PASS_MIN
    x = _activations(m, k)
    p = torch.randperm(k, generator=torch.Generator().manual_seed(5)).to(DEVICE)
    _assert_same(act_quant.launch(x, fmt, perm=p, s=s), _reference(x, fmt, perm=p, s=s))


@pytest.mark.parametrize("fmt, s", [("nvfp4", 32), ("mxfp4", 0), ("int4", 128)])
def test_no_rows(fmt, s):
    """(0, K) activations: empty codes and scales, NVFP4 scales 1.0 (never uninitialized memory)."""
    x = _activations(4, 256)[:0]
    out = act_quant.launch(x, fmt, perm=torch.randperm(256).to(DEVICE), s=s, lowrank_a=torch.ones(256, 8).to(DEVICE))
    assert out["codes"].shape == (0, (256 + s) // 2) and out["scale"].shape[0] == 0
    assert out["lowrank_xa"].shape == (0, 8)
    if fmt == "nvfp4":
        assert float(out["global_scale"]) == 1.0 and float(out["residual_global_scale"]) == 1.0


def test_static_scale_and_lowrank_xa():
    x = _activations(17, 256)
    g = torch.tensor(0.02, device=DEVICE)
    a = (torch.randn(256, 24, generator=torch.Generator().manual_seed(2)) * 0.1).to(torch.bfloat16).to(DEVICE)
    out = act_quant.launch(x, "nvfp4", global_scale=g, lowrank_a=a, s=32)
    _assert_same(out, _reference(x, "nvfp4", global_scale=g, lowrank_a=a, s=32))
    assert out["global_scale"].item() == pytest.approx(0.02)


def test_arcquant_operand_equals_nn_reference():
    """Dequantized [Q1 | Q2] equals residq.nn's reference activation quantizer (own g for Q2)."""
    x = _activations(9, 256)
    out = {key: v.cpu() for key, v in act_quant.launch(x, "nvfp4", s=64).items()}
    main = dequantize_blocks({"codes": out["codes"][:, :128], "scale": out["scale"][:, :256 // 16],
                              "global_scale": out["global_scale"]}, "nvfp4")
    residual = dequantize_blocks({"codes": out["codes"][:, 128:], "scale": out["scale"][:, 256 // 16:],
                                  "global_scale": out["residual_global_scale"]}, "nvfp4")
    expected = nn_quantize_activation(x.float().cpu(), FormatSpec(kind="nvfp4"), augmented=64)
    assert torch.equal(torch.cat([main, residual], dim=1), expected)


def test_rejects_bad_arguments():
    x = _activations(4, 256)
    with pytest.raises(ValueError, match="multiple of 128"):
        act_quant.launch(x[:, :200], "int4")
    with pytest.raises(ValueError, match="s must be a multiple of 16"):
        act_quant.launch(x, "nvfp4", s=8)
    with pytest.raises(ValueError, match="perm must be"):
        act_quant.launch(x, "nvfp4", perm=torch.arange(10, device=DEVICE))
    with pytest.raises(ValueError, match="gather must be 'pass' or 'fused'"):
        act_quant.launch(x, "nvfp4", perm=torch.arange(256, device=DEVICE), gather="smem")


@pytest.mark.parametrize("s", [0, 32])
def test_tiny_activations_take_the_lifted_division(s):
    """A global scale below 2^-55 sends NVFP4 through the division that lifts tiny block divisors
    (the other branch of ``_nvfp4_codes``); the codes must still match bit for bit."""
    x = (_activations(6, 256).float() * 2.0**-80).to(torch.bfloat16)
    out = act_quant.launch(x, "nvfp4", s=s)
    assert out["global_scale"].item() < 2.0**-55
    _assert_same(out, _reference(x, "nvfp4", s=s))


@pytest.mark.parametrize("fmt, s, perm", [("nvfp4", 64, False), ("mxfp4", 0, True), ("int4", 128, False)])
@pytest.mark.parametrize("chunks", [2, 3])
def test_prefetching_loop_matches_reference(fmt, s, perm, chunks):
    """Several chunks per program (the prefetching loop), with a ragged last chunk per band."""
    x = _activations(7, 640)
    p = torch.randperm(640, generator=torch.Generator().manual_seed(3)).to(DEVICE) if perm else None
    out = act_quant.launch(x, fmt, perm=p, s=s, chunk_cols=128, chunks_per_program=chunks, gather="fused")
    _assert_same(out, _reference(x, fmt, perm=p, s=s))


