"""Time ARHQ's closed form (eigendecomposition of G + SVD of W G^{1/2}) on wide layers.

    python scripts/arhq_eigen_timing.py --device cpu --out runs/arhq_eigen_timing.json
    python scripts/arhq_eigen_timing.py --device cuda --out runs/arhq_eigen_timing_h100.json

Shapes (Llama-3-8B-like): a 4096-wide input (q_proj, 4096 x 4096) and a 14336-wide input
(down_proj, 4096 x 14336). G is a random PSD matrix with a decaying spectrum (float64, like
the driver's statistics). Each row reports seconds for: the K x K eigendecomposition (with
the floored square roots), the thin SVD of the M x K product, and the whole ``arhq_factors``
call; the median of ``--repeats`` runs (after one warm-up on CUDA). ``--steps`` picks which.
For the 14336-wide shape ``arhq_factors`` takes the Gram form (``lowrank.GRAM_FORM_MIN_K``): its
total is then not the sum of the two columns before it, which time the square-root form.
Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from residq.methods.lowrank import arhq_factors, floored_sqrt_pair

STEPS = ("eigh_s", "svd_s", "arhq_factors_s")
SHAPES = {"4096-wide (q_proj 4096x4096)": (4096, 4096), "14336-wide (down_proj 4096x14336)": (4096, 14336)}


def random_psd(k: int, device: torch.device, seed: int = 0) -> torch.Tensor:
    """(k, k) float64 PSD with eigenvalues decaying like 1/i (a near-singular G)."""
    g = torch.Generator(device="cpu").manual_seed(seed)
    # the QR runs on the target device: a 14336-wide float64 QR takes minutes on a host CPU
    q, _ = torch.linalg.qr(torch.randn(k, k, generator=g, dtype=torch.float64).to(device))
    eig = 1.0 / torch.arange(1, k + 1, dtype=torch.float64, device=device)
    return (q * eig) @ q.T


def _timed(fn, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def time_shape(m: int, k: int, rank: int, repeats: int, device: torch.device,
               wanted: tuple[str, ...] = STEPS) -> dict:
    G = random_psd(k, device)
    W = torch.randn(m, k, dtype=torch.float32, device=device)
    product = W.double() @ floored_sqrt_pair(G)[0] if "svd_s" in wanted else None
    steps = {
        "eigh_s": lambda: floored_sqrt_pair(G),
        "svd_s": lambda: torch.linalg.svd(product, full_matrices=False),
        "arhq_factors_s": lambda: arhq_factors(W, G, rank),
    }
    row = {"m": m, "k": k, "rank": rank}
    for key, fn in steps.items():
        if key not in wanted:
            continue
        if device.type == "cuda":
            fn()  # warm-up (CUDA libraries, allocator); the CPU has none worth a second 14336-wide run
        row[key] = statistics.median(_timed(fn, device) for _ in range(repeats))
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="cpu | cuda")
    parser.add_argument("--rank", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--shapes", default=",".join(SHAPES), help="comma list of shape names (default: both)")
    parser.add_argument("--steps", default=",".join(STEPS),
                        help="comma list of eigh_s, svd_s, arhq_factors_s (default: all; a skipped one prints -)")
    parser.add_argument("--out", default="runs/arhq_eigen_timing.json")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda asked for but CUDA is not available")
    name = torch.cuda.get_device_name(0) if device.type == "cuda" else (platform.processor() or "cpu")
    rows = []
    print(f"{'layer':36s} {'eigh (s)':>10s} {'svd (s)':>10s} {'total (s)':>10s}   device: {name}, "
          f"threads {torch.get_num_threads()}")
    wanted = tuple(s for s in args.steps.split(",") if s)
    unknown = set(wanted) - set(STEPS)
    if unknown:
        raise SystemExit(f"unknown --steps {sorted(unknown)}; expected some of {list(STEPS)}")
    for label in [s for s in args.shapes.split(",") if s]:
        if label not in SHAPES:
            raise SystemExit(f"unknown shape {label!r}; expected one of {list(SHAPES)}")
        row = {"layer": label, **time_shape(*SHAPES[label], args.rank, args.repeats, device, wanted)}
        rows.append(row)
        cells = " ".join(f"{row[s]:10.2f}" if s in row else f"{'-':>10s}" for s in STEPS)
        print(f"{label:36s} {cells}", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"device": name, "threads": torch.get_num_threads(), "torch": torch.__version__,
                               "rows": rows}, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
