"""What a method returns for one linear layer: plain tensors, no nn.Module.

``nn.QuantLinear.from_quantized`` turns it into a module. The forward it describes is

    X_t = (X[..., input_perm] / input_scale)               # transforms kept online
    Y   = Q_x(X_t) Q_w(W_t)ᵀ + (X_t A) Bᵀ + bias            # low-rank branch sees unquantized X_t

where ``Q_x`` may append ``augmented`` residual channels (ARCQuant) and the weight codes then
have ``K + augmented`` columns.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from residq.formats.spec import FormatSpec, QuantizedTensor


@dataclass
class QuantizedLayer:
    """A quantized linear layer as plain tensors.

    Attributes:
        weight: quantized weight, codes ``(M, K + augmented)``.
        bias: float ``(M,)`` or None.
        act_spec: activation format, or None (weight-only).
        act_global_scale: NVFP4 static activation global scale (float32 scalar) or None.
        input_perm: int64 ``(K,)`` channel order applied to X before quantization, or None.
        input_scale: float32 ``(K,)``: X is divided by it (unfolded smoothing), or None.
        augmented: ARCQuant's number of residual channels ``s`` (0 = none).
        lowrank_a: ``(K, r)`` and lowrank_b: ``(M, r)`` of the branch ``(X A) Bᵀ``, or None.
        info: numbers for reports (rank, energy kept, s, seconds, ...).
    """

    weight: QuantizedTensor
    bias: torch.Tensor | None = None
    act_spec: FormatSpec | None = None
    act_global_scale: torch.Tensor | None = None
    input_perm: torch.Tensor | None = None
    input_scale: torch.Tensor | None = None
    augmented: int = 0
    lowrank_a: torch.Tensor | None = None
    lowrank_b: torch.Tensor | None = None
    info: dict = field(default_factory=dict)
