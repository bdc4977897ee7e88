"""W4A16 kernel vs dequantize-then-matmul (GPU, or Triton's interpreter on CPU)."""

import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")  # CPU: run the kernels in Triton's interpreter
pytest.importorskip("triton")

from residq.kernels import w4a16, w4a16_skinny
from residq.kernels.block_formats import quantize_blocks
from residq.kernels.interpreter import kernel_device

DEVICE, SKIP = kernel_device()
pytestmark = pytest.mark.skipif(DEVICE is None, reason=str(SKIP))
MANTISSA_BITS = {torch.bfloat16: 7, torch.float16: 10}


def assert_within_one_ulp(out, ref):
    """Both are roundings of (nearly) the same fp32 sum: at most one unit in the last place."""
    ref32, out32 = ref.float().cpu(), out.float().cpu()
    assert torch.isfinite(out32).all()
    ulp = torch.ldexp(torch.ones_like(ref32), torch.frexp(ref32)[1] - 1 - MANTISSA_BITS[ref.dtype])
    assert bool(((out32 - ref32).abs() <= ulp + 1e-6).all()), float((out32 - ref32).abs().max())


def _problem(fmt, m, n, k, dtype, seed=0):
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(n, k, generator=gen) * 0.05
    packed = {key: v.to(DEVICE) for key, v in quantize_blocks(w, fmt).items()}
    x = (torch.randn(m, k, generator=gen)).to(dtype).to(DEVICE)
    return x, packed


CASES = [
    # (M, N, K, config): ragged M and N, K not a multiple of BLOCK_K, split-K
    (1, 40, 384, {"BLOCK_N": 64, "BLOCK_M": 16, "BLOCK_K": 256, "SPLIT_K": 1}),
    (5, 72, 512, {"BLOCK_N": 64, "BLOCK_M": 16, "BLOCK_K": 128, "SPLIT_K": 3}),
    (33, 24, 256, {"BLOCK_N": 64, "BLOCK_M": 32, "BLOCK_K": 128, "SPLIT_K": 2}),
]


FORMATS = [("nvfp4", torch.bfloat16), ("nvfp4", torch.float16), ("mxfp4", torch.bfloat16),
           ("int4", torch.bfloat16), ("int4", torch.float16)]


@pytest.mark.parametrize("fmt, dtype", FORMATS)
@pytest.mark.parametrize("m, n, k, cfg", CASES)
def test_tiled_matches_reference(fmt, dtype, m, n, k, cfg):
    if fmt == "int4":
        cfg = dict(cfg, BLOCK_K=128)
    x, packed = _problem(fmt, m, n, k, dtype)
    out = w4a16.launch(x, packed, fmt, config=dict(cfg, kernel="tiled", num_warps=4, num_stages=2))
    assert out.shape == (m, n) and out.dtype == dtype
    assert_within_one_ulp(out, w4a16.reference(x, packed, fmt))


SKINNY_CASES = [
    # (M, N, K, config): one / two token tiles, ragged N, segments not a multiple of CH, split-K
    (1, 40, 384, {"kernel": "skinny", "num_warps": 1, "CH": 2}),
    (5, 72, 256, {"kernel": "skinny", "num_warps": 2, "CH": 1}),
    (12, 24, 512, {"kernel": "skinny", "num_warps": 1, "CH": 4}),
]


@pytest.mark.parametrize("fmt, dtype", FORMATS)
@pytest.mark.parametrize("m, n, k, cfg", SKINNY_CASES)
def test_skinny_matches_reference(fmt, dtype, m, n, k, cfg):
    x, packed = _problem(fmt, m, n, k, dtype)
    assert w4a16.skinny_supported(x, packed, fmt)
    out = w4a16.launch(x, packed, fmt, config=cfg)
    assert out.shape == (m, n) and out.dtype == dtype
    assert_within_one_ulp(out, w4a16.reference(x, packed, fmt))
    again = w4a16.launch(x, packed, fmt, config=cfg)  # the split-K workspace resets itself
    assert torch.equal(out, again)


@pytest.mark.skipif(DEVICE is None or DEVICE.type != "cuda", reason="inline PTX runs on the GPU only")
@pytest.mark.parametrize("fmt, dtype", FORMATS)
@pytest.mark.parametrize("m, cfg", [(1, {}), (7, {"num_warps": 8, "R": 2, "CH": 4}), (16, {}),
                                    (9, {"num_warps": 4, "R": 1, "CH": 16})])
def test_skinny_ptx_matches_reference(fmt, dtype, m, cfg):
    """The MMA-fragment PTX path (GPU only) on shapes with several programs per row block."""
    x, packed = _problem(fmt, m, 200, 2048, dtype, seed=4)
    out = w4a16.launch(x, packed, fmt, config=dict(cfg, kernel="skinny"))
    assert_within_one_ulp(out, w4a16.reference(x, packed, fmt))


@pytest.mark.skipif(DEVICE is None or DEVICE.type != "cuda", reason="inline PTX runs on the GPU only")
@pytest.mark.parametrize("fmt", ["nvfp4", "mxfp4", "int4"])
def test_ptx_decode_equals_plain_decode(fmt):
    x, packed = _problem(fmt, 16, 128, 1024, torch.bfloat16, seed=3)
    fast = w4a16.launch(x, packed, fmt, config={"kernel": "tiled"}, use_asm=True)
    plain = w4a16.launch(x, packed, fmt, config={"kernel": "tiled"}, use_asm=False)
    assert torch.equal(fast, plain)


@pytest.mark.parametrize("fmt, dtype", FORMATS[:3])
def test_decoded_path_equals_the_dequantized_weight_product(fmt, dtype):
    """Prefill-sized M: decode once (global scale folded in) and one 16-bit matmul, the same
    product the reference path takes with its dequantized 16-bit weight."""
    x, packed = _problem(fmt, w4a16.DECODED_MIN_M, 40, 256, dtype)
    assert w4a16.resolve_config(x, packed, fmt)["kernel"] == "decoded"
    out = w4a16.launch(x, packed, fmt)
    from residq.kernels.block_formats import dequantize_blocks

    weight = dequantize_blocks({key: v.cpu() for key, v in packed.items()}, fmt).to(dtype)
    expected = (x.cpu() @ weight.T)
    assert out.dtype == dtype
    assert float((out.cpu().float() - expected.float()).norm() / expected.float().norm()) < 1e-2
    assert float((out.float() - w4a16.reference(x, packed, fmt).float()).norm()
                 / w4a16.reference(x, packed, fmt).float().norm()) < 1e-2
    with pytest.raises(ValueError, match="decoded W4A16 path needs"):
        w4a16.resolve_config(*_problem("int4", 4, 32, 256, torch.bfloat16), "int4", {"kernel": "decoded"})


def test_default_kernel_choice():
    x, packed = _problem("nvfp4", 1, 32, 256, torch.bfloat16)
    assert w4a16.resolve_config(x, packed, "nvfp4")["kernel"] == "skinny"
    x16, packed16 = _problem("nvfp4", 16, 32, 256, torch.bfloat16)  # 9..16 tokens, small layer
    assert w4a16.resolve_config(x16, packed16, "nvfp4")["kernel"] == "skinny"
    big = w4a16.SKINNY_T2_MAX_WEIGHTS // 256 + 64  # 9..16 tokens, more weights: the tiled kernel
    wide = {key: v[:1].expand(big, *v.shape[1:]).contiguous() if v.dim() else v for key, v in packed16.items()}
    assert w4a16.skinny_supported(x16, wide, "nvfp4")
    assert w4a16.resolve_config(x16, wide, "nvfp4")["kernel"] == "tiled"
    assert w4a16.resolve_config(x, packed, "nvfp4", {"BLOCK_N": 64})["kernel"] == "tiled"  # tile keys
    x_odd, packed_odd = _problem("nvfp4", 1, 32, 208, torch.bfloat16)  # K % 128 != 0
    assert w4a16.resolve_config(x_odd, packed_odd, "nvfp4")["kernel"] == "tiled"
    with pytest.raises(ValueError, match="skinny kernel needs"):
        w4a16.resolve_config(x_odd, packed_odd, "nvfp4", {"kernel": "skinny"})


def test_rejects_bad_inputs():
    x, packed = _problem("mxfp4", 2, 32, 128, torch.float16)
    with pytest.raises(ValueError, match="needs bf16 activations"):
        w4a16.launch(x, packed, "mxfp4")
    x, packed = _problem("nvfp4", 2, 32, 128, torch.bfloat16)
    with pytest.raises(ValueError, match="needs codes"):
        w4a16.check_packed(packed, "nvfp4", 32, 256)
    with pytest.raises(ValueError, match="BLOCK_K=128"):
        x4, p4 = _problem("int4", 2, 32, 256, torch.bfloat16)
        w4a16.launch(x4, p4, "int4", config={"kernel": "tiled", "BLOCK_K": 256})


@pytest.mark.parametrize("fmt, tiles, warps, rows, chunks", [(0, 1, 4, 1, 8), (1, 1, 1, 1, 2), (2, 2, 2, 1, 4),
                                                             (1, 2, 8, 2, 4)])
def test_skinny_fragment_layout(fmt, tiles, warps, rows, chunks):
    """The PTX of ``_skinny_kernel`` assumes lane = p % 32, warp = (p // 32) % W for its [P, 2]
    operands (one MMA fragment per call). Check the layout Triton gives them, compiling for
    sm_90 without a GPU (no CUDA needed; skipped where the compiler cannot run)."""
    import re

    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    fn = w4a16_skinny._skinny_kernel
    constexprs = {"FMT": fmt, "T": tiles, "R": rows, "CH": chunks, "SPLIT": 2, "W": warps, "BF16": True,
                  "USE_ASM": True, "PTX": w4a16_skinny.skinny_mma_ptx(fmt, True, tiles)}
    signature = {"x_ptr": "*bf16", "codes_ptr": "*u8", "scale_ptr": "*fp16" if fmt == 2 else "*u8",
                 "g_ptr": "*fp32", "out_ptr": "*bf16", "ws_ptr": "*fp32", "counter_ptr": "*i32",
                 "zero_ptr": "*u8", "M": "i32", "N": "i32", "K": "i32", "stride_xm": "i32", "stride_om": "i32"}
    signature.update({name: "constexpr" for name in constexprs})
    attrs = {(i,): [["tt.divisibility", 16]] for i in range(13) if i != 8}
    source = ASTSource(fn=fn, signature=signature, attrs=attrs,
                       constexprs={(fn.arg_names.index(k),): v for k, v in constexprs.items()})
    try:
        compiled = triton.compile(source, target=GPUTarget("cuda", 90, 32),
                                  options={"num_warps": warps, "num_stages": 1})
    except Exception as exc:  # noqa: BLE001 - e.g. no ptxas with this Triton build
        pytest.skip(f"cannot compile for sm_90 here: {type(exc).__name__}: {str(exc)[:100]}")
    ir = compiled.asm["ttgir"]
    layouts = dict(re.findall(r"^#(\w+) = (#ttg\.\w+<.*>)$", ir, re.MULTILINE))
    used = set(re.findall(r"elementwise_inline_asm .*? : tensor<\d+x2xi64, #(\w+)>", ir))
    assert used
    for name in used:
        assert "sizePerThread = [1, " in layouts[name], layouts[name]
        assert f"threadsPerWarp = [32, 1], warpsPerCTA = [{warps}, 1]" in layouts[name], layouts[name]
