"""What benchmarks/kernels.py prints last (a table) and writes (the JSON, atomically)."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import kernel_timing
import torch

from residq.eval.report import write_atomic


def print_table(rows) -> None:
    print(
        f"{'kernel':<12}{'fmt':<7}{'variant':<8}{'s':>5}{'r':>4}{'M':>6}{'N':>7}{'K':>7}"
        f"{'ms':>10}{'x bf16':>8}{'TFLOP/s':>9}{'GB/s':>8}"
    )
    for r in rows:
        if r["kernel"] in ("bf16-cublas",):
            continue
        ratio = r.get("ratio_vs_bf16")
        copy_fraction = f"{r['frac_of_copy_bw']:.2f}c" if r.get("frac_of_copy_bw") else "-"
        ratio = f"{ratio:.2f}" if ratio else copy_fraction
        print(
            f"{r['kernel']:<12}{r['format']:<7}{r.get('variant', '') or '':<8}{r.get('s', 0) or 0:>5}"
            f"{r.get('rank', 0) or 0:>4}{r['M'] or 0:>6}{r['N'] or 0:>7}{r['K'] or 0:>7}"
            f"{r['ms']:>10.4f}{ratio:>8}{r['tflops'] or 0:>9.1f}{r['gbps']:>8.0f}"
        )


def write_json(bench, out: str) -> None:
    """The rows, sweeps and failures with the device, versions, date and method; written to a
    temporary file and renamed, so a run cut short never leaves a half-written JSON."""
    result = {"rows": bench.rows, "device": torch.cuda.get_device_name(),
              "date": datetime.date.today().isoformat(), "torch": torch.__version__,
              "triton": __import__("triton").__version__, "method": kernel_timing.method(),
              "sweeps": bench.sweeps, "failures": bench.failures}
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(result, indent=1))
