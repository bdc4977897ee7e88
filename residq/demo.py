"""``residq demo``: quantize the default model with a few recipes and print one table."""

from __future__ import annotations

import time

from residq.api import model_size_bytes, weight_bits
from residq.pipeline import evaluate_model, load_any_model, quantize_with_calibration
from residq.presets import PRESETS
from residq.recipe import load_recipe

DEMO_RECIPES = ("w4a16-nvfp4-rtn", "w4a16-nvfp4-gptq", "w4a4-nvfp4-rtn")
# The demo's W4A4 row, by preference: the strongest preset that quantizes in minutes on a 2-core
# CPU. Bar perplexities on smollm2-135m (docs/RESULTS.md, seqlen 512, FP 29.19, CPU rows): the
# flagship 31.90 and ARHQ 33.52 are better than SVDQuant (34.61 on the H100) but took 1330 s and
# 1000 s to quantize on that CPU, so the demo shows SVDQuant and points to them.
DEMO_W4A4_PREFERENCE = ("w4a4-nvfp4-svdquant", "w4a4-nvfp4-arhq", "w4a4-nvfp4-flagship", "w4a4-nvfp4-arcquant")


def default_recipes() -> list[str]:
    """The demo set plus the first W4A4 preset of ``DEMO_W4A4_PREFERENCE`` this build has."""
    strongest = next((name for name in DEMO_W4A4_PREFERENCE if name in PRESETS), None)
    return list(DEMO_RECIPES) + ([strongest] if strongest else [])


def format_table(rows: list[dict]) -> str:
    """Markdown table of demo rows."""
    header = "| model | w bits | act | size MB | wikitext2 ppl | x FP | quant s |"
    lines = [header, "|---|---|---|---|---|---|---|"]
    fp = rows[0]["ppl"]
    for row in rows:
        lines.append(
            f"| {row['name']} | {row['bits']:.2f} | {row['act']} | {row['size_mb']:.1f} | "
            f"{row['ppl']:.3f} | {row['ppl'] / fp:.3f} | {row['seconds']:.1f} |"
        )
    return "\n".join(lines)


def run_demo(model_name: str, recipes: list[str] | None = None, calib_samples: int = 16, seqlen: int = 512,
             max_windows: int = 20, device: str = "auto", data_dir=None, progress: bool = True) -> list[dict]:
    """Quantize ``model_name`` with each recipe, evaluate WikiText-2 perplexity, print a table."""
    recipes = recipes or default_recipes()
    start = time.perf_counter()
    model, tokenizer, _ = load_any_model(model_name)
    fp = evaluate_model(model, tokenizer, ["wikitext2"], seqlen=seqlen, max_windows=max_windows,
                        device=device, data_dir=data_dir, progress=progress)
    rows = [{"name": "FP (dequantized GGUF)", "bits": 32.0, "act": "fp32",
             "size_mb": model_size_bytes(model)["total"] / 1e6, "ppl": fp["ppl"]["wikitext2"], "seconds": 0.0}]
    for name in recipes:
        recipe = load_recipe(name)
        model, tokenizer, _ = load_any_model(model_name)
        result = quantize_with_calibration(model, tokenizer, recipe, n_samples=calib_samples, seqlen=seqlen,
                                           device=device, data_dir=data_dir, progress=progress)
        scores = evaluate_model(model, tokenizer, ["wikitext2"], seqlen=seqlen, max_windows=max_windows,
                                device=device, data_dir=data_dir, progress=progress)
        rows.append({"name": name, "bits": weight_bits(model),
                     "act": recipe.activation.describe() if recipe.activation else "16-bit",
                     "size_mb": model_size_bytes(model)["total"] / 1e6,
                     "ppl": scores["ppl"]["wikitext2"], "seconds": result.seconds})
    print()
    print(f"residq demo: {model_name}, WikiText-2 test, seqlen {seqlen}, first {max_windows} windows, "
          f"{calib_samples} calibration windows")
    print(format_table(rows))
    print(f"total {time.perf_counter() - start:.0f} s")
    slower = [n for n in ("w4a4-nvfp4-flagship", "w4a4-nvfp4-arhq") if n in PRESETS and n not in recipes]
    if slower:
        print(f"More accurate W4A4 presets (slower to quantize on a CPU): {', '.join(slower)}; "
              f"e.g. residq demo --recipes {slower[0]}")
    return rows
