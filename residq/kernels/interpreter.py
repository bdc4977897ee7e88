"""Where the kernels can run on this machine: the GPU, or Triton's CPU interpreter.

With ``TRITON_INTERPRET=1`` set before the kernel modules are imported, Triton runs kernels
on CPU tensors with NumPy (slowly, exactly enough for tests). Triton < 3.7 breaks under
NumPy >= 2.4 as soon as a loop bound is a runtime value (its interpreter calls ``int()`` on a
1-element array); ``interpreter_problem`` detects that with a one-program probe kernel.
"""

from __future__ import annotations

import functools
import os

import torch


def interpreter_active() -> bool:
    """True when ``TRITON_INTERPRET=1`` is set (kernels then run on CPU tensors)."""
    return os.environ.get("TRITON_INTERPRET") == "1"


@functools.lru_cache(maxsize=1)
def interpreter_problem() -> str | None:
    """None if the interpreter runs a kernel with a runtime loop bound, else why it cannot."""
    import triton
    import triton.language as tl
    from triton.runtime.errors import InterpreterError

    @triton.jit
    def _probe(out_ptr, n):
        total = 0
        for i in range(n):
            total += i
        tl.store(out_ptr, total)

    out = torch.zeros(1, dtype=torch.int32)
    try:
        _probe[(1,)](out, 4)
    except InterpreterError as exc:
        return f"Triton {triton.__version__}'s interpreter cannot run loops here: {exc}"
    return None if int(out) == 6 else "Triton's interpreter computed a wrong loop sum"


def kernel_device() -> tuple[torch.device | None, str | None]:
    """(device to run kernels on, None) or (None, reason they cannot run here)."""
    if torch.cuda.is_available():
        return torch.device("cuda"), None
    if not interpreter_active():
        return None, "no CUDA device and TRITON_INTERPRET is not set"
    problem = interpreter_problem()
    return (None, problem) if problem else (torch.device("cpu"), None)
