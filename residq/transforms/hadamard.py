"""Orthogonal Hadamard matrices of the sizes LLMs use, and the online Hadamard transform.

QuaRot (Ashkboos et al. 2024) rotates with ``R = H / sqrt(n)``. Hidden sizes are often not
powers of two (SmolLM2: 576 = 36 · 16, 1536 = 12 · 128), so ``hadamard_matrix(n)`` builds
``H_base ⊗ H_{2^k}`` with ``H_{2^k}`` Sylvester's construction and ``H_base`` a Paley matrix:

* Paley I (order ``q + 1``, prime ``q ≡ 3 mod 4``): 4, 8, 12, 20, 24, 32, 44, 48, 60, ...
* Paley II (order ``2 (q + 1)``, prime ``q ≡ 1 mod 4``): 12, 28, 36, 60, 76, ...

When no such factorization exists (e.g. n = 9 · 2^k... never a Hadamard order), the documented
fallback ``rotation_matrix`` returns a random orthogonal matrix (QR of a Gaussian matrix with a
fixed seed, signs fixed so the result is deterministic); it is exact in full precision but does
not spread outliers as evenly as a Hadamard.
"""

from __future__ import annotations

import functools

import torch

_BASE_LIMIT = 256  # largest Paley base order tried


def _is_prime(q: int) -> bool:
    return q >= 2 and all(q % d for d in range(2, int(q**0.5) + 1))


def _is_power_of_two(n: int) -> bool:
    return n >= 1 and n & (n - 1) == 0


def sylvester(n: int) -> torch.Tensor:
    """Sylvester Hadamard matrix of order ``n`` (a power of two), entries ±1, float64."""
    if not _is_power_of_two(n):
        raise ValueError(f"Sylvester's construction needs a power of two, got {n}")
    h = torch.ones(1, 1, dtype=torch.float64)
    while h.shape[0] < n:
        h = torch.cat([torch.cat([h, h], 1), torch.cat([h, -h], 1)], 0)
    return h


def _jacobsthal(q: int) -> torch.Tensor:
    """``Q[i, j] = χ(j - i)`` with χ the quadratic character mod prime ``q`` (q x q float64)."""
    squares = {(x * x) % q for x in range(1, q)}
    chi = torch.tensor([0.0] + [1.0 if a in squares else -1.0 for a in range(1, q)], dtype=torch.float64)
    idx = torch.arange(q)
    return chi[(idx.unsqueeze(0) - idx.unsqueeze(1)) % q]


def paley(n: int) -> torch.Tensor | None:
    """A ±1 Hadamard matrix of order ``n`` by Paley I or II, or None if neither applies."""
    if _is_prime(n - 1) and (n - 1) % 4 == 3:
        q = n - 1
        s = torch.zeros(n, n, dtype=torch.float64)
        s[0, 1:], s[1:, 0], s[1:, 1:] = 1.0, -1.0, _jacobsthal(q)
        return s + torch.eye(n, dtype=torch.float64)
    if n % 2 == 0 and _is_prime(n // 2 - 1) and (n // 2 - 1) % 4 == 1:
        q = n // 2 - 1
        s = torch.zeros(q + 1, q + 1, dtype=torch.float64)
        s[0, 1:], s[1:, 0], s[1:, 1:] = 1.0, 1.0, _jacobsthal(q)
        a = torch.tensor([[1.0, -1.0], [-1.0, -1.0]], dtype=torch.float64)
        b = torch.tensor([[1.0, 1.0], [1.0, -1.0]], dtype=torch.float64)
        return torch.kron(s, a) + torch.kron(torch.eye(q + 1, dtype=torch.float64), b)
    return None


@functools.lru_cache(maxsize=32)
def _hadamard_pm1(n: int) -> torch.Tensor | None:
    if _is_power_of_two(n):
        return sylvester(n)
    power = 1
    while n % (2 * power) == 0:
        power *= 2
    for two_factor in [power // 2**i for i in range(power.bit_length())]:
        base = n // two_factor
        if base > _BASE_LIMIT:
            break
        h = paley(base)
        if h is not None:
            return torch.kron(h, sylvester(two_factor))
    return None


def hadamard_matrix(n: int) -> torch.Tensor | None:
    """Orthonormal Hadamard ``H / sqrt(n)`` (n, n) float64, or None when not constructible."""
    h = _hadamard_pm1(n)
    return None if h is None else h / n**0.5


@functools.lru_cache(maxsize=32)
def rotation_matrix(n: int, seed: int = 0) -> torch.Tensor:
    """``hadamard_matrix(n)``, else a seeded random orthogonal matrix (n, n) float64."""
    h = hadamard_matrix(n)
    if h is not None:
        return h
    gaussian = torch.randn(n, n, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    q, r = torch.linalg.qr(gaussian)
    return q * torch.sign(torch.diagonal(r)).unsqueeze(0)


_DEVICE_CACHE: dict[tuple[int, str, torch.dtype], torch.Tensor] = {}


def hadamard_transform(x: torch.Tensor) -> torch.Tensor:
    """``x @ R`` with ``R = rotation_matrix(K)`` along the last dimension.

    Args:
        x: (..., K) float tensor.

    Returns:
        (..., K) in ``x``'s dtype (the product runs in ``x``'s dtype, fp32 accumulation).
    """
    k = x.shape[-1]
    key = (k, str(x.device), x.dtype)
    if key not in _DEVICE_CACHE:
        _DEVICE_CACHE[key] = rotation_matrix(k).to(device=x.device, dtype=x.dtype)
    return x @ _DEVICE_CACHE[key]
