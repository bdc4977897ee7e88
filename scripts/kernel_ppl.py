"""Perplexity of quantized models on the GPU through the Triton kernels vs the reference path.

    python scripts/kernel_ppl.py --model smollm2-135m --recipes w4a16-nvfp4-gptq,w4a4-nvfp4-rtn \
        --seqlen 2048 --out kernel_ppl.json

Both paths run the same quantized bf16 model; only ``QuantLinear.use_kernels`` differs.
``--fp64-reference`` adds a third path: the reference with its quantized-operand product summed in
float64 (``QuantLinear.reference_product_dtype``), an equally faithful reference whose distance
from the float32 one shows how much perplexity summation order alone can move.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from residq.eval.compare_run import parse_recipe_label
from residq.eval.perplexity import perplexity
from residq.eval.report import write_atomic
from residq.nn.kernel_path import _eligible
from residq.nn.quant_linear import QuantLinear
from residq.pipeline import load_any_model, quantize_with_calibration


@torch.no_grad()
def layer_agreement(model, layers, tokenizer, args, versus_fp64: bool = False) -> dict:
    """Per layer, ``|kernel - reference| / |reference|`` (Frobenius) of the output on the real
    inputs of one calibration window: where the two paths part, and by how much.
    ``versus_fp64``: compare the float32 reference with the float64 one instead of the kernels."""
    from residq.data.calibration import calibration_windows

    inputs = {}
    hooks = [m.register_forward_pre_hook(lambda mod, a: inputs.setdefault(mod, a[0].detach())) for m in layers]
    batch = calibration_windows(tokenizer, n_samples=1, seqlen=args.seqlen, seed=1, data_dir=args.data_dir).to("cuda")
    QuantLinear.use_kernels = False
    model(batch)
    for hook in hooks:
        hook.remove()
    errors = []
    for module in layers:
        x = inputs[module]
        module.use_kernels = False
        ref = module(x).float()
        if versus_fp64:
            module.reference_product_dtype = torch.float64
        else:
            module.use_kernels = True
        out = module(x).float()
        del module.use_kernels  # back to the class attributes
        if versus_fp64:
            del module.reference_product_dtype
        errors.append(float((out - ref).norm() / ref.norm().clamp_min(1e-30)))
    QuantLinear.use_kernels = True
    return {"max": max(errors), "mean": sum(errors) / len(errors), "n_layers": len(errors)}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--recipes", default="w4a16-nvfp4-gptq,w4a4-nvfp4-rtn")
    parser.add_argument("--seqlen", type=int, default=2048)
    parser.add_argument("--calib-samples", type=int, default=32)
    parser.add_argument("--max-windows", type=int, default=None)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--repeats", type=int, default=1, help="evaluate each path this many times")
    parser.add_argument("--fp64-reference", action="store_true",
                        help="also evaluate the reference with a float64 operand product")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    rows = []
    for name in args.recipes.split(","):
        model, tokenizer, _ = load_any_model(args.model)
        quantize_with_calibration(model, tokenizer, parse_recipe_label(name, []), n_samples=args.calib_samples,
                                  seqlen=args.seqlen, device="cuda", data_dir=args.data_dir, progress=False)
        model = model.to(device="cuda", dtype=torch.bfloat16)
        probe = torch.zeros(1, 8, device="cuda", dtype=torch.bfloat16)
        layers = [m for m in model.modules() if isinstance(m, QuantLinear)]
        fused = sum(1 for m in layers if _eligible(m, probe.new_zeros(1, m.in_features)) is not None)
        row = {"recipe": name, "layers": len(layers), "layers_on_kernels": fused, "seqlen": args.seqlen}
        # --repeats > 1 evaluates each path again (same process, same model): how far a path
        # varies run to run (cuBLAS may pick another fp32 summation order for the reference)
        for repeat in range(args.repeats):
            for use in (True, False):
                QuantLinear.use_kernels = use
                start = time.perf_counter()
                result = perplexity(model, tokenizer, "wikitext2", seqlen=args.seqlen,
                                    max_windows=args.max_windows, data_dir=args.data_dir, progress=False)
                torch.cuda.synchronize()
                key = ("kernels" if use else "reference") + (f"_repeat{repeat}" if repeat else "")
                row[key] = {"ppl": result.ppl, "seconds": time.perf_counter() - start, "windows": result.n_windows}
            if args.fp64_reference:
                QuantLinear.use_kernels, QuantLinear.reference_product_dtype = False, torch.float64
                result = perplexity(model, tokenizer, "wikitext2", seqlen=args.seqlen,
                                    max_windows=args.max_windows, data_dir=args.data_dir, progress=False)
                QuantLinear.reference_product_dtype = torch.float32
                row["reference_fp64" + (f"_repeat{repeat}" if repeat else "")] = {
                    "ppl": result.ppl, "windows": result.n_windows}
        QuantLinear.use_kernels = True
        row["layer_rel_error"] = layer_agreement(model, layers, tokenizer, args)
        if args.fp64_reference:
            row["layer_rel_error_fp32_vs_fp64_reference"] = layer_agreement(
                model, layers, tokenizer, args, versus_fp64=True)
        rows.append(row)
        print(json.dumps(row), flush=True)
        payload = {"rows": rows, "device": torch.cuda.get_device_name(0), "date": time.strftime("%Y-%m-%d")}
        write_atomic(args.out, json.dumps(payload, indent=1))  # after every recipe: no half-written JSON
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
