"""Per-layer report: JSON numbers from the driver's records, a PNG, and the ``inspect`` command."""

import json

import pytest
from residq_testing import tiny_model

import residq.pipeline
from residq.api import quantize
from residq.cli import build_parser, main
from residq.eval.layer_report import build_layer_report, write_layer_report
from residq.models.sequential import LayerRecord
from residq.presets import PRESETS
from residq.recipe import Recipe


def test_rows_and_summary_are_computed_from_records():
    records = [LayerRecord("a", 64, 32, 0.1, {"snr_db": 20.0, "rank": 16, "energy_kept": 0.5}),
               LayerRecord("b", 32, 64, 0.2, {"snr_db": 10.0})]
    report = build_layer_report(records, Recipe(name="x"))
    a, b = report["layers"]
    assert a["params_pct"] == pytest.approx(100 * 16 * 96 / (64 * 32)) and a["flops_pct"] == a["params_pct"]
    assert b["rank"] == 0 and b["energy_kept"] is None and b["params_pct"] == 0
    s = report["summary"]
    assert s["mean_snr_db"] == 15.0 and s["min_snr_db"] == 10.0 and s["mean_rank"] == 8
    assert s["params_pct"] == pytest.approx(100 * 16 * 96 / (2 * 64 * 32))


def test_report_files_from_a_real_quantization(tmp_path, calib_ids):
    model = tiny_model("llama", layers=1)
    recipe = PRESETS["w4a4-nvfp4-arhq"].with_overrides(["rank=16"])
    result = quantize(model, recipe, calib_ids, device="cpu", progress=False, holdout=calib_ids[:1])
    report = write_layer_report(result.layers, result.recipe, tmp_path)
    on_disk = json.loads((tmp_path / "layer_report.json").read_text())
    assert on_disk == json.loads(json.dumps(report))
    assert len(on_disk["layers"]) == 7 and all(r["rank"] == 16 for r in on_disk["layers"])
    assert all(r["snr_db"] > 5 and 0 < r["energy_kept"] <= 1 for r in on_disk["layers"])
    assert (tmp_path / "layer_snr.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_inspect_command(tmp_path, monkeypatch, calib_ids, capsys):
    args = build_parser().parse_args(["inspect", "tiny", "--recipe", "w4a4-nvfp4-arhq", "--set", "rank=16",
                                      "--out", str(tmp_path / "rep")])
    assert args.command == "inspect" and args.overrides == ["rank=16"]

    def fake_load(name, device="cpu"):
        return tiny_model("llama", layers=1), None, None

    def fake_calibrate(model, tokenizer, recipe, **kwargs):
        assert kwargs["n_samples"] == 128 and kwargs["holdout_samples"] == 2
        return quantize(model, recipe, calib_ids, device="cpu", progress=False, holdout=calib_ids[:1])

    monkeypatch.setattr(residq.pipeline, "load_any_model", fake_load)
    monkeypatch.setattr(residq.pipeline, "quantize_with_calibration", fake_calibrate)
    assert main(["inspect", "tiny", "--recipe", "w4a4-nvfp4-arhq", "--set", "rank=16",
                 "--out", str(tmp_path / "rep"), "--quiet"]) == 0
    assert "mean SNR" in capsys.readouterr().out
    assert (tmp_path / "rep" / "layer_report.json").is_file() and (tmp_path / "rep" / "layer_snr.png").is_file()
    assert main(["inspect", "tiny", "--recipe", "w4a4-nvfp4-arhq", "--holdout-samples", "0",
                 "--out", str(tmp_path / "x")]) == 2
