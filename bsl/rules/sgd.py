"""High-precision software baseline: float weights, ordinary backpropagation, SGD.

Same architecture as the device rules (sigmoid units, the same gains and initial
weight law), cross-entropy on sigmoid outputs (output error ``t - p``), update
``W += lr * gain * X^T D / n``. No device is involved.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..layers import Forward, Layer
from ..network import Network
from .base import LearningRule, StepStats, analog_backprop, register, step_stats


@register("sgd")
class SoftwareSGD(LearningRule):
    """Plain minibatch SGD on float weights."""

    uses_devices = False

    @torch.no_grad()
    def train_step(self, net: Network, x: Tensor, target: Tensor, gen: torch.Generator) -> StepStats:
        scale = self.config.lr * self.rate_scale / x.shape[0]

        def update(i: int, layer: Layer, fwd: Forward, delta: Tensor) -> None:
            layer.store.add((scale * layer.gain) * (fwd.x.T @ layer.delta_matrix(delta)))

        return step_stats(analog_backprop(net, x, target, update), target)
