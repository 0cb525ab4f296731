"""High-precision software baseline: float weights, ordinary backpropagation, SGD.

Same architecture as the device rules (sigmoid units, the same gains and initial
weight law), cross-entropy on sigmoid outputs (output error ``t - p``), update
``W += lr * gain * X^T D / n``. No device is involved.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..layers import Forward, Layer
from ..network import Network
from ..settings import fail
from .base import LearningRule, RuleSettings, StepStats, analog_backprop, register, step_stats


@dataclass(frozen=True)
class SgdSettings(RuleSettings):
    """Settings of the float SGD baseline."""

    lr: float = 1.0
    """Learning rate of the ``sgd`` float baseline (weight units per unit gradient)."""

    def validate(self) -> None:
        super().validate()
        if not (self.lr > 0 and math.isfinite(self.lr)):
            fail("lr", self.lr, "must be a finite number > 0")


@register("sgd")
class SoftwareSGD(LearningRule):
    """Plain minibatch SGD on float weights."""

    torch_device_types = ("cpu", "cuda")

    uses_devices = False
    settings = SgdSettings

    @torch.no_grad()
    def train_step(self, net: Network, x: Tensor, target: Tensor, gen: torch.Generator) -> StepStats:
        s = self.config.rule_settings
        assert isinstance(s, SgdSettings)
        scale = s.lr * self.rate_scale / x.shape[0]

        def update(i: int, layer: Layer, fwd: Forward, delta: Tensor) -> None:
            layer.store.add((scale * layer.gain) * (fwd.x.T @ layer.delta_matrix(delta)))

        return step_stats(analog_backprop(net, x, target, update), target)
