import json

import pytest
import torch

from residq.checkpoint import load
from residq.cli import main


def test_quantize_then_eval_round_trip(tiny_hf_dir, tmp_path):
    out = tmp_path / "q"
    assert main(["quantize", str(tiny_hf_dir), "--recipe", "w4a16-nvfp4-gptq", "--calib-samples", "4",
                 "--seqlen", "32", "--device", "cpu", "--set", "damp=0.02", "--out", str(out), "--quiet"]) == 0
    model, _ = load(out)
    assert model.residq_recipe.damp == 0.02
    report = tmp_path / "eval.json"
    assert main(["eval", str(out), "--ppl", "wikitext2", "--seqlen", "32", "--max-windows", "3",
                 "--device", "cpu", "--json", str(report), "--quiet"]) == 0
    ppl = json.loads(report.read_text())["ppl"]["wikitext2"]
    assert torch.isfinite(torch.tensor(ppl)) and ppl > 1


def test_existing_output_is_refused_without_overwrite(tiny_hf_dir, tmp_path, capsys):
    (tmp_path / "q").mkdir()
    code = main(["quantize", str(tiny_hf_dir), "--recipe", "w4a16-nvfp4-rtn", "--out", str(tmp_path / "q")])
    assert code == 2 and "--overwrite" in capsys.readouterr().err


def test_unknown_recipe_and_field_get_suggestions(tiny_hf_dir, tmp_path, capsys):
    assert main(["quantize", str(tiny_hf_dir), "--recipe", "w4a16-nvfp4-gptqq", "--out", str(tmp_path / "a")]) == 2
    assert "did you mean 'w4a16-nvfp4-gptq'" in capsys.readouterr().err
    assert main(["quantize", str(tiny_hf_dir), "--recipe", "w4a16-nvfp4-gptq", "--set", "blocksize=64",
                 "--out", str(tmp_path / "b")]) == 2
    assert "did you mean 'block_size'" in capsys.readouterr().err


def test_missing_parent_and_short_calibration_text(tiny_hf_dir, tmp_path, capsys):
    assert main(["quantize", str(tiny_hf_dir), "--recipe", "w4a16-nvfp4-rtn",
                 "--out", str(tmp_path / "x" / "y")]) == 2
    assert "parent directory" in capsys.readouterr().err
    short = tmp_path / "short.txt"
    short.write_text("too short")
    assert main(["quantize", str(tiny_hf_dir), "--recipe", "w4a16-nvfp4-rtn", "--calib", str(short),
                 "--seqlen", "64", "--out", str(tmp_path / "z")]) == 2
    assert "short.txt" in capsys.readouterr().err
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    assert main(["quantize", str(tiny_hf_dir), "--recipe", "w4a16-nvfp4-rtn", "--calib", str(empty),
                 "--out", str(tmp_path / "z")]) == 2
    assert "empty" in capsys.readouterr().err
    assert not (tmp_path / "z").exists()


def test_missing_model_and_data_dir_are_named(tmp_path, capsys):
    assert main(["eval", str(tmp_path / "nothing.gguf")]) == 2
    assert "nothing.gguf" in capsys.readouterr().err


def test_ragged_blocks_warn_with_the_layer_name():
    from residq_testing import tiny_model

    from residq.api import quantize
    from residq.models.sequential import RaggedBlockWarning
    from residq.presets import PRESETS

    model = tiny_model("llama", hidden=40)  # 40 = 2 x 16 + 8: ragged NVFP4 block
    with pytest.warns(RaggedBlockWarning, match=r"model\.layers\.0\.self_attn\.q_proj: in_features=40"):
        quantize(model, PRESETS["w4a16-nvfp4-rtn"], torch.randint(0, 256, (2, 16)), device="cpu", progress=False)


def test_eval_tasks_writes_task_scores_and_ppl(tiny_hf_dir, tmp_path):
    report = tmp_path / "tasks.json"
    assert main(["eval", str(tiny_hf_dir), "--ppl", "wikitext2", "--seqlen", "32", "--max-windows", "2",
                 "--tasks", "arc_easy,winogrande", "--limit", "6", "--device", "cpu", "--json", str(report),
                 "--quiet"]) == 0
    data = json.loads(report.read_text())
    assert data["tasks"]["arc_easy"]["n"] == 6 and 0 <= data["tasks"]["arc_easy"]["acc"] <= 1
    assert data["tasks"]["winogrande"]["n"] == 6
    assert data["ppl"]["wikitext2"] > 1
