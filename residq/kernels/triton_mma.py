"""``mma``: ``tl.dot`` with fp32 accumulation that also computes right in Triton's interpreter.

Triton's CPU interpreter (used by the CPU test suite) multiplies bf16 tiles wrongly (it treats
the stored bits as integers). Kernels launched on CPU tensors therefore pass ``F32_DOT=True``,
which upcasts both operands to float32 and asks for an IEEE product; on the GPU ``F32_DOT`` is
False and the tile product runs on the tensor cores in the operands' own dtype.
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def mma(a, b, acc, F32_DOT: tl.constexpr):
    """``acc + a @ b``: ``a`` ``[M, K]``, ``b`` ``[K, N]`` (fp16/bf16, or int8 with an int32 ``acc``)."""
    if F32_DOT:
        return tl.dot(a.to(tl.float32), b.to(tl.float32), acc, input_precision="ieee")
    else:
        return tl.dot(a, b, acc, out_dtype=acc.dtype)
