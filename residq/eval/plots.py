"""PNG plots of a comparison report (matplotlib, Agg backend: no display needed).

Every function takes the JSON document of ``residq.eval.report.report_document`` (so plots can
be redrawn from ``report.json``) and writes one PNG:

* ``perplexity_vs_bits.png``: perplexity against stored bits per weight, one point per recipe,
  the float model as a dashed reference line; one panel per perplexity dataset;
* ``layer_snr.png``: each linear's output SNR in dB on held-out windows (float weights on the
  float-path inputs vs. the quantized layer), against block index, one panel per linear role
  (q_proj, ..., down_proj), one line per recipe;
* ``activation_channels.png``: per-channel max |x| of one layer's input: the float model's, and
  what each recipe's activation quantizer receives (after its permutation and smoothing scales).

A recipe keeps the same colour in every plot.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after matplotlib.use: the backend must be chosen first
from matplotlib.ticker import MaxNLocator

FP_COLOR = "0.35"
DPI = 120


def recipe_colors(document: dict) -> dict[str, str]:
    """One tab10 colour per quantized recipe, in row order (FP is drawn in grey)."""
    labels = [row["recipe"] for row in document["rows"][1:]]
    palette = plt.get_cmap("tab10").colors
    return {label: matplotlib.colors.to_hex(palette[i % len(palette)]) for i, label in enumerate(labels)}


def _save(fig, path: Path) -> Path:
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_perplexity_vs_bits(document: dict, path: str | Path) -> Path | None:
    """Perplexity vs bits per weight (one panel per dataset); None when there is no perplexity."""
    rows = document["rows"]
    datasets = list(dict.fromkeys(name for row in rows for name in row.get("ppl", {})))
    if not datasets or len(rows) < 2:
        return None
    colors = recipe_colors(document)
    fp, quantized = rows[0], rows[1:]
    fig, axes = plt.subplots(1, len(datasets), figsize=(6.4 * len(datasets), 4.6), squeeze=False)
    for ax, dataset in zip(axes[0], datasets):
        values = [r["ppl"][dataset] for r in rows if dataset in r.get("ppl", {})]
        if dataset in fp.get("ppl", {}):
            ax.axhline(fp["ppl"][dataset], color=FP_COLOR, linestyle="--", linewidth=1.5,
                       label=f"{fp['recipe']} ({fp['weight_format']}): {fp['ppl'][dataset]:.2f}")
        for row in quantized:
            if dataset not in row.get("ppl", {}):
                continue
            marker = "o" if row["activation_bits"] >= 16 else "^"
            ratio = (f" ({row['ppl'][dataset] / fp['ppl'][dataset]:.2f}x FP)"
                     if dataset in fp.get("ppl", {}) else "")
            ax.scatter(row["weight_bits"], row["ppl"][dataset], s=90, marker=marker, zorder=3,
                       color=colors[row["recipe"]], edgecolor="black", linewidth=0.6,
                       label=f"{row['recipe']}: {row['ppl'][dataset]:.2f}{ratio}")
        if max(values) / min(values) > 3:
            ax.set_yscale("log")
        bits = [r["weight_bits"] for r in quantized]
        ax.set_xlim(min(bits) - 0.5, max(bits) + 0.5)
        ax.set_xlabel("stored bits per weight (scales and branches included)")
        ax.set_ylabel(f"{dataset} perplexity (lower is better)")
        ax.set_title(f"{dataset} perplexity vs. weight bits")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, title="o: 16-bit activations  ^: quantized", title_fontsize=8)
    fig.suptitle(f"{document['settings'].get('model')}: seqlen {document['settings'].get('seqlen')}", fontsize=10)
    return _save(fig, Path(path))


def _split_layer_name(name: str) -> tuple[int, str]:
    """``model.layers.3.self_attn.q_proj`` -> ``(3, "q_proj")``; the first integer is the block."""
    parts = name.split(".")
    index = next((i for i, p in enumerate(parts) if p.isdigit()), None)
    if index is None:
        return 0, parts[-1]
    return int(parts[index]), ".".join(parts[index + 1:]).split(".")[-1]


def plot_layer_snr(document: dict, path: str | Path) -> Path | None:
    """Output SNR (dB) per linear against block index, one panel per role; None without data."""
    layer_snr = {k: v for k, v in document.get("layer_snr", {}).items() if v}
    if not layer_snr:
        return None
    colors = recipe_colors(document)
    roles = list(dict.fromkeys(_split_layer_name(e["name"])[1] for v in layer_snr.values() for e in v))
    n_cols = min(4, len(roles))
    n_rows = math.ceil(len(roles) / n_cols)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(4.2 * n_cols, 3.2 * n_rows), squeeze=False,
                             sharex=True, sharey=True)
    for ax, role in zip(axes.flat, roles):
        for label, entries in layer_snr.items():
            points = sorted(_split_layer_name(e["name"])[0:1] + (e["snr_db"],) for e in entries
                            if _split_layer_name(e["name"])[1] == role)
            ax.plot([p[0] for p in points], [p[1] for p in points], marker=".", linewidth=1.4,
                    color=colors.get(label, "black"), label=label)
        ax.set_title(role)
        ax.grid(True, alpha=0.3)
    for index, ax in enumerate(axes.flat):
        if index >= len(roles):
            ax.axis("off")
        elif index + n_cols >= len(roles):  # lowest panel of its column
            ax.set_xlabel("block index")
            ax.tick_params(labelbottom=True)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in axes[:, 0]:
        ax.set_ylabel("output SNR (dB, higher is better)")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(4, len(labels)), bbox_to_anchor=(0.5, -0.02))
    fig.suptitle("Per-layer output SNR on held-out windows: 10 log10(|Y|² / |Y - Ŷ|²)", fontsize=12)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return _save(fig, Path(path))


def _outlier_ratio(values: list[float]) -> float:
    ordered = sorted(values)
    median = ordered[len(ordered) // 2]
    return ordered[-1] / median if median > 0 else float("inf")


def plot_activation_channels(document: dict, path: str | Path) -> Path | None:
    """Per-channel max |x| of the chosen layer: the float model's input and each recipe's
    quantizer input, one panel per recipe; None without data."""
    profiles = document.get("activations", {})
    fp_label = document["rows"][0]["recipe"]
    recipes = [r["recipe"] for r in document["rows"][1:] if r["recipe"] in profiles]
    if fp_label not in profiles or not recipes:
        return None
    colors = recipe_colors(document)
    before = profiles[fp_label]["before"]
    fig, axes = plt.subplots(len(recipes), 2, figsize=(13, 3.0 * len(recipes)), squeeze=False,
                             sharey=True, gridspec_kw={"width_ratios": (2.2, 1)})
    for (ax, ranked), label in zip(axes, recipes):
        after = profiles[label]["after"]
        curves = ((after, colors[label], f"{label} quantizer input"), (before, FP_COLOR, "float model input"))
        for values, color, name in curves:
            ax.plot(range(len(values)), values, linestyle="none", marker=".", markersize=2.5, color=color,
                    alpha=0.7, label=f"{name} (max/median {_outlier_ratio(values):.0f}x)")
            ranked.plot(range(1, len(values) + 1), sorted(values, reverse=True), color=color, linewidth=1.6,
                        label=name)
        for axis in (ax, ranked):
            axis.set_yscale("log")
            axis.grid(True, alpha=0.3)
        ranked.set_xscale("log")
        ax.set_ylabel("max |x| per channel")
        ax.set_title(f"{label}: per channel", fontsize=10)
        ranked.set_title(f"{label}: channels sorted by magnitude", fontsize=10)
        ax.legend(fontsize=8, loc="upper right", markerscale=4)
    axes[-1, 0].set_xlabel("input channel (after the recipe's permutation, if any)")
    axes[-1, 1].set_xlabel("channel rank (1 = largest)")
    layer = profiles[fp_label]["layer"]
    fig.suptitle(f"Input channels of {layer} on held-out windows: before vs. after each recipe's transforms",
                 fontsize=11)
    fig.tight_layout()
    return _save(fig, Path(path))


PLOTS = (
    ("perplexity_vs_bits.png", plot_perplexity_vs_bits),
    ("layer_snr.png", plot_layer_snr),
    ("activation_channels.png", plot_activation_channels),
)


def write_plots(out_dir: str | Path, document: dict) -> list[Path]:
    """Write every plot that has data into ``out_dir``; return the paths written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = [plot(document, out / name) for name, plot in PLOTS]
    return [p for p in written if p is not None]
