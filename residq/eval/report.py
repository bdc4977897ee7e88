"""The comparison report: ``DIR/report.md`` (one table) and ``DIR/report.json`` (the same rows).

A row (one per model, the float model first) is a dict with these keys:

* ``recipe`` (label), ``description``;
* ``weight_format``, ``weight_bits``: stored bits per weight of the quantized linears, block
  scales and low-rank branches included (the float dtype's bits for the FP row);
* ``activation_format``, ``activation_bits``: bits per activation element the quantizer
  produces, scales and ARCQuant's extra channels included (the float dtype's when unquantized);
* ``checkpoint_bytes`` (every file of the saved checkpoint), ``weights_bytes`` (its safetensors);
* ``peak_memory_bytes``: peak memory while quantizing (None for FP), ``peak_memory_device``;
* ``ppl``: ``{dataset: perplexity}``; ``tasks``: ``{task: {"acc":, "acc_norm":, "n":, ...}}``;
* ``quant_seconds`` (None for FP), ``eval_seconds``.

Both files are written atomically: a temporary file in the same directory, then a rename.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from pathlib import Path

MISSING = "—"
MB = 1e6


@dataclasses.dataclass(frozen=True)
class Column:
    """One column of the table: its header and how to read and print a row's value."""

    header: str
    value: Callable[[dict], float | str | None]
    fmt: str = "{}"

    def cell(self, row: dict) -> str:
        value = self.value(row)
        return MISSING if value is None else self.fmt.format(value)


def _scaled(key: str, unit: float) -> Callable[[dict], float | None]:
    return lambda row: None if row.get(key) is None else row[key] / unit


def _task_metrics(rows: list[dict]) -> list[tuple[str, str]]:
    """(task, metric) pairs in first-seen order: every scalar score except the row count ``n``."""
    pairs: list[tuple[str, str]] = []
    for row in rows:
        for task, scores in row.get("tasks", {}).items():
            for metric, value in scores.items():
                if metric != "n" and isinstance(value, (int, float)) and (task, metric) not in pairs:
                    pairs.append((task, metric))
    return pairs


def table_columns(rows: list[dict]) -> list[Column]:
    """The table's columns for these rows: fixed ones, one per perplexity dataset and one per
    task metric, then quantization time."""
    columns = [
        Column("recipe", lambda r: r["recipe"]),
        Column("weights", lambda r: r["weight_format"]),
        Column("bits/weight", lambda r: r["weight_bits"], "{:.3f}"),
        Column("activations", lambda r: r["activation_format"]),
        Column("bits/activation", lambda r: r["activation_bits"], "{:.3f}"),
        Column("checkpoint MB", _scaled("checkpoint_bytes", MB), "{:.1f}"),
        Column("quant peak MB", _scaled("peak_memory_bytes", MB), "{:.1f}"),
    ]
    datasets = list(dict.fromkeys(name for row in rows for name in row.get("ppl", {})))
    for name in datasets:
        columns.append(Column(f"{name} ppl", lambda r, n=name: r.get("ppl", {}).get(n), "{:.3f}"))
    for task, metric in _task_metrics(rows):
        columns.append(Column(f"{task} {metric}",
                              lambda r, t=task, m=metric: r.get("tasks", {}).get(t, {}).get(m), "{:.4f}"))
    columns.append(Column("quant s", lambda r: r.get("quant_seconds"), "{:.1f}"))
    return columns


def markdown_table(rows: list[dict]) -> str:
    """``| recipe | weights | ... |`` with one line per row, in order."""
    columns = table_columns(rows)
    lines = ["| " + " | ".join(c.header for c in columns) + " |",
             "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(c.cell(row) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def report_document(settings, rows: list[dict], layer_snr: dict, activations: dict, seconds: float) -> dict:
    """The JSON document: settings, rows, per-layer SNR and activation profiles (plot inputs)."""
    settings_dict = dataclasses.asdict(settings) if dataclasses.is_dataclass(settings) else dict(settings)
    return {"settings": settings_dict, "rows": rows, "layer_snr": layer_snr,
            "activations": activations, "seconds": seconds}


def _settings_line(settings: dict) -> str:
    windows = settings.get("max_windows")
    limit = settings.get("limit")
    return (f"Model `{settings.get('model')}`; calibration: {settings.get('calib_samples')} windows of "
            f"{settings.get('seqlen')} tokens from `{settings.get('calib')}` (seed {settings.get('seed')}), "
            f"the same windows for every recipe; perplexity at seqlen {settings.get('seqlen')} over "
            f"{'all' if windows is None else f'the first {windows}'} windows"
            + (f"; tasks on {limit} rows each" if settings.get("tasks") and limit else "") + ".")


def markdown_report(document: dict, plots: list[str] | None = None) -> str:
    """``report.md``'s text: a title, the settings, the table, what the columns mean, the plots."""
    settings = document["settings"]
    device = next((r.get("peak_memory_device") for r in document["rows"]), "cpu")
    memory = ("torch.cuda.max_memory_allocated" if device == "cuda"
              else "growth of the process's peak resident memory (getrusage)")
    lines = [
        f"# residq compare: {settings.get('model')}", "", _settings_line(settings), "",
        markdown_table(document["rows"]), "",
        ("bits/weight: stored bits per weight of the quantized linears, scales and branches included. "
         "bits/activation: bits per activation element fed to the matmul, scales included. "
         "checkpoint MB: every file of the saved checkpoint (weights, config, tokenizer). "
         f"quant peak MB: peak memory while quantizing, {memory}. "
         f"Wall time of the comparison: {document.get('seconds', 0.0):.0f} s."),
    ]
    for plot in plots or []:
        lines += ["", f"![{Path(plot).stem}]({Path(plot).name})"]
    return "\n".join(lines) + "\n"


def write_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary sibling file and ``os.replace``."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def write_report(out_dir: str | Path, document: dict, plots: list[str] | None = None) -> tuple[Path, Path]:
    """Write ``report.json`` and ``report.md`` into ``out_dir`` (created if missing)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    json_path = write_atomic(out / "report.json", json.dumps(document, indent=1))
    md_path = write_atomic(out / "report.md", markdown_report(document, plots))
    return md_path, json_path
