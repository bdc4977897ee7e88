"""Where does the weight-decoding W4A4 GEMM's time go (``residq/kernels/w4a4_wdec.py``)?

Times the kernel against a copy of it whose decode is replaced by a plain byte-to-bf16
conversion (what is left is the load / shared-memory / barrier / wgmma structure), at M = 2048
on two Llama-3-8B shapes, with cuBLAS bf16 (including the weight's cast) for scale. Prints
microseconds (``triton.testing.do_bench``). Needs an sm_90 GPU and triton with Gluon. Run from
the repository root: ``PYTHONPATH=. python scripts/wdec_decomposition.py`` (benchmarks/README.md, session 13).
"""

from __future__ import annotations

import importlib.util
import pathlib
import tempfile

import torch
import triton

from residq.kernels import act_quant, decode, w4a4_wdec
from residq.kernels.block_formats import quantize_blocks

DECODE_CALL = "w_tile = _decode_step(raw, scales, FMT, BLOCK_N, BLOCK_K, SB, tile_layout)"
PLAIN_CONVERSION = ("w_tile = gl.convert_layout(gl.reshape(gl.join(raw.to(gl.bfloat16), raw.to(gl.bfloat16)), "
                    "[BLOCK_N, BLOCK_K]), tile_layout)")
CONFIGS = ({"BLOCK_M": 128, "BLOCK_N": 256, "BLOCK_K": 64, "GROUP_M": 8, "num_warps": 8, "num_stages": 4},
           {"BLOCK_M": 256, "BLOCK_N": 128, "BLOCK_K": 64, "GROUP_M": 8, "num_warps": 8, "num_stages": 4})


def kernel_without_decode():
    """``w4a4_wdec`` loaded from a copy whose tile decode is a plain conversion."""
    source = pathlib.Path(w4a4_wdec.__file__).read_text()
    if DECODE_CALL not in source:
        raise RuntimeError(f"{w4a4_wdec.__file__} no longer contains {DECODE_CALL!r}")
    path = pathlib.Path(tempfile.mkdtemp()) / "wdec_plain_conversion.py"
    path.write_text(source.replace(DECODE_CALL, PLAIN_CONVERSION))
    spec = importlib.util.spec_from_file_location("wdec_plain_conversion", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def time_shape(plain, n: int, k: int, m: int = 2048) -> None:
    w = torch.randn(n, k, device="cuda") * 0.02
    x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
    wq = {key: v.contiguous() for key, v in quantize_blocks(w, "nvfp4").items()}
    xq = act_quant.launch(x, "nvfp4")
    x_decoded = decode.decode(xq, "nvfp4", row_align=64)
    out = torch.empty(m, n, device="cuda", dtype=torch.bfloat16)
    scales = (xq["global_scale"], xq["global_scale"], wq["global_scale"])
    bf16 = triton.testing.do_bench(lambda: x @ w.to(torch.bfloat16).T)
    for cfg in CONFIGS:
        def call(module, cfg=cfg):
            return lambda: module.launch(x_decoded, wq, k, 0, 0, scales, None, None, out, cfg, 16)
        full = triton.testing.do_bench(call(w4a4_wdec))
        without = triton.testing.do_bench(call(plain))
        print(f"N={n} K={k} BM={cfg['BLOCK_M']} BN={cfg['BLOCK_N']}: full {full * 1e3:.1f} us, "
              f"decode replaced {without * 1e3:.1f} us, bf16 {bf16 * 1e3:.1f} us (incl. cast)")


def main() -> None:
    if not torch.cuda.is_available() or not w4a4_wdec.available(torch.device("cuda")):
        raise SystemExit("needs an sm_90+ GPU and triton with Gluon")
    plain = kernel_without_decode()
    for n, k in ((4096, 4096), (14336, 4096)):
        time_shape(plain, n, k)


if __name__ == "__main__":
    main()
