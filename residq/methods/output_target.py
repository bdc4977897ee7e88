"""The weight whose product with the *quantized* activations best reproduces the float output.

A layer that quantizes its input computes ``Q_x(X) W_qᵀ`` while the float layer computes
``X Wᵀ``. GPTQ on ``Ĥ_q = Q_x(X)ᵀ Q_x(X)`` with target ``W`` minimizes ``‖Q_x(X) (W - W_q)ᵀ‖²``
and leaves the activation error ``E Wᵀ`` alone. Asymmetric calibration (GPTAQ: Li et al. 2025,
arXiv 2504.02692) instead targets the least-squares solution of ``Q_x(X) W̃ᵀ ≈ X Wᵀ``::

    W̃ = W (Xᵀ Q_x(X)) (Ĥ_q + λ I)⁻¹,    λ = damp · mean(diag Ĥ_q),

so that ``‖X Wᵀ - Q_x(X) W_qᵀ‖² = ‖Q_x(X) (W̃ - W_q)ᵀ‖² + const`` and GPTQ (or RTN) on ``W̃``
minimizes the whole output error. With no activation error (``Q_x(X) = X``) and ``λ = 0``,
``W̃ = W``. Only second moments enter (``Recipe.gptq_target = "output"``).
"""

from __future__ import annotations

import torch


def output_matched_weight(W: torch.Tensor, x_xq: torch.Tensor, quantized_gram: torch.Tensor,
                          damp: float = 0.01) -> torch.Tensor:
    """``W̃ = W (Xᵀ Q_x(X)) (Ĥ_q + λ I)⁻¹``.

    Args:
        W: float weight (M, K).
        x_xq: ``Xᵀ Q_x(X)`` (K, K), float64 sum over tokens.
        quantized_gram: ``Ĥ_q = Q_x(X)ᵀ Q_x(X)`` (K, K), same token count.
        damp: relative dampening ``λ / mean(diag Ĥ_q)`` (the GPTQ recipe's ``damp``).

    Returns:
        ``W̃`` (M, K) in W's dtype and device.
    """
    M, K = W.shape
    if x_xq.shape != (K, K) or quantized_gram.shape != (K, K):
        raise ValueError(f"output_matched_weight: W is {tuple(W.shape)} but XᵀQ(X) is {tuple(x_xq.shape)} "
                         f"and Ĥ_q is {tuple(quantized_gram.shape)}; expected ({K}, {K})")
    Hq = quantized_gram.detach().to(torch.float64)
    Hq = Hq + damp * torch.diagonal(Hq).mean() * torch.eye(K, dtype=torch.float64, device=Hq.device)
    rhs = x_xq.detach().to(device=Hq.device, dtype=torch.float64).T @ W.detach().to(device=Hq.device,
                                                                                     dtype=torch.float64).T
    # (Ĥ_q + λI) W̃ᵀ = Q_x(X)ᵀ X Wᵀ; the matrix is symmetric positive definite.
    target_t = torch.linalg.solve(Hq, rhs)
    return target_t.T.to(device=W.device, dtype=W.dtype).contiguous()
