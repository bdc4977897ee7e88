"""The real default model, SmolLM2-135M-Instruct (GGUF, dequantized), on a few short windows."""

import pytest
import torch

from residq.eval.perplexity import perplexity
from residq.pipeline import load_any_model, quantize_with_calibration
from residq.presets import PRESETS

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def fp_ppl():
    model, tokenizer, _ = load_any_model("smollm2-135m")
    assert model.config.model_type == "llama" and model.config.hidden_size == 576
    return perplexity(model, tokenizer, "wikitext2", seqlen=256, max_windows=4, progress=False).ppl


def test_fp_perplexity_is_that_of_a_real_language_model(fp_ppl):
    assert 10 < fp_ppl < 60


def test_gptq_nvfp4_stays_close_to_fp_and_records_layer_snr(fp_ppl):
    model, tokenizer, _ = load_any_model("smollm2-135m")
    result = quantize_with_calibration(model, tokenizer, PRESETS["w4a16-nvfp4-gptq"], n_samples=4, seqlen=256,
                                       device="cpu", progress=False, holdout_samples=1)
    assert len(result.layers) == 30 * 7
    assert min(r.info["snr_db"] for r in result.layers) > 10
    ppl = perplexity(model, tokenizer, "wikitext2", seqlen=256, max_windows=4, progress=False).ppl
    assert torch.isfinite(torch.tensor(ppl)) and fp_ppl < ppl < 1.5 * fp_ppl
