"""Evaluation of (quantized) models: perplexity (``residq.eval.perplexity``) and zero-shot tasks."""
