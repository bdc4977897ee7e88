"""Online activation quantization (reference path), including ARCQuant's augmented channels.

ARCQuant (arXiv 2601.07475, ALGORITHMS.md section 3): with ``s`` augmented channels the
operand is ``X' = [Q1(X) ‖ Q2(R)]`` where ``Q1`` quantizes all K channels (already permuted so
the outliers are last) and ``R = X[..., K-s:] - deq(Q1)[..., K-s:]`` is the residual of the
last ``s`` channels, quantized again with its own block scales (and, for NVFP4, its own
dynamic global scale). The weight then carries the outlier columns twice, so one GEMM over
``K + s`` adds ``Q2(R) Q(W_top)ᵀ`` to the main product.
"""

from __future__ import annotations

import torch

from residq.formats import fake_quantize
from residq.formats.spec import FormatSpec

# Atom (Zhao et al. 2023): the reordered last ``outliers`` channels stay in INT8 per token.
OUTLIER_SPEC = FormatSpec(kind="int", bits=8, granularity="token")


def quantize_activation(
    x: torch.Tensor,
    spec: FormatSpec,
    global_scale: torch.Tensor | None = None,
    augmented: int = 0,
    outliers: int = 0,
) -> torch.Tensor:
    """Quantize-dequantize activations.

    Args:
        x: (N, K) float activations (already permuted / smoothed).
        spec: activation format.
        global_scale: NVFP4 static global scale, or None for dynamic (per call).
        augmented: number ``s`` of residual channels appended (ARCQuant); 0 = none.
        outliers: Atom: the last ``outliers`` channels are quantized with ``OUTLIER_SPEC``
            (INT8 per token) and the first ``K - outliers`` with ``spec``; 0 = none.

    Returns:
        float32 (N, K + augmented).
    """
    xf = x.float()
    if outliers:
        if augmented:
            raise ValueError("activation: Atom outlier channels and ARCQuant augmentation do not combine")
        k = xf.shape[-1]
        head = fake_quantize(xf[..., : k - outliers], spec, global_scale) if outliers < k else xf[..., :0]
        return torch.cat([head, fake_quantize(xf[..., k - outliers:], OUTLIER_SPEC)], dim=-1)
    q1 = fake_quantize(xf, spec, global_scale)
    if augmented == 0:
        return q1
    k = xf.shape[-1]
    residual = xf[..., k - augmented :] - q1[..., k - augmented :]
    q2 = fake_quantize(residual, spec)
    return torch.cat([q1, q2], dim=-1)
