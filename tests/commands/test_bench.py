"""``residq bench`` on CPU: a saved checkpoint, a float HF directory, the layer rows, bad input."""

from __future__ import annotations

import argparse
import json

import pytest
import torch
from residq_testing import tiny_model

from residq.cli import main
from residq.commands import bench

FAST = ["--prefill", "16", "--decode", "2", "--repeats", "1", "--device", "cpu"]


@pytest.fixture(scope="module")
def checkpoint_dir(tmp_path_factory):
    from residq.api import quantize
    from residq.checkpoint import save
    from residq.recipe import load_recipe

    model = tiny_model("llama", layers=1)
    quantize(model, load_recipe("w4a16-nvfp4-rtn"), torch.randint(0, 256, (2, 16)), device="cpu", progress=False)
    return save(model, None, tmp_path_factory.mktemp("bench") / "ckpt")


def test_checkpoint_against_random_baseline(checkpoint_dir, tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["bench", str(checkpoint_dir), *FAST, "--layer-tokens", "0", "--json", str(out), "--quiet"]) == 0
    result = json.loads(out.read_text())
    labels = [row["model"] for row in result["models"]]
    assert labels == ["bf16 (same config, random weights)", "checkpoint (w4a16-nvfp4-rtn)"]
    base, quantized = result["models"]
    assert quantized["size_bytes"] < base["size_bytes"]  # the packed linears are smaller
    assert all(row["prefill_tokens_per_s"] > 0 and row["decode_tokens_per_s"] > 0 for row in result["models"])
    assert result["llama3_8b_layer"] == [] and result["dtype"] == "float32"
    printed = capsys.readouterr().out
    assert "reference path" in printed and "prefill tok/s" in printed
    assert not list(tmp_path.glob(".bench.json.tmp-*"))


def test_float_model_rows_and_layer_rows(monkeypatch):
    """The float path (quantize with each recipe on random tokens) and the layer rows, on a tiny
    stand-in for the Llama-3-8B layer."""
    args = bench.add_parser(argparse.ArgumentParser().add_subparsers()).parse_args(
        ["x", *FAST, "--layer-tokens", "8", "--calib-samples", "1", "--calib-seqlen", "8", "--quiet"])
    model = tiny_model("llama", layers=1)
    row = bench._model_row("w4a4-nvfp4-rtn", bench._quantized(model, "w4a4-nvfp4-rtn", args, torch.device("cpu")),
                           args, torch.device("cpu"), torch.float32)
    assert row["prefill_tokens_per_s"] > 0 and row["kernel_layers"] == 0  # no CUDA: reference path
    from residq.eval import speed

    small = {"hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4, "num_key_value_heads": 2}
    real = speed.one_layer_llama
    monkeypatch.setattr(speed, "one_layer_llama", lambda: real(small, vocab=64))
    layer = bench._layer_row("w4a16-nvfp4-rtn", "w4a16-nvfp4-rtn", args, torch.device("cpu"), torch.float32)
    assert layer["tokens"] == 8 and layer["prefill_ms"] > 0 and layer["decode_ms"] > 0
    table = bench.format_tables({"model": "m", "device": "cpu", "dtype": "float32", "batch": 1,
                                 "prefill_tokens": 16, "decode_tokens": 2, "models": [row, row],
                                 "llama3_8b_layer": [layer, layer]})
    assert "Llama-3-8B" in table and table.count("1.00") >= 4
    assert layer["decode_graph_ms"] is None and "graph" not in table  # CUDA graphs: GPU only
    graphed = dict(layer, prefill_graph_ms=2.0, decode_graph_ms=0.5)
    table = bench.format_tables({"model": "m", "device": "gpu", "dtype": "bfloat16", "batch": 1,
                                 "prefill_tokens": 16, "decode_tokens": 2, "models": [row],
                                 "llama3_8b_layer": [graphed, dict(graphed, decode_graph_ms=0.25)]})
    assert "graph 1-token" in table and table.splitlines()[-1].rstrip().endswith("0.250   2.00")


def test_bad_input_is_refused(checkpoint_dir, tmp_path, capsys):
    assert main(["bench", str(checkpoint_dir), *FAST, "--prefill", "0"]) == 2
    assert "--prefill must be >= 1" in capsys.readouterr().err
    assert main(["bench", str(checkpoint_dir), *FAST, "--json", str(tmp_path / "missing" / "b.json")]) == 2
    assert "folder does not exist" in capsys.readouterr().err
