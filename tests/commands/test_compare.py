"""``residq compare`` end to end on a tiny random model saved as a HF directory.

The tokenizer is a word-level one built here (a few common English words plus [UNK]), so the
test needs no download; calibration reads a user text file the test writes, perplexity uses the
PTB test split of the shared data folder.
"""

from __future__ import annotations

import json

import matplotlib.image
import pytest
from residq_testing import tiny_model

from residq.cli import main

WORDS = ("the", "of", "and", "to", "in", "a", "is", "was", "for", "on", "as", "with", "by", "that", "at", "from",
         "his", "it", "an", "are", "were", "which", "be", "this")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    root = tmp_path_factory.mktemp("compare")
    vocab = {"[UNK]": 0, **{word: i + 1 for i, word in enumerate(WORDS)}}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]").save_pretrained(root / "model")
    tiny_model("llama", layers=2, vocab=len(vocab)).save_pretrained(root / "model")
    (root / "calib.txt").write_text(" ".join(WORDS[(7 * i) % len(WORDS)] for i in range(400)))
    return root


def _compare(tiny_dir, out, *extra):
    return main(["compare", str(tiny_dir / "model"), "--recipes", "w4a4-nvfp4-rtn", "--calib",
                 str(tiny_dir / "calib.txt"), "--calib-samples", "2", "--seqlen", "16", "--ppl", "ptb",
                 "--max-windows", "2", "--out", str(out), "--device", "cpu", *extra])


def test_compare_writes_report_json_and_plots(tiny_dir, capsys):
    out = tiny_dir / "out"
    assert _compare(tiny_dir, out, "--quiet") == 0
    captured = capsys.readouterr()
    assert "it/s" not in captured.err and "%|" not in captured.err  # --quiet: no progress bars at all
    summary = captured.out.strip().splitlines()[-1]
    assert summary.startswith("residq compare: 1 recipes + FP on") and " s -> " in summary

    document = json.loads((out / "report.json").read_text())
    fp, quantized = document["rows"]
    assert (fp["recipe"], quantized["recipe"]) == ("FP", "w4a4-nvfp4-rtn")
    assert fp["weight_bits"] == 32.0 and quantized["weight_bits"] == pytest.approx(4.5, abs=0.1)
    assert quantized["activation_format"] == "nvfp4" and quantized["activation_bits"] == pytest.approx(4.5)
    assert quantized["checkpoint_bytes"] < fp["checkpoint_bytes"]
    assert fp["quant_seconds"] is None and quantized["quant_seconds"] > 0
    assert quantized["ppl"]["ptb"] > 1 and fp["ppl"]["ptb"] > 1
    assert len(document["layer_snr"]["w4a4-nvfp4-rtn"]) == 2 * 7
    assert document["activations"]["FP"]["layer"] == "model.layers.1.mlp.down_proj"

    markdown = (out / "report.md").read_text()
    rows = [line for line in markdown.splitlines() if line.startswith("| ")][1:]
    assert [r.split("|")[1].strip() for r in rows] == ["FP", "w4a4-nvfp4-rtn"]
    assert f"| {quantized['ppl']['ptb']:.3f} |" in rows[1]
    for name in ("perplexity_vs_bits.png", "layer_snr.png", "activation_channels.png"):
        assert (out / name).read_bytes()[:8] == PNG_SIGNATURE
        assert matplotlib.image.imread(out / name).shape[0] > 100
        assert f"({name})" in markdown


def test_a_bad_plot_layer_fails_before_any_work(tiny_dir, capsys):
    out = tiny_dir / "bad"
    assert _compare(tiny_dir, out, "--quiet", "--plot-layer", "model.layers.7.mlp.down_proj") == 2
    assert "--plot-layer 'model.layers.7.mlp.down_proj'" in capsys.readouterr().err
    assert not out.exists()


def test_unknown_recipe_is_an_error(tiny_dir, capsys):
    code = main(["compare", str(tiny_dir / "model"), "--recipes", "w4a4-nvfp4-rnt", "--out",
                 str(tiny_dir / "nope"), "--quiet"])
    assert code == 2
    assert "unknown recipe 'w4a4-nvfp4-rnt'" in capsys.readouterr().err


def test_a_recipe_listed_twice_is_an_error(tiny_dir, capsys):
    code = main(["compare", str(tiny_dir / "model"), "--recipes", "w4a4-nvfp4-rtn,w4a4-nvfp4-rtn", "--out",
                 str(tiny_dir / "twice"), "--quiet"])
    assert code == 2
    assert "more than once" in capsys.readouterr().err
