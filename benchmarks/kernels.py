"""Time residq's GPU kernels against cuBLAS bf16 on the Llama-3-8B linear shapes.

Usage (on a CUDA machine)::

    python benchmarks/kernels.py                      # the bars' cases, writes results/kernels-h100.json
    python benchmarks/kernels.py --only w4a16 --ms 1 16
    python benchmarks/kernels.py --jobs 8             # compile kernels in 8 processes first

Method (docs/GPU.md): every kernel is checked against its torch reference on the benchmark's
own random inputs before it is timed; times are medians of CUDA-event measurements of a CUDA
graph that replays ``REPS`` calls (``kernel_timing.py``), rotating through enough copies of the inputs that they
cannot stay in L2 (weights are read from HBM as in real decoding); cuBLAS bf16 runs in the same
process on the same shapes. ``ratio_vs_bf16`` = bf16 time / kernel time. ``gbps`` counts the
bytes a kernel must move at least (inputs read once, outputs written once).
"""

from __future__ import annotations

import argparse
import datetime
import math
import subprocess
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import kernel_configs  # beside this script (sys.path[0] when run)
import kernel_timing
from kernel_report import print_table, write_json
from kernel_timing import nbytes, rel_err, sets_for, time_ms

from residq.kernels import act_quant, decode, dispatch, w4a4, w4a16, w8a8
from residq.kernels.block_formats import block_size, quantize_blocks

SHAPES = [(4096, 4096), (14336, 4096), (4096, 14336), (6144, 4096)]  # (N, K)
MS = [1, 16, 128, 2048]
# token counts per kernel family when --ms is not given: those the bars of issue 5 name
DEFAULT_MS = {"w4a16": [1, 16], "w4a4": [1, 2048], "w8a8": [2048], "act": [2048]}  # W4A4 M=1: decode
FORMATS = ["nvfp4", "mxfp4", "int4"]
ARC_FRACTION, LOWRANK_RANK = 0.08, 64


class Bench:
    """Holds inputs, results and the bf16 baselines of one run."""

    def __init__(self, args):
        self.args = args
        self.rows: list[dict] = []
        self.sweeps: list[dict] = []
        self.failures: list[str] = []
        self.bf16: dict[tuple[int, int, int], float] = {}
        self.gen = torch.Generator(device="cuda").manual_seed(0)

    def randn(self, *shape, scale=1.0, dtype=torch.bfloat16):
        return (torch.randn(*shape, device="cuda", generator=self.gen) * scale).to(dtype)

    def check(self, name: str, out, ref, tol: float) -> bool:
        err = rel_err(out, ref)
        ok = err <= tol
        if not ok:
            self.failures.append(f"{name}: rel err {err:.3e} > {tol}")
            print(f"  CHECK FAILED {name}: rel err {err:.3e}", flush=True)
        return ok

    def add(self, kernel, fmt, m, n, k, ms, moved_bytes, **extra):
        base = self.bf16.get((m, n, k))
        row = {"kernel": kernel, "format": fmt, "M": m, "N": n, "K": k, "ms": round(ms, 5),
               "ratio_vs_bf16": round(base / ms, 3) if base else None,
               "tflops": round(2 * m * n * k / ms / 1e9, 2), "gbps": round(moved_bytes / ms / 1e6, 1)}
        row.update(extra)
        self.rows.append(row)
        return row

    def sweep(self, **record) -> None:
        """Keep every timed configuration (the JSON's ``sweeps``)."""
        self.sweeps.append(record)

    # ------------------------------------------------------------------ baselines
    def copy_bandwidth(self) -> float:
        src = torch.empty(2**30 // 2, dtype=torch.bfloat16, device="cuda").normal_()
        dst = torch.empty_like(src)
        ms = time_ms(lambda i: lambda: dst.copy_(src), 1)
        gbps = 2 * nbytes(src) / ms / 1e6
        self.rows.append({"kernel": "copy", "format": "bf16", "M": None, "N": None, "K": None,
                          "ms": round(ms, 4), "ratio_vs_bf16": None, "tflops": None,
                          "gbps": round(gbps, 1)})
        return gbps

    def baseline(self, m, n, k) -> float:
        sets = sets_for(2 * n * k)
        ws = [self.randn(n, k) for _ in range(sets)]
        x = self.randn(m, k)
        ms = time_ms(lambda i: lambda: torch.matmul(x, ws[i].T), sets)
        self.bf16[(m, n, k)] = ms
        self.add("bf16-cublas", "bf16", m, n, k, ms, 2 * (n * k + m * k + m * n))
        return ms

    # ------------------------------------------------------------------ W4A16
    def run_w4a16(self, fmt, m, n, k):
        w = self.randn(n, k, scale=0.02)
        packed0 = {key: v.contiguous() for key, v in quantize_blocks(w, fmt).items()}
        sets = sets_for(nbytes(packed0))
        packs = [packed0] + [{key: v.clone() for key, v in packed0.items()} for _ in range(sets - 1)]
        x = self.randn(m, k)
        ref = w4a16.reference(x, packed0, fmt)
        best = None
        for cfg in kernel_configs.w4a16_configs(m, fmt, n, k, self.args.sweep):
            full = w4a16.resolve_config(x, packed0, fmt, cfg)
            name = f"w4a16 {fmt} M={m} N={n} K={k} {full}"
            try:
                out = w4a16.launch(x, packed0, fmt, config=full)
            except Exception as exc:  # noqa: BLE001 - a config that does not compile is skipped
                self.failures.append(f"{name}: {type(exc).__name__}: {str(exc)[:200]}")
                continue
            if not self.check(name, out, ref, 2e-3):
                continue
            ms = time_ms(lambda i, full=full: lambda: w4a16.launch(x, packs[i], fmt, config=full), sets)
            self.sweep(kernel="w4a16", format=fmt, M=m, N=n, K=k, config=full, ms=ms)
            if best is None or ms < best[0]:
                best = (ms, full)
        if best:
            moved = nbytes(packed0) + 2 * (m * k + m * n)
            self.add("w4a16", fmt, m, n, k, best[0], moved, config=best[1])

    # ------------------------------------------------------------------ W4A4
    def run_w4a4(self, fmt, m, n, k, s=0, rank=0, cfg_choice=None):
        w = self.randn(n, k, scale=0.02)
        x = self.randn(m, k)
        x[:, k - max(s, 16) :] *= 20  # outlier channels last, as after ARCQuant's reorder
        a = self.randn(k, rank, scale=0.05) if rank else None
        b = self.randn(n, rank, scale=0.05) if rank else None
        wq0 = w4a4.augment_weight(quantize_blocks(w, fmt), fmt, s)
        sets = sets_for(nbytes(wq0))
        wqs = [wq0] + [{key: v.clone() for key, v in wq0.items()} for _ in range(sets - 1)]
        xq = act_quant.launch(x, fmt, s=s, lowrank_a=a)
        xa = xq.get("lowrank_xa")
        ref = w4a4.reference(xq, wq0, fmt, s=s, lowrank_xa=xa, lowrank_b=b)
        best = None
        cfgs = [cfg_choice] if cfg_choice else kernel_configs.w4a4_configs(m, self.args.sweep)
        for cfg in cfgs:
            name = f"w4a4 {fmt} M={m} N={n} K={k} s={s} r={rank} {cfg}"
            try:
                out = w4a4.launch(xq, wq0, fmt, s=s, lowrank_xa=xa, lowrank_b=b, config=cfg)
            except Exception as exc:  # noqa: BLE001 - a config that does not compile is skipped
                self.failures.append(f"{name}: {type(exc).__name__}: {str(exc)[:200]}")
                continue
            if not self.check(name, out, ref, 2e-3):
                continue
            ms = time_ms(lambda i, cfg=cfg: lambda: w4a4.launch(
                xq, wqs[i], fmt, s=s, lowrank_xa=xa, lowrank_b=b, config=cfg), sets)
            self.sweep(kernel="w4a4", format=fmt, M=m, N=n, K=k, s=s, rank=rank, config=cfg, ms=ms)
            if best is None or ms < best[0]:
                best = (ms, cfg)
        if best is None:
            return None
        moved = nbytes(wq0) + nbytes(xq) + 2 * m * n
        self.add("w4a4", fmt, m, n, k, best[0], moved, s=s, rank=rank, variant="gemm", config=best[1])
        if best[1].get("path") == "decoded" and not s and not rank:  # the decode pass alone, on the weight
            dec = time_ms(lambda i: lambda: decode.decode(wqs[i], fmt), sets)
            row = self.add("fp4-decode", fmt, n, k, k, dec, nbytes(wq0["codes"], wq0["scale"]) + 2 * n * k)
            row["ratio_vs_bf16"] = None
            row["tflops"] = None
        # the whole linear as QuantLinear runs it (dispatch.w4a4_linear, its default config):
        # activation quantization (dynamic scale, residual) + X A (cuBLAS) + GEMM
        lin = time_ms(lambda i: lambda: dispatch.w4a4_linear(x, wqs[i], fmt, s=s, lowrank=(a, b) if rank else None),
                      sets)
        self.add("w4a4", fmt, m, n, k, lin, moved + 2 * m * k, s=s, rank=rank, variant="linear",
                 config=best[1])
        return best[1]

    # ------------------------------------------------------------------ W8A8
    def run_w8a8(self, kind, m, n, k):
        w = self.randn(n, k, scale=0.02)
        x = self.randn(m, k)
        wc0, ws0 = w8a8.quantize_weight(w, kind)
        sets = sets_for(nbytes(wc0))
        wcs = [wc0] + [wc0.clone() for _ in range(sets - 1)]
        ref = w8a8.reference(x, wc0, ws0, kind)
        xc, xs = w8a8.quantize_rows(x, kind)
        for fast in [False, True] if kind == "fp8" else [False]:
            name = f"w8a8 {kind} M={m} N={n} K={k} fast={fast}"
            try:
                out = w8a8.launch(x, wc0, ws0, kind, fast)
            except Exception as exc:  # noqa: BLE001 - e.g. _scaled_mm without row-wise scaling
                self.failures.append(f"{name}: {type(exc).__name__}: {str(exc)[:200]}")
                continue
            if not self.check(name, out, ref, 1e-2):
                continue
            gemm = time_ms(lambda i, fast=fast: lambda: w8a8.scaled_mm(
                xc, xs, wcs[i], ws0, kind, torch.bfloat16, fast), sets)
            moved = nbytes(wc0, ws0, xc, xs) + 2 * m * n
            self.add(f"w8a8-{kind}", kind, m, n, k, gemm, moved, variant="gemm", fast_accum=fast)
            lin = time_ms(lambda i, fast=fast: lambda: w8a8.launch(x, wcs[i], ws0, kind, fast), sets)
            self.add(f"w8a8-{kind}", kind, m, n, k, lin, moved + 2 * m * k, variant="linear", fast_accum=fast)

    # ------------------------------------------------------------------ activation quantizer
    def run_act_quant(self, fmt, m, k, copy_gbps, s=0, rank=0, static=False, perm=False):
        sets = sets_for(2 * m * k)
        xs = [self.randn(m, k) for _ in range(sets)]
        p = torch.randperm(k, device="cuda") if perm else None
        g = torch.tensor(0.01, device="cuda") if static else None
        a = self.randn(k, rank, scale=0.05) if rank else None
        plain = not (s or rank or perm)
        tiles = kernel_configs.act_quant_tiles(fmt, self.args.sweep and plain and m >= 1024, s, bool(rank))
        if getattr(self.args, "warm", False):  # compile only: skip the (slow) CPU reference
            for tile in tiles:
                act_quant.launch(xs[0], fmt, perm=p, s=s, global_scale=g, lowrank_a=a, **tile)
            return
        cpu = {key: None if v is None else v.cpu() for key, v in {"p": p, "g": g, "a": a}.items()}
        # the reference runs on the CPU: CUDA torch divides by Python floats through reciprocals
        ref = act_quant.reference(xs[0].cpu(), fmt, perm=cpu["p"], s=s, global_scale=cpu["g"],
                                  lowrank_a=cpu["a"])
        name = f"act-quant {fmt} M={m} K={k} s={s} r={rank} static={static} perm={perm}"
        best = None
        for tile in tiles:
            launched = act_quant.launch(xs[0], fmt, perm=p, s=s, global_scale=g, lowrank_a=a, **tile)
            out = {key: v.cpu() for key, v in launched.items()}
            if not all(torch.equal(out[key], ref[key]) for key in ref if key != "lowrank_xa"):
                self.failures.append(f"{name} {tile}: codes/scales differ from the reference")
                print(f"  CHECK FAILED {name} {tile}", flush=True)
                continue
            if rank and not self.check(name + " xa", out["lowrank_xa"], ref["lowrank_xa"], 1e-2):
                continue
            ms = time_ms(lambda i, t=tile: lambda: act_quant.launch(
                xs[i], fmt, perm=p, s=s, global_scale=g, lowrank_a=a, **t), sets)
            self.sweep(kernel="act-quant", format=fmt, M=m, K=k, s=s, rank=rank, static=static,
                       perm=perm, config=tile, ms=ms)
            if best is None or ms < best[0]:
                best = (ms, tile, out)
        if best is None:
            return
        ms, tile, out = best
        moved = nbytes(xs[0]) + sum(nbytes(v) for key, v in out.items() if key != "lowrank_xa")
        row = self.add("act-quant", fmt, m, k, k, ms, moved, s=s, rank=rank, static_scale=static,
                       perm=perm, config=tile)
        row["ratio_vs_bf16"] = None
        row["tflops"] = None
        row["frac_of_copy_bw"] = round(row["gbps"] / copy_gbps, 3)


def arc_s(k: int, block: int = 16) -> int:
    """ARCQuant residual channels: 8% of K rounded up to a multiple of the format's block."""
    return block * math.ceil(ARC_FRACTION * k / block)


def work_units(args, shapes, ms):
    """(name, callable(bench)) in run order; a unit is the smallest piece a warm-up shard takes."""
    family_ms = {family: (ms or default) for family, default in DEFAULT_MS.items()}
    units = []
    copy_gbps = {}
    units.append(("copy", lambda b: copy_gbps.setdefault("v", b.copy_bandwidth())))
    gemm_ms = sorted({m for family in ("w4a16", "w4a4", "w8a8") if family in args.only
                      for m in family_ms[family]})
    for n, k in shapes:
        for m in gemm_ms:
            units.append((f"bf16 {m} {n} {k}", lambda b, m=m, n=n, k=k: b.baseline(m, n, k)))
    if "w4a16" in args.only:
        for fmt in FORMATS:
            for n, k in shapes:
                for m in family_ms["w4a16"]:
                    units.append((f"w4a16 {fmt}", lambda b, f=fmt, m=m, n=n, k=k: b.run_w4a16(f, m, n, k)))
    if "w4a4" in args.only:
        for n, k in shapes:
            for m in family_ms["w4a4"]:

                def w4a4_unit(b, m=m, n=n, k=k):
                    cfg = b.run_w4a4("nvfp4", m, n, k)
                    if cfg:
                        b.run_w4a4("nvfp4", m, n, k, s=arc_s(k), cfg_choice=cfg)
                        b.run_w4a4("nvfp4", m, n, k, rank=LOWRANK_RANK, cfg_choice=cfg)
                        if m == max(family_ms["w4a4"]):
                            b.run_w4a4("mxfp4", m, n, k, cfg_choice=cfg)
                            b.run_w4a4("int4", m, n, k, cfg_choice=w4a4.default_config(m, n, "int4"))

                units.append((f"w4a4 {m} {n} {k}", w4a4_unit))
    if "w8a8" in args.only:
        for kind in ("fp8", "int8"):
            for n, k in shapes:
                for m in family_ms["w8a8"]:
                    units.append((f"w8a8 {kind}", lambda b, kd=kind, m=m, n=n, k=k: b.run_w8a8(kd, m, n, k)))
    if "act" in args.only:
        for fmt in FORMATS:
            for k in sorted({k for _, k in shapes}):
                for m in family_ms["act"]:
                    units.append((f"act {fmt}", lambda b, f=fmt, m=m, k=k: b.run_act_quant(
                        f, m, k, copy_gbps["v"])))
                m = max(family_ms["act"])
                residual = arc_s(k, block_size(fmt))
                extras = ({"static": True}, {"s": residual}, {"perm": True}, {"perm": True, "s": residual},
                          {"rank": LOWRANK_RANK})  # perm + s: what an ARCQuant layer runs
                for extra in extras:
                    units.append((f"act {fmt} {extra}", lambda b, f=fmt, m=m, k=k, e=extra: b.run_act_quant(
                        f, m, k, copy_gbps["v"], **e)))
    return units


def warm_up_in_parallel(args) -> None:
    """Compile every kernel variant in ``args.jobs`` processes (Triton's disk cache keeps them)."""
    cmd = [sys.executable, __file__, "--warm", "--of", str(args.jobs), "--only", *args.only]
    cmd += (["--ms", *map(str, args.ms)] if args.ms else []) + (["--sweep"] if args.sweep else [])
    procs = [subprocess.Popen(cmd + ["--shard", str(i)]) for i in range(args.jobs)]
    for proc in procs:
        proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", default=["w4a16", "w4a4", "w8a8", "act"])
    parser.add_argument("--ms", nargs="+", type=int, default=None,
                        help=f"token counts for every family (default: {DEFAULT_MS}; all: {MS})")
    parser.add_argument("--sweep", action="store_true", help="try several tile configs per case")
    parser.add_argument("--jobs", type=int, default=0, help="compile in this many processes first")
    parser.add_argument("--warm-only", action="store_true", help="only compile (with --jobs)")
    parser.add_argument("--warm", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--shard", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--of", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "kernels-h100.json"))
    args = parser.parse_args()
    if args.jobs and not args.warm:
        warm_up_in_parallel(args)
    if args.warm_only:
        return
    shapes = SHAPES
    if args.warm:  # same problems (same kernel variants), one call each, no rotation
        kernel_timing.single_call()
    bench = Bench(args)
    for index, (name, unit) in enumerate(work_units(args, shapes, args.ms)):
        if args.warm and index % args.of != args.shard and name != "copy":
            continue
        if not args.warm:
            print(f"[{datetime.datetime.now():%H:%M:%S}] {name}", flush=True)
        try:
            unit(bench)
        except Exception as exc:  # noqa: BLE001 - one broken case must not lose the others
            bench.failures.append(f"{name}: {type(exc).__name__}: {str(exc)[:300]}")
            print(f"  FAILED {name}: {type(exc).__name__}: {str(exc)[:300]}", flush=True)
        if not args.warm:
            write_json(bench, args.out)  # after every unit: a run cut short keeps what it measured
    if args.warm:
        return
    print_table(bench.rows)
    print(f"failures: {len(bench.failures)}")
    for failure in bench.failures[:20]:
        print("  ", failure)


if __name__ == "__main__":
    main()
