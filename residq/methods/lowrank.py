"""The low-rank maths of ARHQ (arXiv 2605.00140) and SVDQuant, as plain functions.

ARHQ (ALGORITHMS.md section 4). With the activation quantization error ``E = X - Q_x(X)``
(N x K) and ``G = EᵀE / N``, the rank-r correction ``L`` minimizing ``‖E (W - L)ᵀ‖²_F / N =
tr((W - L) G (W - L)ᵀ)`` is, with ``SVD(W G^{1/2}) = U Σ Vᵀ``::

    B = U_r Σ_r          (M, r)
    A = G^{-1/2} V_r     (K, r)
    L = B Aᵀ             (M, K),  and the objective left is  Σ_{i>r} σ_i².

``G`` is often near-singular: its eigenvalues are floored at ``eig_floor · λ_max`` before the
square roots, and everything runs in float64. An optional ridge ``G' = G + γ I`` accounts for
the weight-quantization error of the residual (``γ = ρ · ε_w · tr(Ĥ_q / N) / K``, see
``ridge_gamma``); ``γ → ∞`` tends to the plain SVD of ``W`` (SVDQuant's branch).

Cost: one K x K symmetric eigendecomposition (O(K³)) and one thin SVD of an M x K matrix
(O(M K min(M, K))), both float64; ``scripts/arhq_eigen_timing.py`` measures them.

Wide inputs (``K > GRAM_FORM_MIN_K`` and ``M < K``, e.g. Llama-3-8B's down_proj, 4096 x 14336)
use the equivalent Gram form instead: with ``U_r``, ``Σ_r²`` the top eigenpairs of the M x M
matrix ``W G' Wᵀ``, ``B = U_r Σ_r`` and ``A = Wᵀ U_r Σ_r⁻¹`` give the same ``L = U_r U_rᵀ W``
(``V_r = G'^{1/2} Wᵀ U_r Σ_r⁻¹``, so ``G'^{-1/2} V_r = Wᵀ U_r Σ_r⁻¹``) with no K x K
eigendecomposition: O(M K² + M³) instead of O(K³). There the floor is a ridge
``G' = G + eig_floor · λ_max · I`` (no eigenvalues of G to clamp), which differs from the
clamped floor by at most ``eig_floor · λ_max`` per direction. Narrower layers keep the
square-root form.
"""

from __future__ import annotations

import math

import torch

RANK_MULTIPLE = 16
GRAM_FORM_MIN_K = 8192  # wider inputs skip the K x K eigendecomposition (module docstring)


def floored_sqrt_pair(G: torch.Tensor, eig_floor: float = 1e-6) -> tuple[torch.Tensor, torch.Tensor]:
    """``G^{1/2}`` and ``G^{-1/2}`` of a symmetric PSD ``G`` (K, K), eigenvalues floored.

    Args:
        G: (K, K) float, symmetric positive semi-definite (computed in float64).
        eig_floor: eigenvalues below ``eig_floor · λ_max`` are raised to it.

    Returns:
        ``(G_half, G_inv_half)``, both (K, K) float64.
    """
    G64 = G.detach().to(torch.float64)
    G64 = 0.5 * (G64 + G64.T)
    eigvals, Q = torch.linalg.eigh(G64)
    top = eigvals.max().clamp_min(0.0)
    if not float(top) > 0:
        raise ValueError("ARHQ: the residual covariance G is zero (no activation error was measured)")
    eigvals = eigvals.clamp_min(eig_floor * top)
    root = eigvals.sqrt()
    return (Q * root) @ Q.T, (Q / root) @ Q.T


def arhq_factors(
    W: torch.Tensor,
    G: torch.Tensor,
    rank: int,
    eig_floor: float = 1e-6,
    ridge_gamma: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """ARHQ's closed-form low-rank branch (arXiv 2605.00140; ALGORITHMS.md section 4).

    Args:
        W: weight (M, K), any float dtype.
        G: activation-residual covariance ``EᵀE / N`` (K, K), float64 preferred.
        rank: r, clipped to ``min(M, K)``; 0 gives empty factors.
        eig_floor: relative eigenvalue floor of ``G'`` (``1e-6 · λ_max``).
        ridge_gamma: absolute ridge ``γ`` added to G's diagonal (0 = pure ARHQ).

    Returns:
        ``(A, B, sigma)``: ``A`` (K, r) float64, ``B`` (M, r) float64 with ``L = B Aᵀ``, and
        ``sigma`` (min(M, K),) float64, every singular value of ``W G'^{1/2}`` (descending):
        dropping component i costs exactly ``sigma[i]²`` of the objective.
    """
    M, K = W.shape
    if G.shape != (K, K):
        raise ValueError(f"arhq_factors: G must be ({K}, {K}) for W of shape {(M, K)}, got {tuple(G.shape)}")
    if rank < 0:
        raise ValueError(f"arhq_factors: rank must be >= 0, got {rank}")
    if ridge_gamma < 0:
        raise ValueError(f"arhq_factors: ridge_gamma must be >= 0, got {ridge_gamma}")
    G64 = G.detach().to(torch.float64)
    if ridge_gamma > 0:
        G64 = G64 + ridge_gamma * torch.eye(K, dtype=torch.float64, device=G64.device)
    if K > GRAM_FORM_MIN_K and M < K:
        return _arhq_factors_gram(W, G64, rank, eig_floor)
    G_half, G_inv_half = floored_sqrt_pair(G64, eig_floor)
    W64 = W.detach().to(device=G64.device, dtype=torch.float64)
    U, sigma, Vh = torch.linalg.svd(W64 @ G_half, full_matrices=False)
    r = min(rank, sigma.numel())
    B = U[:, :r] * sigma[:r]
    A = G_inv_half @ Vh[:r].T
    return A, B, sigma


def _largest_eigenvalue(G: torch.Tensor, iterations: int = 30) -> float:
    """Power-iteration estimate of ``λ_max`` of a symmetric PSD ``G`` (K, K) float64."""
    v = torch.ones(G.shape[0], dtype=G.dtype, device=G.device)
    value = 0.0
    for _ in range(iterations):
        w = G @ v
        value = float(w.norm())
        if value == 0.0:
            return 0.0
        v = w / value
    return float(v @ (G @ v))


def _arhq_factors_gram(W: torch.Tensor, G64: torch.Tensor, rank: int,
                       eig_floor: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``arhq_factors`` through the M x M Gram matrix ``W G' Wᵀ`` (module docstring); M < K."""
    G64 = 0.5 * (G64 + G64.T)
    top = _largest_eigenvalue(G64)
    if not top > 0:
        raise ValueError("ARHQ: the residual covariance G is zero (no activation error was measured)")
    W64 = W.detach().to(device=G64.device, dtype=torch.float64)
    G64 = G64 + (eig_floor * top) * torch.eye(G64.shape[0], dtype=G64.dtype, device=G64.device)
    gram = (W64 @ G64) @ W64.T
    eigvals, U = torch.linalg.eigh(0.5 * (gram + gram.T))
    sigma = eigvals.flip(0).clamp_min(0.0).sqrt()
    U = U.flip(1)
    r = min(rank, sigma.numel())
    B = U[:, :r] * sigma[:r]
    scale = torch.where(sigma[:r] > sigma[0] * 1e-12, 1.0 / sigma[:r], torch.zeros_like(sigma[:r]))
    A = (W64.T @ U[:, :r]) * scale
    return A, B, sigma


def refit_factors(
    W: torch.Tensor,
    W_q: torch.Tensor,
    xtx: torch.Tensor,
    x_xq: torch.Tensor,
    rank: int,
    eig_floor: float = 1e-6,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Refit the branch to the whole layer error once the residual weight is quantized.

    ARHQ's closed form minimizes only the activation term ``‖E (W - L)ᵀ‖²``; the layer's
    actual calibration error is (ALGORITHMS.md section 4, the "sound, complete" objective)

        J(L) = ‖X Wᵀ - Q_x(X) W_qᵀ - X Lᵀ‖²_F,

    which, with ``W_q`` fixed, is a reduced-rank regression of ``T = X Wᵀ - Q_x(X) W_qᵀ`` on
    ``X``. It needs only second moments: ``Xᵀ T = H Wᵀ - (Xᵀ Q_x(X)) W_qᵀ``. With
    ``H = XᵀX`` (eigenvalues floored at ``eig_floor · λ_max``) and
    ``SVD(H^{-1/2} Xᵀ T) = U Σ Vᵀ``, the minimizer is ``Lᵀ = H^{-1/2} U_r Σ_r V_rᵀ``, i.e.
    ``A = H^{-1/2} U_r`` (K, r), ``B = V_r Σ_r`` (M, r); J drops by ``Σ_{i≤r} σ_i²`` from
    ``‖T‖²``. This is residq's extension of ARHQ (the branch then also absorbs the part of
    the weight-quantization error that X amplifies most); it stays tied to second-moment
    statistics, never to individual calibration rows.

    Args:
        W: float weight (M, K); W_q: its quantized residual, dequantized (M, K).
        xtx: ``H = XᵀX`` (K, K); x_xq: ``Xᵀ Q_x(X)`` (K, K); both float64 sums over tokens.
        rank: r, clipped to ``min(M, K)``.

    Returns:
        ``(A (K, r), B (M, r), sigma)`` float64 with equal column norms in A and B (safe to
        store in float16), ``sigma`` every singular value of ``H^{-1/2} Xᵀ T`` (descending).
    """
    _, K = W.shape
    if W_q.shape != W.shape or xtx.shape != (K, K) or x_xq.shape != (K, K):
        raise ValueError(f"refit_factors: W {tuple(W.shape)}, W_q {tuple(W_q.shape)}, XᵀX "
                         f"{tuple(xtx.shape)} and XᵀQ(X) {tuple(x_xq.shape)} do not match")
    H64 = xtx.detach().to(torch.float64)
    device = H64.device
    W64 = W.detach().to(device=device, dtype=torch.float64)
    Wq64 = W_q.detach().to(device=device, dtype=torch.float64)
    _, H_inv_half = floored_sqrt_pair(H64, eig_floor)
    xt_target = H64 @ W64.T - x_xq.detach().to(device=device, dtype=torch.float64) @ Wq64.T
    U, sigma, Vh = torch.linalg.svd(H_inv_half @ xt_target, full_matrices=False)
    r = min(rank, sigma.numel())
    A, B = H_inv_half @ U[:, :r], Vh[:r].T * sigma[:r]
    # Σ grows with the token count while H^{-1/2} shrinks: balance the column norms so neither
    # factor overflows float16 (L = B Aᵀ is unchanged).
    balance = (B.norm(dim=0) / A.norm(dim=0).clamp_min(1e-300)).sqrt().clamp_min(1e-300)
    return A * balance, B / balance, sigma


def svd_factors(W: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Plain truncated SVD of ``W`` (SVDQuant's branch, Li et al. 2024, arXiv 2411.05007).

    Returns ``(A (K, r), B (M, r), sigma)`` float64 with ``L = B Aᵀ`` the best rank-r
    approximation of ``W`` in Frobenius norm; ``sigma`` all singular values of W.
    """
    if rank < 0:
        raise ValueError(f"svd_factors: rank must be >= 0, got {rank}")
    U, sigma, Vh = torch.linalg.svd(W.detach().to(torch.float64), full_matrices=False)
    r = min(rank, sigma.numel())
    return Vh[:r].T.contiguous(), U[:, :r] * sigma[:r], sigma


def energy_kept(sigma: torch.Tensor, rank: int) -> float:
    """Fraction ``Σ_{i<r} σ_i² / Σ_i σ_i²`` of the objective the branch removes (1.0 if all zero)."""
    energy = sigma.to(torch.float64).pow(2)
    total = float(energy.sum())
    return float(energy[:rank].sum()) / total if total > 0 else 1.0


def adaptive_rank(sigma: torch.Tensor, tau: float, multiple: int = RANK_MULTIPLE) -> int:
    """Smallest r whose tail energy ``Σ_{i>=r} σ_i² / Σ σ_i²`` is at most ``tau``, rounded up to
    a multiple of ``multiple`` and capped at ``len(sigma)`` (ALGORITHMS.md section 4, step 4).

    Args:
        sigma: (n,) singular values, descending.
        tau: largest tail energy fraction dropped, in (0, 1).
    """
    if not 0 < tau < 1:
        raise ValueError(f"adaptive_rank: tau must be in (0, 1), got {tau}")
    energy = sigma.to(torch.float64).pow(2)
    total = float(energy.sum())
    n = energy.numel()
    if total <= 0:
        return 0
    # tail[r] = energy of components r..n-1; tail[n] = 0.
    tail = torch.cat([energy.flip(0).cumsum(0).flip(0), energy.new_zeros(1)]) / total
    r = int(torch.nonzero(tail <= tau)[0])
    return min(n, math.ceil(r / multiple) * multiple)


def weight_error_ratio(W: torch.Tensor, W_quantized: torch.Tensor) -> float:
    """``ε_w = ‖W - Q_w(W)‖² / ‖W‖²`` (both (M, K))."""
    W64 = W.detach().to(torch.float64)
    denom = float(W64.pow(2).sum())
    if denom == 0:
        return 0.0
    return float((W64 - W_quantized.detach().to(torch.float64)).pow(2).sum()) / denom


def ridge_gamma(rho: float, eps_w: float, quantized_gram_mean: torch.Tensor) -> float:
    """ARHQ's ridge ``γ = ρ · ε_w · tr(Ĥ_q) / K`` (ALGORITHMS.md section 4, step 2).

    Args:
        rho: ridge factor ρ (``Recipe.ridge``); 0 gives 0.
        eps_w: relative weight-quantization error ``ε_w`` (``weight_error_ratio``).
        quantized_gram_mean: ``Ĥ_q / N = Q_x(X)ᵀ Q_x(X) / N`` (K, K): normalized by the token
            count like ``G``, so that ``γ I`` is on G's scale. ``γ I`` then models the weight
            error term ``tr(Δ_w Ĥ_q Δ_wᵀ)`` as isotropic noise of relative size ``ε_w``.
    """
    if rho < 0:
        raise ValueError(f"ridge_gamma: rho must be >= 0, got {rho}")
    if rho == 0:
        return 0.0
    K = quantized_gram_mean.shape[0]
    return float(rho * eps_w * torch.diagonal(quantized_gram_mean).sum().item() / K)


def residual_objective(W: torch.Tensor, L: torch.Tensor, G: torch.Tensor) -> float:
    """``tr((W - L) G (W - L)ᵀ)``: the activation-error energy the branch leaves (float64)."""
    D = (W.to(torch.float64) - L.to(torch.float64))
    return float(torch.einsum("mk,kj,mj->", D, G.to(torch.float64), D))


def branch_overhead(m: int, k: int, rank: int) -> dict[str, float]:
    """Parameter and FLOP overhead of a rank-r branch on an (M, K) layer, as percentages.

    The branch ``(X A) Bᵀ`` holds ``r (M + K)`` parameters and costs ``2 r (M + K)`` FLOPs per
    token against the layer's ``M K`` parameters and ``2 M K`` FLOPs, so both ratios are
    ``r (M + K) / (M K)``.
    """
    ratio = 100.0 * rank * (m + k) / (m * k)
    return {"params_pct": ratio, "flops_pct": ratio}
