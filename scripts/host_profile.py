"""Where the host time of one eager QuantLinear call goes (M = 1, a Llama-3-8B q_proj), and
whether the layer replays under a CUDA graph.

    python scripts/host_profile.py --recipes w4a16-nvfp4-rtn,w4a4-nvfp4-rtn --calls 500

Prints, per recipe: cProfile's top functions by own time over ``--calls`` calls of the layer,
then the per-call wall time of eager calls and of a CUDA-graph replay of the same call.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats

import torch


def main() -> int:
    from residq.api import quantize
    from residq.eval.speed import cuda_graphed as graphed
    from residq.eval.speed import host_per_call_us, layer_ms, one_layer_llama
    from residq.recipe import load_recipe

    parser = argparse.ArgumentParser()
    parser.add_argument("--recipes", default="w4a16-nvfp4-rtn,w4a4-nvfp4-rtn")
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    x = torch.randn(1, 4096, device="cuda", dtype=torch.bfloat16)
    dense = one_layer_llama().model.layers[0].self_attn.q_proj.to("cuda", torch.bfloat16)
    print(f"nn.Linear eager {host_per_call_us(lambda: dense(x), 2000):8.1f} us/call, "
          f"graph {host_per_call_us(graphed(lambda: dense(x)), 2000):8.1f} us/call")
    for recipe in args.recipes.split(","):
        model = one_layer_llama()
        quantize(model, load_recipe(recipe), torch.randint(0, 512, (2, 64)), device="cuda", progress=False)
        q = model.to("cuda", torch.bfloat16).model.layers[0].self_attn.q_proj
        for _ in range(10):
            q(x)
        torch.cuda.synchronize()
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(args.calls):
            q(x)
        torch.cuda.synchronize()
        prof.disable()
        text = io.StringIO()
        pstats.Stats(prof, stream=text).sort_stats("tottime").print_stats(args.top)
        print(f"==== {recipe}: cProfile of {args.calls} calls (sorted by own time)")
        print(text.getvalue())
        eager = host_per_call_us(lambda q=q: q(x), 2000)
        try:
            replay = host_per_call_us(graphed(lambda q=q: q(x)), 2000)
            print(f"{recipe}: eager {eager:8.1f} us/call, graph replay {replay:8.1f} us/call")
        except Exception as err:  # noqa: BLE001 - report any capture failure, go on
            print(f"{recipe}: eager {eager:8.1f} us/call, graph capture failed: {type(err).__name__}: {err}")
    device = torch.device("cuda")
    for recipe in ["bf16", *args.recipes.split(",")]:
        model = one_layer_llama()
        if recipe != "bf16":
            quantize(model, load_recipe(recipe), torch.randint(0, 512, (2, 64)), device="cuda", progress=False)
        model = model.to("cuda", torch.bfloat16)
        for tokens in (1, 16, 2048):
            eager = layer_ms(model, device, tokens)
            try:
                graph = f"{layer_ms(model, device, tokens, cuda_graph=True):.3f}"
            except Exception as err:  # noqa: BLE001 - report any capture failure, go on
                graph = f"failed ({type(err).__name__}: {str(err)[:200]})"
            print(f"layer {recipe:<22} tokens {tokens:5d}: eager {eager:.3f} ms, graph {graph} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
