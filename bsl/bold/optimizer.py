"""The Boolean-variation optimizer of BOLD: one accumulator per weight, flips instead of steps.

For each layer, after a backward pass left the weights' variation ``q`` (``X^T Z``, see
:mod:`.layers`): ``m <- beta m + eta q``; a weight flips where the accumulated variation has
the sign of the weight (flipping it then lowers the loss, to first order) and ``|m| >= 1``;
its accumulator resets to 0; then ``beta <- 1 - (fraction of the layer's weights flipped)``.
The accumulators live in the periphery (digital, ``ACCUMULATOR_BITS`` each in the energy model).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

ACCUMULATOR_BITS = 16
"""Bits of one accumulator in the periphery (a fixed-point register; energy model)."""


class BooleanVariation:
    """Accumulators ``m`` and the decay ``beta`` of each of ``shapes``' layers."""

    def __init__(self, shapes: list[tuple[int, int]]) -> None:
        self.m = [torch.zeros(shape) for shape in shapes]
        self.beta = [1.0] * len(shapes)
        self.flips = [0] * len(shapes)
        """Flips ordered so far, per layer."""

    def step(self, index: int, q: Tensor, weights: Tensor, eta: float, *, normalise: bool = False) -> Tensor:
        """Accumulate ``eta q`` into layer ``index`` and return the Boolean mask of the weights to
        flip, given the layer's present weights (their sign is the Boolean value; ``0`` counts as F).
        ``normalise``: ``q`` is first divided by its root mean square over the layer."""
        if q.shape != self.m[index].shape:
            raise ValueError(f"layer {index}: variation of shape {tuple(q.shape)}, accumulators "
                             f"{tuple(self.m[index].shape)}")
        if normalise:
            rms = float(q.square().mean().sqrt())
            q = q / rms if rms > 0 else q
        m = self.m[index]
        m.mul_(self.beta[index]).add_(q, alpha=eta)
        w = torch.where(weights > 0, 1.0, -1.0)
        flip = (torch.sign(m) == w) & (m.abs() >= 1.0)
        m.masked_fill_(flip, 0.0)
        n = int(flip.sum())
        self.beta[index] = 1.0 - n / flip.numel()
        self.flips[index] += n
        return flip

    def state_dict(self) -> dict[str, Any]:
        return {"m": [m.clone() for m in self.m], "beta": list(self.beta), "flips": list(self.flips)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if [tuple(m.shape) for m in state["m"]] != [tuple(m.shape) for m in self.m]:
            raise ValueError("checkpoint accumulators do not match this network's layers")
        self.m = [m.clone() for m in state["m"]]
        self.beta = [float(b) for b in state["beta"]]
        self.flips = [int(n) for n in state["flips"]]
