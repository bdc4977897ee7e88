"""Time ``gptq_quantize`` on SmolLM2-135M-sized layers, per format and device.

    python scripts/gptq_timing.py                      # cpu, and cuda when available
    python scripts/gptq_timing.py --devices cuda --out runs/gptq_timing_h100.json
    python scripts/gptq_timing.py --devices cpu --threads 1

Layers (M x K, SmolLM2-135M: hidden 576, MLP 1536): q/o_proj 576x576, gate/up_proj 1536x576,
down_proj 576x1536. ``W`` is standard normal float32; ``H = XᵀX`` (float64) from 2048 standard
normal inputs. Each cell is the median of ``--repeats`` calls after one warm-up call, in seconds
per layer, and the sweep rate in columns (K) per second. Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import time
from pathlib import Path

import torch

from residq.formats.spec import FormatSpec
from residq.methods.gptq import gptq_quantize

SHAPES = {"576x576": (576, 576), "1536x576": (1536, 576), "576x1536": (576, 1536)}
SPECS = {
    "nvfp4": FormatSpec(kind="nvfp4"),
    "int4-g128": FormatSpec(kind="int", bits=4, granularity="group", group_size=128),
    "mxfp4": FormatSpec(kind="mxfp4"),
}


def random_problem(m: int, k: int, device: torch.device, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``W`` float32 (m, k) and ``H = XᵀX`` float64 (k, k) from 2048 random inputs."""
    g = torch.Generator(device="cpu").manual_seed(seed)
    W = torch.randn(m, k, generator=g)
    X = torch.randn(2048, k, generator=g, dtype=torch.float64)
    return W.to(device), (X.T @ X).to(device)


def seconds_per_call(fn, device: torch.device, repeats: int) -> float:
    """Median wall time (s) of ``repeats`` calls of ``fn`` after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_devices = "cpu,cuda" if torch.cuda.is_available() else "cpu"
    parser.add_argument("--devices", default=default_devices, help="comma list of cpu | cuda")
    parser.add_argument("--specs", default=",".join(SPECS), help=f"comma list of {list(SPECS)}")
    parser.add_argument("--shapes", default=",".join(SHAPES), help=f"comma list of {list(SHAPES)}")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--act-order", action="store_true", help="time with act_order=True")
    parser.add_argument("--threads", type=int, default=0,
                        help="CPU threads for torch (0: torch's default); 1 is steadier on a busy machine")
    parser.add_argument("--out", default="runs/gptq_timing.json")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    print(f"{'device':8s} {'format':10s} {'layer':10s} {'s/layer':>9s} {'columns/s':>10s}   "
          f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    for device_name in [d for d in args.devices.split(",") if d]:
        device = torch.device(device_name)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise SystemExit("cuda asked for but not available")
        for spec_name in [s for s in args.specs.split(",") if s]:
            for shape_name in [s for s in args.shapes.split(",") if s]:
                m, k = SHAPES[shape_name]
                W, H = random_problem(m, k, device)
                call = functools.partial(gptq_quantize, W, H, SPECS[spec_name], act_order=args.act_order)
                seconds = seconds_per_call(call, device, args.repeats)
                row = {"device": device_name, "format": spec_name, "layer": shape_name, "m": m, "k": k,
                       "seconds": seconds, "columns_per_s": k / seconds}
                rows.append(row)
                print(f"{device_name:8s} {spec_name:10s} {shape_name:10s} {seconds:9.3f} {k / seconds:10.0f}",
                      flush=True)
    names = {d: torch.cuda.get_device_name(0) if d == "cuda" else "cpu" for d in {r["device"] for r in rows}}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"devices": names, "threads": torch.get_num_threads(), "torch": torch.__version__,
                               "act_order": args.act_order, "rows": rows}, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
