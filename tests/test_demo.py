"""residq demo: its recipe choice, its table and its pointer to the slower presets."""

from __future__ import annotations

from residq_testing import tiny_model

from residq import demo
from residq.api import quantize
from residq.presets import PRESETS


def test_default_recipes_add_the_first_available_w4a4_preset():
    chosen = demo.default_recipes()
    assert chosen[:len(demo.DEMO_RECIPES)] == list(demo.DEMO_RECIPES)
    assert chosen[-1] == next(n for n in demo.DEMO_W4A4_PREFERENCE if n in PRESETS)


def test_run_demo_prints_one_row_per_recipe_and_names_the_slower_presets(monkeypatch, calib_ids, capsys):
    monkeypatch.setattr(demo, "load_any_model", lambda name: (tiny_model("llama", layers=1), None, None))
    ppls = iter([10.0, 12.5])
    monkeypatch.setattr(demo, "evaluate_model", lambda *a, **k: {"ppl": {"wikitext2": next(ppls)}})
    monkeypatch.setattr(demo, "quantize_with_calibration",
                        lambda model, tok, recipe, **k: quantize(model, recipe, calib_ids, device="cpu", progress=False))
    rows = demo.run_demo("tiny", recipes=["w4a16-nvfp4-rtn"], progress=False)
    out = capsys.readouterr().out
    assert [r["name"] for r in rows] == ["FP (dequantized GGUF)", "w4a16-nvfp4-rtn"]
    assert rows[1]["bits"] < 5 and rows[1]["ppl"] == 12.5
    assert "| w4a16-nvfp4-rtn | 4.5" in out and "| 16-bit |" in out and "| 12.500 | 1.250 |" in out
    assert "More accurate W4A4 presets" in out and "w4a4-nvfp4-flagship" in out
