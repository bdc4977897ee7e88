"""Shared fixtures (helpers live in residq_testing.py)."""

from __future__ import annotations

import os

import torch

if not torch.cuda.is_available():
    # Triton reads this when it is first imported (transformers may import it early): without a
    # GPU, the kernel tests run in Triton's CPU interpreter.
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest
from residq_testing import smollm2_tokenizer, tiny_model


@pytest.fixture
def llama():
    return tiny_model("llama")


@pytest.fixture
def calib_ids():
    torch.manual_seed(1)
    return torch.randint(0, 256, (4, 32))


@pytest.fixture(scope="session")
def tiny_hf_dir(tmp_path_factory):
    """A tiny random Llama saved as a HF directory with the SmolLM2 tokenizer."""
    path = tmp_path_factory.mktemp("tiny_llama")
    model = tiny_model("llama", vocab=49152)
    model.save_pretrained(path)
    smollm2_tokenizer().save_pretrained(path)
    return path
