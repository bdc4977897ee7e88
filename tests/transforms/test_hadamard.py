"""Hadamard matrices: orthogonality for the sizes LLMs use, Paley bases, fallback."""

import pytest
import torch

from residq.transforms.hadamard import hadamard_matrix, hadamard_transform, paley, rotation_matrix


@pytest.mark.parametrize("n", [4, 12, 20, 28, 36, 64, 96, 576, 1536])
def test_orthonormal_with_pm1_entries(n):
    h = hadamard_matrix(n)
    assert h is not None
    assert torch.allclose(h @ h.T, torch.eye(n, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(h.abs() * n**0.5, torch.ones(n, n, dtype=torch.float64))


def test_paley_orders():
    assert paley(12) is not None and paley(36) is not None and paley(28) is not None
    assert paley(10) is None  # not a Hadamard order


def test_fallback_is_deterministic_orthogonal():
    assert hadamard_matrix(18) is None
    q = rotation_matrix(18)
    assert torch.allclose(q @ q.T, torch.eye(18, dtype=torch.float64), atol=1e-12)
    assert torch.equal(q, rotation_matrix(18))


def test_transform_preserves_norm():
    x = torch.randn(3, 576)
    assert torch.allclose(hadamard_transform(x).norm(dim=-1), x.norm(dim=-1), rtol=1e-5)
