"""Which implementation of the pulse update a simulated array uses.

``torch``: the readable reference (``SimulatedCrossbar._step``), on any torch device.
``numba``: the fused compiled kernel (:mod:`devices.sim.kernel`), CPU only.
``auto`` (default): ``numba`` on the CPU where Numba imports, else ``torch``; a missing
Numba is logged once. A run may also force a choice with the environment variable
``BSL_KERNEL`` (``auto``, ``numba`` or ``torch``) where the code does not pass one.
"""

from __future__ import annotations

import functools
import logging
import os
from typing import Any

import numpy as np
import torch

KERNELS = ("auto", "numba", "torch")
KERNEL_ENV = "BSL_KERNEL"
_log = logging.getLogger(__name__)


@functools.cache
def numba_problem() -> str:
    """Why the compiled kernel cannot be used here ('' if it can)."""
    try:
        import numba  # noqa: F401

        from . import kernel  # noqa: F401
    except ImportError as err:  # Numba (or llvmlite) missing or broken
        return f"Numba is not importable ({err})"
    return ""


@functools.cache
def _log_fallback(problem: str) -> None:
    _log.warning("crossbar pulse updates use the torch reference: %s (pip install numba for the "
                 "compiled kernel)", problem)


def resolve_kernel(requested: str | None, device: torch.device, dtype: torch.dtype) -> str:
    """``numba`` or ``torch`` for a request (None: ``$BSL_KERNEL`` or ``auto``); ValueError
    where ``numba`` is forced but cannot run."""
    choice = requested if requested is not None else os.environ.get(KERNEL_ENV, "auto")
    if choice not in KERNELS:
        raise ValueError(f"kernel = {choice!r}: must be one of {KERNELS}")
    if choice == "torch":
        return "torch"
    if device.type != "cpu" or dtype != torch.float32:
        if choice == "numba":
            raise ValueError(f"kernel = 'numba' runs on the CPU in float32; this array is "
                             f"on {device} in {dtype}: use kernel='torch' (or 'auto')")
        return "torch"
    problem = numba_problem()
    if problem:
        if choice == "numba":
            raise ValueError(f"kernel = 'numba' cannot run: {problem}")
        _log_fallback(problem)
        return "torch"
    return "numba"


def kernel_key(seed: int) -> np.ndarray:
    """The counter-based generator's key (two 32-bit words as uint64) for an array seed."""
    words = np.random.SeedSequence([int(seed), 0x6B65726E]).generate_state(2)
    return words.astype(np.uint64)


def set_threads() -> int:
    """Give the kernel (in the calling thread) torch's thread count; returns torch's count."""
    import numba

    threads = torch.get_num_threads()
    wanted = max(1, min(threads, numba.config.NUMBA_NUM_THREADS))  # type: ignore[attr-defined]
    if numba.get_num_threads() != wanted:
        numba.set_num_threads(wanted)
    return threads


def restore_threads(threads: int) -> None:
    """Give torch back its thread count: where Numba and torch share one OpenMP runtime,
    starting Numba's pool resets the runtime's (hence torch's) thread count."""
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def as_numpy(t: torch.Tensor) -> Any:
    """A flat numpy view of a contiguous CPU tensor (shares memory)."""
    return t.detach().reshape(-1).numpy()
