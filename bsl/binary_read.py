"""Boolean weights on binary devices of a crossbar: programming them, and XNOR-popcount reads.

Mapping (documented in ``docs/bold.md``): a Boolean weight ``w`` (T = +1, F = -1) is a
differential pair, ``+1`` = ``G+`` in its on state (``g_max``) and ``G-`` off (``g_min``),
``-1`` the opposite; a Boolean input ``x`` drives its row with ``+v_read`` (T) or
``-v_read`` (F). Column ``j`` then carries ``I_j = v_read (g_max - g_min) sum_i x_i w_ij``
and, since ``xnor(x, w) = (1 + x w) / 2``, the popcount of the XNORs is
``sum_i xnor(x_i, w_ij) = (rows + I_j / (v_read (g_max - g_min))) / 2``. The pair encoding
does the complement: no second row set is driven.
"""

from __future__ import annotations

import torch
from torch import Tensor

from devices import Crossbar

from .stores import CrossbarStore, WeightStore


def check_boolean(x: Tensor, name: str = "x") -> Tensor:
    """``x`` if every entry is -1 or +1; ValueError naming the first other value."""
    bad = (x != 1) & (x != -1)
    if bool(bad.any()):
        raise ValueError(f"{name}: Boolean inputs must be -1 (F) or +1 (T), found {float(x[bad][0])!r}")
    return x


def popcount_read(xbar: Crossbar, x: Tensor) -> Tensor:
    """``sum_i xnor(x_i, w_ij)`` for Boolean inputs ``x`` ``(n, rows)`` in {-1, +1}, from one
    forward read of ``xbar`` (``(n, cols)``, float: read noise and device spread make it
    real-valued; round it for a digital count)."""
    x = check_boolean(x)
    v = xbar.v_read
    g_min, g_max = xbar.g_bounds
    current = xbar.read_forward(x.to(torch.float64) * v)
    return (xbar.rows + current.to(torch.float64) / (v * (g_max - g_min))) / 2


PROGRAM_ROUNDS = 16
"""Program-and-verify rounds of :func:`program_boolean` before a cell counts as misprogrammed."""


def program_boolean(store: WeightStore, signs: Tensor) -> int:
    """Program the Boolean ``signs`` (+-1, ``(rows, cols)``) onto a crossbar store's binary pairs
    (+1: ``G+`` on, ``G-`` off): read the weights, send each cell on the wrong side of half its
    window one pulse pair towards its value (``+1``: SET ``G+`` and RESET ``G-``, as a BOLD flip),
    and again, up to :data:`PROGRAM_ROUNDS` rounds; returns the cells still wrong (a stuck device)."""
    if not isinstance(store, CrossbarStore):
        raise TypeError(f"Boolean weights need crossbar devices, this layer holds {store.kind} weights")
    if store.crossbar.scheme != "push_pull":
        raise ValueError(f"scheme = {store.crossbar.scheme!r}: Boolean weights are written as push_pull "
                         "pulse pairs (SET one device of the pair, RESET the other)")
    want = signs > 0
    direction = torch.where(want, 1, -1).to(torch.int64)
    for attempt in range(PROGRAM_ROUNDS + 1):
        w = store.weights()
        wrong = torch.where(want, w <= 0.5, w >= -0.5)
        if not bool(wrong.any()):
            return 0
        if attempt == PROGRAM_ROUNDS:
            break
        store.pulse(direction * wrong)
    return int(wrong.sum())
