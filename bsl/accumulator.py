"""The step-wise update of paper 003's authors: a signed accumulator per synapse.

Per layer, every synapse keeps a signed sum of its ternary products ``x_i delta_j``
(binary input times sign error times binary derivative) across batches. After each
update, a synapse whose accumulator reached ``threshold`` in magnitude receives one
pulse in that direction, and the accumulator keeps the remainder: it is reduced by
``threshold`` times the integer part (toward zero) of ``accumulator / threshold``.
Threshold in units of ternary products (the authors': 64, with batch 64).
"""

from __future__ import annotations

import torch
from torch import Tensor


def accumulate_and_fire(accumulator: Tensor, products: Tensor, threshold: float) -> Tensor:
    """Add ``products`` to ``accumulator`` (in place, same shape) and return the pulses:
    ``sign(trunc(accumulator / threshold))`` as int64, one pulse at most per synapse;
    the accumulator keeps ``accumulator - threshold * trunc(accumulator / threshold)``."""
    if not threshold > 0:
        raise ValueError(f"threshold = {threshold!r}: must be > 0")
    if accumulator.shape != products.shape:
        raise ValueError(f"products: expected shape {tuple(accumulator.shape)}, got {tuple(products.shape)}")
    accumulator += products
    whole = torch.trunc(accumulator / threshold)
    accumulator -= threshold * whole
    return torch.sign(whole).to(torch.int64)
