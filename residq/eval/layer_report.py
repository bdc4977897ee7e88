"""The per-layer report: output SNR, rank, energy kept and branch overhead of every linear.

``build_layer_report(records, recipe)`` turns the calibration driver's ``LayerRecord`` list into a
JSON-able dict; ``write_layer_report`` writes ``layer_report.json`` and ``layer_snr.png`` (SNR
per layer, with the rank on a second axis). The SNR is the driver's ``info["snr_db"]``:
``10 log10(‖Y‖² / ‖Y - Ŷ‖²)`` of the float layer vs. the quantized one on held-out
calibration windows (inputs from the float path of already quantized earlier blocks).
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from residq.methods.lowrank import branch_overhead
from residq.recipe import Recipe

REPORT_JSON = "layer_report.json"
REPORT_PNG = "layer_snr.png"


def layer_row(record) -> dict:
    """One layer's numbers: name, shape, snr_db, rank, energy_kept, params_pct, flops_pct, seconds."""
    info = record.info
    rank = int(info.get("rank", 0))
    overhead = branch_overhead(record.out_features, record.in_features, rank)
    return {
        "name": record.name,
        "in_features": record.in_features,
        "out_features": record.out_features,
        "snr_db": info.get("snr_db"),
        "rank": rank,
        "energy_kept": info.get("energy_kept"),
        "params_pct": overhead["params_pct"],
        "flops_pct": overhead["flops_pct"],
        "seconds": record.seconds,
    }


def build_layer_report(records: list, recipe: Recipe) -> dict:
    """``{"recipe", "summary", "layers": [row, ...]}``; summary: mean SNR, whole-model overheads."""
    rows = [layer_row(r) for r in records]
    snrs = [row["snr_db"] for row in rows if row["snr_db"] is not None]
    params = sum(row["in_features"] * row["out_features"] for row in rows)
    branch = sum(row["rank"] * (row["in_features"] + row["out_features"]) for row in rows)
    summary = {
        "layers": len(rows),
        "mean_snr_db": statistics.mean(snrs) if snrs else None,
        "min_snr_db": min(snrs) if snrs else None,
        "mean_rank": statistics.mean(row["rank"] for row in rows) if rows else 0.0,
        "params_pct": 100.0 * branch / params if params else 0.0,
        "flops_pct": 100.0 * branch / params if params else 0.0,
    }
    return {"recipe": recipe.to_dict(), "summary": summary, "layers": rows}


def plot_layer_report(report: dict, path: str | Path) -> Path:
    """PNG: SNR (dB) per layer, rank per layer on the right axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["layers"]
    xs = list(range(len(rows)))
    fig, ax = plt.subplots(figsize=(max(8.0, 0.08 * len(rows)), 4.0))
    ax.plot(xs, [r["snr_db"] if r["snr_db"] is not None else float("nan") for r in rows],
            marker=".", color="tab:blue", label="output SNR (dB)")
    ax.set_xlabel("linear layer (execution order)")
    ax.set_ylabel("output SNR (dB)", color="tab:blue")
    mean = report["summary"]["mean_snr_db"]
    title = report["recipe"].get("name", "")
    ax.set_title(f"{title}: mean SNR {mean:.2f} dB" if mean is not None else title)
    if any(r["rank"] for r in rows):
        ranks = ax.twinx()
        ranks.step(xs, [r["rank"] for r in rows], where="mid", color="tab:orange", alpha=0.6)
        ranks.set_ylabel("rank", color="tab:orange")
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def write_layer_report(records: list, recipe: Recipe, out_dir: str | Path) -> dict:
    """Write ``layer_report.json`` and ``layer_snr.png`` into ``out_dir`` (created); return the report."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report = build_layer_report(records, recipe)
    (out / REPORT_JSON).write_text(json.dumps(report, indent=1))
    plot_layer_report(report, out / REPORT_PNG)
    return report
