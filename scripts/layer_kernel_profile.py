"""Where one Llama-3-8B-shaped decoder layer spends its GPU time, per kernel: ``torch.profiler``
over a few forwards of the layer at 2048 tokens (random weights, random-token calibration, as
``residq bench``'s layer rows), for each recipe; prints the kernels by total CUDA time.

    PYTHONPATH=. python scripts/layer_kernel_profile.py [--recipes w4a4-nvfp4-rtn,w4a4-nvfp4-arcquant]
"""

from __future__ import annotations

import argparse

import torch
from torch.profiler import ProfilerActivity, profile

from residq.commands.bench import _quantized
from residq.eval.speed import one_layer_llama


def layer_call(model, tokens: int):
    """A closure running ``model.model.layers[0]`` on the inputs of a ``(1, tokens)`` forward."""
    layer = model.model.layers[0]
    captured = {}
    hook = layer.register_forward_pre_hook(lambda m, a, k: captured.setdefault("call", (a, k)), with_kwargs=True)
    try:
        ids = torch.randint(0, model.config.vocab_size, (1, tokens), device="cuda")
        model(input_ids=ids, use_cache=False)
    finally:
        hook.remove()
    args, kwargs = captured["call"]
    return lambda: layer(*args, **kwargs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipes", default="w4a4-nvfp4-rtn,w4a4-nvfp4-arcquant")
    parser.add_argument("--tokens", type=int, default=2048)
    parser.add_argument("--rows", type=int, default=14)
    args = parser.parse_args()
    opts = argparse.Namespace(calib_samples=4, calib_seqlen=256, quiet=True)
    for recipe in args.recipes.split(","):
        model = _quantized(one_layer_llama(), recipe, opts, torch.device("cuda")).to("cuda", torch.bfloat16)
        call = layer_call(model, args.tokens)
        with torch.no_grad():
            for _ in range(3):
                call()
            torch.cuda.synchronize()
            with profile(activities=[ProfilerActivity.CUDA]) as prof:
                for _ in range(5):
                    call()
                torch.cuda.synchronize()
        print(f"== {recipe}, {args.tokens} tokens, 5 forwards")
        print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=args.rows, max_name_column_width=60))


if __name__ == "__main__":
    main()
