"""Calibration statistics of one linear-layer input, accumulated in float64.

One ``InputStats`` serves every linear that reads the same input (q/k/v share one, gate/up
share one). It holds:

* ``xtx``: ``H = XᵀX`` (K x K, float64); GPTQ uses ``2H``, the factor does not matter.
* ``absmax`` / ``abssum``: per-channel max and sum of ``|X|`` (K, float64), for reordering,
  smoothing and AWQ.
* optionally, under an activation quantizer ``Q_x``: ``G = EᵀE`` with ``E = X - Q_x(X)``,
  ``Ĥ_q = Q_x(X)ᵀ Q_x(X)`` (ARHQ, ALGORITHMS.md section 4) and the cross moment
  ``Xᵀ Q_x(X)`` (the branch refit, ``lowrank.refit_factors``);
* a uniform random sample of up to ``sample_rows`` rows of X (float32) for search-based
  methods and held-out error measurements.

Memory: each K x K float64 matrix costs ``8 K²`` bytes (K = 4096: 128 MiB; K = 14336: 1.6 GiB),
so ARHQ's four matrices on a 14336-wide input take 6.6 GiB (on the accelerator while that
block is calibrated, then freed). Rows are processed in chunks of
``chunk_rows`` so the transient memory is ``chunk_rows x K`` floats whatever N is.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

ActQuantizer = Callable[[torch.Tensor], torch.Tensor]


class CalibrationDataError(ValueError):
    """Calibration activations are unusable (NaN/Inf, or none were seen)."""


class InputStats:
    """Running statistics of one layer input ``X`` (N tokens x K channels)."""

    def __init__(
        self,
        k: int,
        name: str = "",
        act_quantizer: ActQuantizer | None = None,
        sample_rows: int = 2048,
        chunk_rows: int = 4096,
        seed: int = 0,
    ) -> None:
        self.k = k
        self.name = name
        self.n = 0
        self.act_quantizer = act_quantizer
        self.sample_rows = sample_rows
        self.chunk_rows = chunk_rows
        self.xtx: torch.Tensor | None = None
        self.absmax: torch.Tensor | None = None
        self.abssum: torch.Tensor | None = None
        self.residual_gram: torch.Tensor | None = None  # G * N
        self.quantized_gram: torch.Tensor | None = None  # Ĥ_q
        self.cross_gram: torch.Tensor | None = None  # Xᵀ Q_x(X)
        self.sample: torch.Tensor | None = None
        self._sample_keys: torch.Tensor | None = None
        self._generator = torch.Generator().manual_seed(seed)

    def update(self, x: torch.Tensor) -> None:
        """Add activations ``x`` of shape ``(..., K)`` (any float dtype, any device)."""
        if x.shape[-1] != self.k:
            raise ValueError(f"{self.name}: expected inputs with {self.k} channels, got {tuple(x.shape)}")
        rows = x.detach().reshape(-1, self.k)
        if not torch.isfinite(rows).all():
            raise CalibrationDataError(
                f"{self.name}: calibration activations contain NaN or Inf "
                "(check the model's weights and the calibration text)"
            )
        for chunk in rows.split(self.chunk_rows):
            self._accumulate(chunk)
        self._update_sample(rows)

    def _accumulate(self, chunk: torch.Tensor) -> None:
        x64 = chunk.to(torch.float64)
        if self.xtx is None:
            self._allocate(x64.device)
        self.xtx += x64.T @ x64
        self.absmax = torch.maximum(self.absmax, x64.abs().amax(dim=0))
        self.abssum += x64.abs().sum(dim=0)
        self.n += chunk.shape[0]
        if self.act_quantizer is not None:
            xq = self.act_quantizer(chunk).to(torch.float64)
            err = x64 - xq
            self.residual_gram += err.T @ err
            self.quantized_gram += xq.T @ xq
            self.cross_gram += x64.T @ xq

    def _allocate(self, device: torch.device) -> None:
        k = self.k
        self.xtx = torch.zeros(k, k, dtype=torch.float64, device=device)
        self.absmax = torch.zeros(k, dtype=torch.float64, device=device)
        self.abssum = torch.zeros(k, dtype=torch.float64, device=device)
        if self.act_quantizer is not None:
            self.residual_gram = torch.zeros_like(self.xtx)
            self.quantized_gram = torch.zeros_like(self.xtx)
            self.cross_gram = torch.zeros_like(self.xtx)

    def _update_sample(self, rows: torch.Tensor) -> None:
        """Keep a uniform sample of rows: each row gets a random key, the largest keys stay.

        Rows whose key cannot enter the sample (below the smallest kept key, or outside the
        chunk's own top ``sample_rows``) are dropped before anything leaves the device, so
        only candidate rows are copied to the CPU.
        """
        if self.sample_rows <= 0:
            return
        keys = torch.rand(rows.shape[0], generator=self._generator)
        if self.sample is not None and self.sample.shape[0] >= self.sample_rows:
            enters = keys > self._sample_keys.min()
            keys, rows = keys[enters], rows[enters.to(rows.device)]
        if keys.shape[0] > self.sample_rows:
            top = keys.topk(self.sample_rows).indices.sort().values
            keys, rows = keys[top], rows[top.to(rows.device)]
        cand = rows.float().cpu()
        if self.sample is not None:
            cand = torch.cat([self.sample, cand])
            keys = torch.cat([self._sample_keys, keys])
        if cand.shape[0] > self.sample_rows:
            keep = keys.topk(self.sample_rows).indices.sort().values
            cand, keys = cand[keep], keys[keep]
        self.sample, self._sample_keys = cand, keys

    def require_data(self) -> None:
        if self.n == 0:
            raise CalibrationDataError(f"{self.name}: no calibration activations were collected")

    @property
    def hessian(self) -> torch.Tensor:
        """``XᵀX`` (K, K) float64."""
        self.require_data()
        return self.xtx

    @property
    def residual_covariance(self) -> torch.Tensor:
        """ARHQ's ``G = EᵀE / N`` (K, K) float64."""
        self.require_data()
        if self.residual_gram is None:
            raise RuntimeError(f"{self.name}: statistics were collected without an activation quantizer")
        return self.residual_gram / self.n

    @property
    def absmean(self) -> torch.Tensor:
        """Per-channel mean ``|X|`` (K,) float64."""
        self.require_data()
        return self.abssum / self.n

    def to(self, device: torch.device | str) -> InputStats:
        for attr in ("xtx", "absmax", "abssum", "residual_gram", "quantized_gram", "cross_gram"):
            value = getattr(self, attr)
            if value is not None:
                setattr(self, attr, value.to(device))
        return self
