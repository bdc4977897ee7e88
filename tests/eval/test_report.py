"""The report writer: files exist, the markdown table's rows are the JSON rows, writes are atomic."""

from __future__ import annotations

import json
import os

import pytest

from residq.eval import report
from residq.eval.report import MISSING, markdown_table, report_document, write_report


def _rows() -> list[dict]:
    fp = {"recipe": "FP", "description": "float", "weight_format": "float32", "weight_bits": 32.0,
          "activation_format": "float32", "activation_bits": 32.0, "checkpoint_bytes": 540_123_456,
          "weights_bytes": 538_000_000, "peak_memory_bytes": None, "peak_memory_device": "cpu",
          "ppl": {"wikitext2": 30.1234, "ptb": 50.5}, "quant_seconds": None, "eval_seconds": 12.0,
          "tasks": {"arc_easy": {"acc": 0.5, "acc_norm": 0.45, "n": 500},
                    "mmlu": {"acc": 0.25, "n": 57, "subjects": {"anatomy": {"acc": 0.2}}}}}
    w4 = dict(fp, recipe="w4a16-nvfp4-rtn", weight_format="nvfp4", weight_bits=4.5061,
              activation_format="float32 (unquantized)", checkpoint_bytes=120_000_000,
              peak_memory_bytes=300_500_000, ppl={"wikitext2": 33.3333, "ptb": 55.0}, quant_seconds=61.25,
              tasks={"arc_easy": {"acc": 0.48, "acc_norm": 0.44, "n": 500}, "mmlu": {"acc": 0.24, "n": 57}})
    w4a4 = dict(w4, recipe="w4a4-nvfp4-rtn", activation_format="nvfp4", activation_bits=4.5,
                ppl={"wikitext2": 40.0}, tasks={"arc_easy": {"acc": 0.4, "acc_norm": 0.41, "n": 500}})
    return [fp, w4, w4a4]


def _document() -> dict:
    settings = {"model": "tiny", "recipes": ["w4a16-nvfp4-rtn", "w4a4-nvfp4-rtn"], "calib": "wikitext2",
                "calib_samples": 16, "seqlen": 512, "seed": 0, "max_windows": 10, "tasks": ["arc_easy"],
                "limit": 500}
    return report_document(settings, _rows(), {}, {}, 123.4)


def _parse_table(markdown: str) -> tuple[list[str], list[list[str]]]:
    lines = [line for line in markdown.splitlines() if line.startswith("|")]
    split = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]
    return split[0], split[2:]


def test_columns_follow_the_rows_content():
    header, body = _parse_table(markdown_table(_rows()))
    assert header == ["recipe", "weights", "bits/weight", "activations", "bits/activation", "checkpoint MB",
                      "quant peak MB", "wikitext2 ppl", "ptb ppl", "arc_easy acc", "arc_easy acc_norm",
                      "mmlu acc", "quant s"]
    assert [cells[0] for cells in body] == ["FP", "w4a16-nvfp4-rtn", "w4a4-nvfp4-rtn"]


def test_report_files_exist_and_table_rows_match_the_json(tmp_path):
    md_path, json_path = write_report(tmp_path / "out", _document(), ["out/layer_snr.png"])
    assert md_path.is_file() and json_path.is_file()
    saved = json.loads(json_path.read_text())
    header, body = _parse_table(md_path.read_text())
    assert len(body) == len(saved["rows"]) == 3
    for cells, row in zip(body, saved["rows"]):
        cell = dict(zip(header, cells))
        assert cell["recipe"] == row["recipe"]
        assert cell["weights"] == row["weight_format"]
        assert float(cell["bits/weight"]) == pytest.approx(row["weight_bits"], abs=5e-4)
        assert float(cell["bits/activation"]) == pytest.approx(row["activation_bits"], abs=5e-4)
        assert float(cell["checkpoint MB"]) == pytest.approx(row["checkpoint_bytes"] / 1e6, abs=0.05)
        assert float(cell["wikitext2 ppl"]) == pytest.approx(row["ppl"]["wikitext2"], abs=5e-4)
        assert float(cell["arc_easy acc_norm"]) == pytest.approx(row["tasks"]["arc_easy"]["acc_norm"], abs=5e-5)
        for column, value in (("quant peak MB", row["peak_memory_bytes"]), ("quant s", row["quant_seconds"])):
            assert (cell[column] == MISSING) == (value is None)
    assert dict(zip(header, body[2]))["ptb ppl"] == MISSING  # that row has no PTB number
    assert dict(zip(header, body[2]))["mmlu acc"] == MISSING
    assert float(dict(zip(header, body[1]))["quant peak MB"]) == pytest.approx(300.5, abs=0.05)
    assert "![layer_snr](layer_snr.png)" in md_path.read_text()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["report.json", "report.md"]


def test_a_failed_write_keeps_the_previous_report(tmp_path, monkeypatch):
    write_report(tmp_path, _document())
    before = (tmp_path / "report.json").read_text()

    def failing_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(report.os, "replace", failing_replace)
    changed = _document()
    changed["rows"][0]["recipe"] = "changed"
    with pytest.raises(OSError, match="disk full"):
        write_report(tmp_path, changed)
    assert (tmp_path / "report.json").read_text() == before
    assert sorted(os.listdir(tmp_path)) == ["report.json", "report.md"]
