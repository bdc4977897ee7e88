"""Seeded subsets for ``--limit``.

``limit=N`` evaluates a random subset of N rows drawn with ``random.Random(seed)`` (seed 0 by
default), returned in file order, so a run is reproducible and the native scorer and the harness
adapter see the same rows. This differs from the harness's own ``--limit``, which takes the first
N rows; the adapter passes these indices to the harness as its ``samples`` argument instead.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import TypeVar

Row = TypeVar("Row")


def subset_indices(n_rows: int, limit: int | None, seed: int = 0) -> list[int]:
    """Sorted indices of the rows to evaluate: all rows when ``limit`` is None or >= n_rows,
    otherwise ``limit`` distinct indices drawn with ``random.Random(seed)``."""
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be a positive number of rows or None, got {limit}")
    if limit is None or limit >= n_rows:
        return list(range(n_rows))
    return sorted(random.Random(seed).sample(range(n_rows), limit))


def take_subset(rows: Sequence[Row], limit: int | None, seed: int = 0) -> list[Row]:
    """The rows picked by ``subset_indices``, in their original order."""
    return [rows[index] for index in subset_indices(len(rows), limit, seed)]
