"""W4A4 emulated GEMM vs float32 emulation, incl. ARCQuant residual channels and ARHQ low rank."""

import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")  # CPU: run the kernels in Triton's interpreter
pytest.importorskip("triton")

from residq.kernels import act_quant, w4a4, w4a4_tma, w4a4_wdec
from residq.kernels.block_formats import quantize_blocks
from residq.kernels.interpreter import kernel_device

DEVICE, SKIP = kernel_device()
pytestmark = pytest.mark.skipif(DEVICE is None, reason=str(SKIP))
CFG = {"BLOCK_M": 64, "BLOCK_N": 64, "BLOCK_K": 128, "GROUP_M": 4, "num_warps": 4, "num_stages": 2}


def _operands(fmt, m, n, k, s=0, rank=0, seed=0):
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(n, k, generator=gen) * 0.05
    x = torch.randn(m, k, generator=gen)
    x[:, -32:] *= 25.0
    x = x.to(torch.bfloat16).to(DEVICE)
    a = (torch.randn(k, rank, generator=gen) * 0.1).to(torch.bfloat16).to(DEVICE) if rank else None
    b = (torch.randn(n, rank, generator=gen) * 0.1).to(torch.bfloat16).to(DEVICE) if rank else None
    wq = w4a4.augment_weight({key: v.to(DEVICE) for key, v in quantize_blocks(w, fmt).items()}, fmt, s)
    xq = act_quant.launch(x, fmt, s=s, lowrank_a=a)
    return x, xq, wq, b


@pytest.mark.parametrize("fmt", ["nvfp4", "mxfp4", "int4"])
@pytest.mark.parametrize("m, n, k, s, rank", [(5, 40, 256, 0, 0), (70, 72, 384, 128, 0),
                                               (19, 24, 256, 128, 20)])
def test_matches_float32_emulation(fmt, m, n, k, s, rank):
    _, xq, wq, b = _operands(fmt, m, n, k, s, rank)
    xa = xq.get("lowrank_xa")
    out = w4a4.launch(xq, wq, fmt, s=s, lowrank_xa=xa, lowrank_b=b, out_dtype=torch.float32,
                      config=dict(CFG, path="fused"))
    ref = w4a4.reference(xq, wq, fmt, s=s, lowrank_xa=xa, lowrank_b=b, out_dtype=torch.float32)
    assert out.shape == (m, n)
    assert float((out - ref).norm() / ref.norm()) < 1e-5


@pytest.mark.parametrize("fmt", ["nvfp4", "mxfp4"])
@pytest.mark.parametrize("m, n, k, s, rank", [(70, 72, 384, 128, 0), (19, 24, 256, 128, 20), (300, 40, 256, 0, 0)])
def test_decoded_path_matches_float32_emulation(fmt, m, n, k, s, rank):
    """Decode each operand once to bf16, then the pipelined GEMM: same numbers as the reference
    (ARCQuant's second global scale and ARHQ's branch in the shared epilogue)."""
    _, xq, wq, b = _operands(fmt, m, n, k, s, rank, seed=3)
    xa = xq.get("lowrank_xa")
    cfg = dict(CFG, BLOCK_K=64, path="decoded")
    out = w4a4.launch(xq, wq, fmt, s=s, lowrank_xa=xa, lowrank_b=b, out_dtype=torch.float32, config=cfg)
    ref = w4a4.reference(xq, wq, fmt, s=s, lowrank_xa=xa, lowrank_b=b, out_dtype=torch.float32)
    assert float((out - ref).norm() / ref.norm()) < 1e-5


@pytest.mark.parametrize("fmt", ["nvfp4", "mxfp4"])
@pytest.mark.parametrize("m, n, k, s, rank, out_dtype", [
    (1, 72, 256, 0, 0, torch.bfloat16), (5, 40, 384, 0, 0, torch.float32),
    (16, 136, 256, 0, 20, torch.float32), (11, 64, 128, 0, 8, torch.bfloat16),
    (3, 80, 512, 96, 0, torch.float32),  # ARCQuant: K + s = 608, a partial last segment
    (9, 64, 256, 128, 16, torch.float32),  # ARCQuant (whole segment) + ARHQ, two token tiles
])
def test_skinny_path_matches_float32_emulation(fmt, m, n, k, s, rank, out_dtype):
    """Decode sizes: the activation decoded once, the skinny W4A16 kernel on the packed weight,
    the global scales on its fp32 sums (ARCQuant's residual scale on the columns past K), ARHQ's
    branch before the one rounding (ragged N and K + s, one and two 8-token tiles)."""
    _, xq, wq, b = _operands(fmt, m, n, k, s, rank, seed=7)
    xa = xq.get("lowrank_xa")
    assert w4a4.default_config(m, n, fmt)["path"] == "skinny"
    out = w4a4.launch(xq, wq, fmt, s=s, lowrank_xa=xa, lowrank_b=b, out_dtype=out_dtype)
    ref = w4a4.reference(xq, wq, fmt, s=s, lowrank_xa=xa, lowrank_b=b, out_dtype=torch.float32)
    assert out.dtype == out_dtype and out.shape == (m, n)
    tol = 1e-5 if out_dtype == torch.float32 else 4e-3  # bf16: one rounding of the output
    assert float((out.float() - ref).norm() / ref.norm()) < tol
    # the fused kernel in float32 (Triton's interpreter casts to bf16 by truncation, the GPU rounds)
    fused = w4a4.launch(xq, wq, fmt, s=s, lowrank_xa=xa, lowrank_b=b, out_dtype=torch.float32,
                        config=dict(CFG, path="fused"))
    assert float((out.float() - fused).norm() / ref.norm()) < tol


def test_skinny_path_residual_scale_is_applied():
    """With s > 0 the residual columns carry their own NVFP4 global scale: using the main one
    for them would be visibly wrong, so the match above is not luck."""
    _, xq, wq, _ = _operands("nvfp4", 2, 64, 256, s=128, seed=4)
    ref = w4a4.reference(xq, wq, "nvfp4", s=128, out_dtype=torch.float32)
    out = w4a4.launch(xq, wq, "nvfp4", s=128, out_dtype=torch.float32)
    wrong = w4a4.launch(dict(xq, residual_global_scale=xq["global_scale"]), wq, "nvfp4", s=128,
                        out_dtype=torch.float32)
    assert float((out - ref).norm() / ref.norm()) < 1e-5
    assert float((wrong - ref).norm() / ref.norm()) > 1e-3


def test_skinny_path_falls_back_or_refuses():
    """K not a multiple of 128 and INT4 are not on the skinny path: the default falls back to
    the fused kernel, an explicit request names the reason."""
    _, xq, wq, _ = _operands("nvfp4", 3, 32, 208, seed=2)
    out = w4a4.launch(xq, wq, "nvfp4", out_dtype=torch.float32)
    ref = w4a4.reference(xq, wq, "nvfp4", out_dtype=torch.float32)
    assert float((out - ref).norm() / ref.norm()) < 1e-5
    with pytest.raises(ValueError, match="skinny W4A4 path needs K % 128 == 0"):
        w4a4.launch(xq, wq, "nvfp4", config={"path": "skinny"})
    _, xq, wq, _ = _operands("int4", 3, 32, 256)
    assert w4a4.default_config(3, 32, "int4")["path"] == "fused"
    with pytest.raises(ValueError, match="needs nvfp4 or mxfp4"):
        w4a4.launch(xq, wq, "int4", config={"path": "skinny"})


@pytest.mark.skipif(DEVICE is None or not w4a4_tma.available(torch.device(DEVICE)),
                    reason="the TMA kernel needs an sm_90+ GPU and triton's TensorDescriptor")
@pytest.mark.parametrize("fmt, s, rank", [("nvfp4", 128, 20), ("mxfp4", 0, 0), ("nvfp4", 0, 0), ("nvfp4", 96, 0)])
def test_tma_kernel_equals_cp_async_kernel(fmt, s, rank):
    """Same tiles, same K order: the TMA kernel's output is the cp.async kernel's, bit for bit
    (ragged M and N, ARCQuant's two K ranges, ARHQ's branch)."""
    _, xq, wq, b = _operands(fmt, 300, 520, 384, s, rank, seed=5)
    xa = xq.get("lowrank_xa")
    cfg = dict(w4a4.default_config(300, 520, fmt))
    assert cfg["path"] == "decoded" and cfg["tma"]
    tma = w4a4.launch(xq, wq, fmt, s=s, lowrank_xa=xa, lowrank_b=b, config=cfg)
    plain = w4a4.launch(xq, wq, fmt, s=s, lowrank_xa=xa, lowrank_b=b, config=dict(cfg, tma=False))
    assert torch.equal(tma, plain)


@pytest.mark.skipif(DEVICE is None or not w4a4_wdec.available(torch.device(DEVICE)),
                    reason="the weight-decoding GEMM needs an sm_90+ GPU and triton's Gluon")
@pytest.mark.parametrize("fmt, m, n, k, s, rank", [("nvfp4", 300, 520, 384, 0, 0), ("mxfp4", 300, 520, 384, 0, 0),
                                                   ("nvfp4", 300, 520, 384, 96, 20), ("nvfp4", 257, 200, 400, 96, 0),
                                                   ("nvfp4", 700, 1030, 1024, 0, 64)])
def test_weight_decoding_gemm_equals_decoded_path(fmt, m, n, k, s, rank):
    """The weight decoded tile by tile inside the GEMM gives the decoded path's bits (same bf16
    values, same k16 order), incl. ragged M, N and K, ARCQuant's residual range, ARHQ's branch."""
    _, xq, wq, b = _operands(fmt, m, n, k, s, rank, seed=7)
    xa = xq.get("lowrank_xa")
    ref = w4a4.reference(xq, wq, fmt, s=s, lowrank_xa=xa, lowrank_b=b, out_dtype=torch.float32)
    for tiles in ({}, {"BLOCK_M": 128, "BLOCK_N": 256},  # the kernel's own default, the decoded path's,
                  {"BLOCK_M": 128, "BLOCK_N": 128, "num_warps": 4, "decoder_warps": 8, "decoder_regs": 160}):
        cfg = dict(w4a4.default_config(m, n, fmt), **(tiles or w4a4_wdec.DEFAULT_TILES))
        plain = w4a4.launch(xq, wq, fmt, s=s, lowrank_xa=xa, lowrank_b=b, config=dict(cfg, weight_in_gemm=False))
        inside = w4a4.launch(xq, wq, fmt, s=s, lowrank_xa=xa, lowrank_b=b, config=dict(tiles, weight_in_gemm=True))
        assert float((inside.float() - ref).norm() / ref.norm()) < 4e-3  # bf16 output rounding
        if k % cfg["BLOCK_K"] == 0:  # the TMA kernel runs there: bit for bit
            assert torch.equal(inside, plain), tiles


def test_decoded_path_with_k_not_a_multiple_of_the_tile():
    """K = 400 with ARCQuant's s = 96: the main range's last tile would straddle K, where the
    residual columns begin; the result must still equal the float32 emulation (on Hopper the
    TMA kernel must not take this shape; elsewhere the cp.async kernel masks at K)."""
    _, xq, wq, _ = _operands("nvfp4", 300, 200, 400, 96, seed=9)
    cfg = dict(w4a4.default_config(300, 200, "nvfp4"))
    out = w4a4.launch(xq, wq, "nvfp4", s=96, out_dtype=torch.float32, config=cfg)
    ref = w4a4.reference(xq, wq, "nvfp4", s=96, out_dtype=torch.float32)
    assert float((out - ref).norm() / ref.norm()) < 1e-5


def test_weight_in_gemm_shared_memory_and_fallback():
    """The weight-decoding GEMM lowers its ring depth until its buffers fit an H100 program's
    shared memory (and no further); where it cannot run (CPU, no Gluon) the decoded path gives
    the same result."""
    cfg = dict(w4a4_wdec.DEFAULT_TILES, num_stages=8)
    stages = w4a4_wdec.stages_that_fit(cfg, 64, has_lowrank=True)
    used = 2 * stages * (256 + 128) * 64 + 4 * 128 * 32 + 2 * (256 + 128) * 64 + 1024
    assert 2 <= stages < 8 and used <= w4a4_wdec.SHARED_BYTES < used + 2 * (256 + 128) * 64
    assert w4a4_wdec.stages_that_fit(dict(cfg, num_stages=3), 64, has_lowrank=False) == 3
    if not w4a4_wdec.available(torch.device(DEVICE)):
        _, xq, wq, _ = _operands("nvfp4", 260, 24, 256, seed=3)
        cfg = dict(w4a4.default_config(260, 24, "nvfp4"))
        inside = w4a4.launch(xq, wq, "nvfp4", config=dict(cfg, weight_in_gemm=True))
        assert torch.equal(inside, w4a4.launch(xq, wq, "nvfp4", config=cfg))


def test_path_defaults_and_errors():
    assert w4a4.default_config(w4a4.DECODED_MIN_M, 4096, "nvfp4")["path"] == "decoded"
    assert w4a4.default_config(w4a4.DECODED_MIN_M, 4096, "int4")["path"] == "fused"
    assert w4a4.default_config(16, 4096, "nvfp4")["path"] == "skinny"
    assert w4a4.default_config(17, 4096, "nvfp4")["path"] == "fused"
    _, xq, wq, _ = _operands("int4", 4, 16, 256)
    with pytest.raises(ValueError, match="not exact in bf16"):
        w4a4.launch(xq, wq, "int4", config={"path": "decoded"})
    with pytest.raises(ValueError, match="path must be"):
        w4a4.launch(xq, wq, "int4", config={"path": "cublas"})


def test_arcquant_residual_reduces_error():
    """The residual channels compensate the activation error of the outlier channels."""
    gen = torch.Generator().manual_seed(5)
    w = torch.randn(64, 256, generator=gen) * 0.05
    x = torch.randn(32, 256, generator=gen)
    x[:, -64:] *= 25.0
    x = x.to(torch.bfloat16).to(DEVICE)
    exact = x.float() @ w.to(DEVICE).T
    errors = []
    for s in (0, 128):
        wq = w4a4.augment_weight({key: v.to(DEVICE) for key, v in quantize_blocks(w, "nvfp4").items()},
                                 "nvfp4", s)
        out = w4a4.launch(act_quant.launch(x, "nvfp4", s=s), wq, "nvfp4", s=s,
                          out_dtype=torch.float32, config=CFG)
        errors.append(float((out - exact).norm() / exact.norm()))
    assert errors[1] < 0.8 * errors[0], errors


def test_augment_weight_repeats_last_columns():
    packed = quantize_blocks(torch.randn(8, 64), "nvfp4")
    aug = w4a4.augment_weight(packed, "nvfp4", 32)
    assert torch.equal(aug["codes"][:, 32:], packed["codes"][:, 16:])
    assert torch.equal(aug["scale"][:, 4:], packed["scale"][:, 2:])
    with pytest.raises(ValueError, match="multiple of 16"):
        w4a4.augment_weight(packed, "nvfp4", 8)


def test_rejects_mismatched_operands():
    _, xq, wq, _ = _operands("nvfp4", 4, 16, 256)
    with pytest.raises(ValueError, match="columns"):
        w4a4.launch(xq, {k: v[:, :64] if v.dim() == 2 else v for k, v in wq.items()}, "nvfp4")
    with pytest.raises(KeyError, match="residual_global_scale"):
        w4a4.launch(xq, wq, "nvfp4", s=16)
