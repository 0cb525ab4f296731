"""High-precision software baseline: float weights, ordinary backpropagation, SGD.

Same architecture as the device rules (sigmoid units, the same gains and initial
weight law), cross-entropy on sigmoid outputs (output error ``t - p``), update
``W += lr * gain * X^T D / n``. No device is involved.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..network import Network
from .base import LearningRule, StepStats, register, step_stats


@register("sgd")
class SoftwareSGD(LearningRule):
    """Plain minibatch SGD on float weights."""

    uses_devices = False

    @torch.no_grad()
    def train_step(self, net: Network, x: Tensor, target: Tensor, gen: torch.Generator) -> StepStats:
        lr = self.config.lr * self.rate_scale
        h = x
        fwds, probs = [], []
        for layer in net.layers:
            fwd = layer.forward(h)
            h = torch.sigmoid(fwd.a)
            fwds.append(fwd)
            probs.append(h)
        delta = target - probs[-1]
        n = x.shape[0]
        for i in range(len(net.layers) - 1, -1, -1):
            layer, fwd = net.layers[i], fwds[i]
            if i > 0:
                p = probs[i - 1]
                below = layer.backward(delta, fwd) * p * (1 - p)
            layer.store.add((lr * layer.gain / n) * (fwd.x.T @ layer.delta_matrix(delta)))
            if i > 0:
                delta = below
        return step_stats(probs[-1], target)
