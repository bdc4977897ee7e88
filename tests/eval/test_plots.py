"""The comparison plots: valid PNG files from a report document, none where there is no data."""

from __future__ import annotations

import math

import matplotlib.image
import pytest

from residq.eval.plots import _split_layer_name, write_plots

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _document(with_data: bool = True) -> dict:
    fp = {"recipe": "FP", "weight_format": "float32", "weight_bits": 32.0, "activation_bits": 32.0,
          "ppl": {"wikitext2": 30.0}}
    rows = [fp,
            dict(fp, recipe="w4a16", weight_format="nvfp4", weight_bits=4.5, ppl={"wikitext2": 33.0}),
            dict(fp, recipe="w4a4", weight_format="nvfp4", weight_bits=4.5, activation_bits=4.5,
                 ppl={"wikitext2": 45.0})]
    names = [f"model.layers.{b}.{p}" for b in range(3) for p in ("self_attn.q_proj", "mlp.down_proj")]
    snr = {label: [{"name": n, "snr_db": base - i * 0.1} for i, n in enumerate(names)]
           for label, base in (("w4a16", 20.0), ("w4a4", 14.0))}
    channels = [1.0 + 10.0 * (k == 5) + 0.1 * math.sin(k) for k in range(64)]
    activations = {label: {"layer": "model.layers.1.mlp.down_proj", "before": channels,
                           "after": [c / 2 for c in channels]} for label in ("FP", "w4a16", "w4a4")}
    if not with_data:
        rows, snr, activations = [fp], {}, {}
    return {"settings": {"model": "tiny", "seqlen": 64}, "rows": rows, "layer_snr": snr,
            "activations": activations, "seconds": 1.0}


def test_every_plot_is_a_valid_png(tmp_path):
    paths = write_plots(tmp_path, _document())
    assert [p.name for p in paths] == ["perplexity_vs_bits.png", "layer_snr.png", "activation_channels.png"]
    for path in paths:
        assert path.read_bytes()[:8] == PNG_SIGNATURE
        height, width, _ = matplotlib.image.imread(path).shape
        assert height >= 300 and width >= 500


def test_no_plot_without_data(tmp_path):
    assert write_plots(tmp_path, _document(with_data=False)) == []
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name, expected", [
    ("model.layers.12.self_attn.q_proj", (12, "q_proj")),
    ("model.layers.0.mlp.down_proj", (0, "down_proj")),
    ("lm_head", (0, "lm_head")),
])
def test_layer_names_split_into_block_and_role(name, expected):
    assert _split_layer_name(name) == expected
