"""Per-call time of one linear at M = 1 on the GPU: nn.Linear (bf16), QuantLinear through the
kernels, and the bare W4A16 kernel launch; eager calls, as in HF decoding.

    python scripts/linear_overhead.py --recipe w4a16-nvfp4-rtn --n 4096 --k 4096 --calls 2000

Prints microseconds per call (wall time of ``--calls`` back-to-back calls, synchronized once at
the end, median of 5 runs) and the share QuantLinear's Python path adds to the kernel.
"""

from __future__ import annotations

import argparse

import torch


def main() -> int:
    from residq.api import quantize
    from residq.eval.speed import host_per_call_us, one_layer_llama
    from residq.kernels import w4a16
    from residq.recipe import load_recipe

    parser = argparse.ArgumentParser()
    parser.add_argument("--recipe", default="w4a16-nvfp4-rtn")
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    model = one_layer_llama()
    dense = model.model.layers[0].self_attn.q_proj.to("cuda", torch.bfloat16)
    x = torch.randn(1, 4096, device="cuda", dtype=torch.bfloat16)
    quantize(model, load_recipe(args.recipe), torch.randint(0, 512, (2, 64)), device="cuda", progress=False)
    model = model.to("cuda", torch.bfloat16)
    q = model.model.layers[0].self_attn.q_proj
    packed = {key: getattr(q, f"qweight_{key}") for key in q.packed_keys}
    fmt = q.weight_spec.kind
    rows = {"nn.Linear bf16": host_per_call_us(lambda: dense(x), args.calls),
            "QuantLinear": host_per_call_us(lambda: q(x), args.calls)}
    if q.act_spec is None:
        rows["w4a16.launch"] = host_per_call_us(lambda: w4a16.launch(x, packed, fmt), args.calls)
    for name, us in rows.items():
        print(f"{name:<16}{us:8.1f} us/call  (4096 x 4096, M = 1, {args.recipe})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
