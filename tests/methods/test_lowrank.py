"""ARHQ's closed form (arXiv 2605.00140) against brute force, and the rank/ridge rules."""

import pytest
import torch

from residq.methods.lowrank import (
    adaptive_rank,
    arhq_factors,
    branch_overhead,
    energy_kept,
    floored_sqrt_pair,
    refit_factors,
    residual_objective,
    ridge_gamma,
    svd_factors,
    weight_error_ratio,
)


def random_problem(m=7, k=6, n=200, seed=0):
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(m, k, generator=g, dtype=torch.float64)
    E = torch.randn(n, k, generator=g, dtype=torch.float64) @ torch.randn(k, k, generator=g, dtype=torch.float64)
    return W, E.T @ E / n


def brute_force_objective(W, G, rank, starts=6, steps=400):
    """min over B (M, r), A (K, r) of tr((W - B Aᵀ) G (W - B Aᵀ)ᵀ) by L-BFGS from random starts."""
    best = float("inf")
    for start in range(starts):
        g = torch.Generator().manual_seed(100 + start)
        B = torch.randn(W.shape[0], rank, generator=g, dtype=torch.float64, requires_grad=True)
        A = torch.randn(W.shape[1], rank, generator=g, dtype=torch.float64, requires_grad=True)
        opt = torch.optim.LBFGS([A, B], max_iter=steps, tolerance_grad=1e-14, tolerance_change=1e-16,
                                line_search_fn="strong_wolfe")

        def closure(opt=opt, A=A, B=B):
            opt.zero_grad()
            D = W - B @ A.T
            loss = torch.einsum("mk,kj,mj->", D, G, D)
            loss.backward()
            return loss

        opt.step(closure)
        with torch.no_grad():
            best = min(best, residual_objective(W, B @ A.T, G))
    return best


@pytest.mark.parametrize("rank", [1, 2, 3])
def test_closed_form_matches_brute_force(rank):
    W, G = random_problem()
    A, B, _ = arhq_factors(W, G, rank)
    closed = residual_objective(W, B @ A.T, G)
    brute = brute_force_objective(W, G, rank)
    assert closed <= brute * (1 + 1e-9)
    assert closed == pytest.approx(brute, rel=1e-6)


@pytest.mark.parametrize("rank", [0, 1, 4, 6])
def test_objective_equals_sum_of_dropped_sigma_squared(rank):
    W, G = random_problem(m=9, k=6, seed=3)
    A, B, sigma = arhq_factors(W, G, rank)
    assert A.shape == (6, rank) and B.shape == (9, rank)
    dropped = float(sigma[rank:].pow(2).sum())
    assert residual_objective(W, B @ A.T, G) == pytest.approx(dropped, rel=1e-9, abs=1e-12)
    assert energy_kept(sigma, rank) == pytest.approx(1 - dropped / float(sigma.pow(2).sum()), abs=1e-12)


def test_arhq_beats_plain_svd_on_its_objective():
    W, G = random_problem(m=12, k=10, seed=5)
    A, B, _ = arhq_factors(W, G, 3)
    As, Bs, _ = svd_factors(W, 3)
    assert residual_objective(W, B @ A.T, G) < residual_objective(W, Bs @ As.T, G)


def test_huge_ridge_tends_to_plain_svd():
    W, G = random_problem(m=8, k=6, seed=7)
    A, B, _ = arhq_factors(W, G, 2, ridge_gamma=1e9)
    As, Bs, _ = svd_factors(W, 2)
    assert torch.allclose(B @ A.T, Bs @ As.T, atol=1e-6)


def test_eigen_floor_keeps_a_singular_g_finite():
    W, _ = random_problem(m=5, k=6)
    E = torch.randn(50, 2, dtype=torch.float64) @ torch.randn(2, 6, dtype=torch.float64)  # rank 2
    G = E.T @ E / 50
    half, inv_half = floored_sqrt_pair(G, 1e-6)
    assert torch.isfinite(inv_half).all()
    eig = torch.linalg.eigvalsh(half @ half)
    assert eig.min() >= 0.999e-6 * eig.max()
    A, B, _ = arhq_factors(W, G, 2)
    assert torch.isfinite(A).all() and torch.isfinite(B).all()
    with pytest.raises(ValueError, match="G is zero"):
        arhq_factors(W, torch.zeros(6, 6, dtype=torch.float64), 1)


def test_shape_errors_are_specific():
    with pytest.raises(ValueError, match=r"G must be \(6, 6\)"):
        arhq_factors(torch.zeros(4, 6), torch.eye(5), 1)


def test_adaptive_rank_rounds_tail_rule_up_to_16():
    sigma = torch.tensor([10.0] * 20 + [0.1] * 80)  # energy: 2000 head, 0.8 tail
    assert adaptive_rank(sigma, 0.01) == 32  # r = 20 drops 0.04% -> rounded to 32
    sigma = torch.ones(100)
    assert adaptive_rank(sigma, 0.5) == 64  # r = 50 -> 64
    assert adaptive_rank(torch.ones(40), 0.01) == 40  # r = 40 already, capped at len
    assert adaptive_rank(torch.zeros(10), 0.1) == 0


def test_ridge_rule():
    Hq = torch.diag(torch.tensor([1.0, 2.0, 3.0, 6.0], dtype=torch.float64))
    assert ridge_gamma(0.5, 0.02, Hq) == pytest.approx(0.5 * 0.02 * 12 / 4)
    assert ridge_gamma(0.0, 0.02, Hq) == 0.0
    assert weight_error_ratio(torch.tensor([[3.0, 4.0]]), torch.tensor([[3.0, 3.0]])) == pytest.approx(1 / 25)


def test_branch_overhead():
    out = branch_overhead(100, 300, 10)
    assert out["params_pct"] == pytest.approx(100 * 10 * 400 / 30000)
    assert out["flops_pct"] == out["params_pct"]


def refit_problem(m=9, k=12, n=400, seed=3):
    """X (n, K), a crude quantizer's Q(X), W and a perturbed W_q, all float64."""
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, k, generator=g, dtype=torch.float64) @ torch.randn(k, k, generator=g, dtype=torch.float64)
    Xq = torch.round(X * 2) / 2
    W = torch.randn(m, k, generator=g, dtype=torch.float64)
    W_q = torch.round(W * 4) / 4
    return X, Xq, W, W_q


def layer_error(X, Xq, W, W_q, L):
    return float((X @ W.T - Xq @ W_q.T - X @ L.T).pow(2).sum())


def test_refit_at_full_rank_is_the_least_squares_solution():
    X, Xq, W, W_q = refit_problem()
    A, B, _ = refit_factors(W, W_q, X.T @ X, X.T @ Xq, rank=9)
    target = X @ W.T - Xq @ W_q.T
    least_squares = torch.linalg.lstsq(X, target).solution.T  # L (M, K) minimizing ‖T - X Lᵀ‖
    assert torch.allclose(B @ A.T, least_squares, atol=1e-8, rtol=1e-6)


@pytest.mark.parametrize("rank", [1, 3, 5])
def test_refit_drop_equals_sigma_and_beats_the_closed_form(rank):
    X, Xq, W, W_q = refit_problem()
    A, B, sigma = refit_factors(W, W_q, X.T @ X, X.T @ Xq, rank)
    zero = layer_error(X, Xq, W, W_q, torch.zeros_like(W))
    refit = layer_error(X, Xq, W, W_q, B @ A.T)
    assert refit == pytest.approx(zero - float(sigma[:rank].pow(2).sum()), rel=1e-9)
    E = X - Xq
    A0, B0, _ = arhq_factors(W, E.T @ E / X.shape[0], rank)
    assert refit < layer_error(X, Xq, W, W_q, B0 @ A0.T)


def test_refit_shape_errors_are_specific():
    X, Xq, W, W_q = refit_problem()
    with pytest.raises(ValueError, match="do not match"):
        refit_factors(W, W_q[:, :5], X.T @ X, X.T @ Xq, 2)


def test_refit_factors_are_balanced_for_float16_even_with_many_tokens():
    X, Xq, W, W_q = refit_problem()
    scale = 1e6  # token sums of a long calibration: Xᵀ T and H grow with N
    A, B, _ = refit_factors(W, W_q, scale * X.T @ X, scale * X.T @ Xq, rank=3)
    assert torch.allclose(A.norm(dim=0), B.norm(dim=0))
    assert torch.isfinite(B.half().double() @ A.half().double().T).all()


@pytest.mark.parametrize("rank", [1, 3, 5])
def test_gram_form_for_wide_inputs_equals_the_square_root_form(rank, monkeypatch):
    """K > GRAM_FORM_MIN_K and M < K: L = U_r U_rᵀ W from eigh(W G' Wᵀ), same branch and σ."""
    from residq.methods import lowrank

    W, G = random_problem(m=5, k=12, seed=11)
    A, B, sigma = arhq_factors(W, G, rank, eig_floor=1e-12)
    monkeypatch.setattr(lowrank, "GRAM_FORM_MIN_K", 8)
    Ag, Bg, sigma_g = arhq_factors(W, G, rank, eig_floor=1e-12)
    assert Ag.shape == A.shape and Bg.shape == B.shape and sigma_g.shape == sigma.shape == (5,)
    torch.testing.assert_close(sigma_g, sigma, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(Bg @ Ag.T, B @ A.T, rtol=1e-8, atol=1e-10)
    dropped = float(sigma_g[rank:].pow(2).sum())
    assert residual_objective(W, Bg @ Ag.T, G) == pytest.approx(dropped, rel=1e-7, abs=1e-12)


def test_gram_form_full_rank_of_a_rank_deficient_weight_stays_finite(monkeypatch):
    from residq.methods import lowrank

    monkeypatch.setattr(lowrank, "GRAM_FORM_MIN_K", 8)
    W, G = random_problem(m=6, k=12, seed=2)
    W[3:] = W[:3]  # rank 3: three zero singular values
    A, B, sigma = arhq_factors(W, G, 6)
    assert torch.isfinite(A).all() and torch.isfinite(B).all()
    assert residual_objective(W, B @ A.T, G) == pytest.approx(0.0, abs=1e-9 * float(sigma[0] ** 2))
