"""What the activation quantizer's channel gather costs one Llama-3-8B-shaped decoder layer:
``residq bench``'s layer timing (random weights, random-token calibration, CUDA-graph replay) for
each recipe, with ``act_quant``'s default (rows "gather pass": the gather as its own pass,
``column_gather.py``, from ``act_quant.GATHER_PASS_MIN`` elements, so at the 2048-token call; the
fused loads at 1 token) and with the gather inside the quantizer's loads at every size (rows
"gather fused": the default before session 15).

    PYTHONPATH=. python scripts/arcquant_layer_probe.py [--recipes w4a4-nvfp4-rtn,w4a4-nvfp4-arcquant]
"""

from __future__ import annotations

import argparse

import torch

from residq.commands.bench import _layer_row
from residq.kernels import act_quant


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipes", default="w4a4-nvfp4-rtn,w4a4-nvfp4-arcquant")
    parser.add_argument("--layer-tokens", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    args.calib_samples, args.calib_seqlen, args.quiet = 4, 256, True
    device = torch.device("cuda")
    print(f"{torch.cuda.get_device_name()}: one Llama-3-8B-shaped layer, {args.layer_tokens} tokens and 1 token, "
          "CUDA-graph replay, ms")
    available = act_quant.column_gather_available
    for recipe in [None, *args.recipes.split(",")]:
        for mode in ("pass", "fused") if recipe else ("-",):
            # "fused": make the quantizer believe the gather kernel cannot run (its fallback)
            act_quant.column_gather_available = available if mode != "fused" else (lambda _device: False)
            try:
                row = _layer_row(recipe or "bf16", recipe, args, device, torch.bfloat16)
            finally:
                act_quant.column_gather_available = available
            print(f"  {recipe or 'bf16':24s} gather {mode:5s}: prefill {row['prefill_graph_ms']:.3f}  "
                  f"1-token {row['decode_graph_ms']:.3f}", flush=True)


if __name__ == "__main__":
    main()
