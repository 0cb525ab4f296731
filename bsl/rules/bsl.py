"""Binary stochastic learning (Li et al., Adv. Intell. Syst. 2023; arXiv 2304.12866).

1. Inputs and hidden outputs are stochastic binary: 1 with probability equal to the
   activation, so every crossbar input is a read pulse or nothing.
2. The activation derivative is stochastic binary: 1 with probability ``4 p (1 - p)``.
3. Errors keep only their sign: the output error ``t - p`` with a dead zone, the hidden
   errors as the sign of the transposed crossbar read of the ternary error.
4. Step-wise updates: cell ``(i, j)`` receives ``x_i delta_j`` (in {-1, 0, +1}) pulses;
   a mini-batch adds its per-sample products (``batch_reduce='sum'``), batch size 1
   is the hardware-faithful per-sample mode. No high-precision weight is kept anywhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..binarize import sign_with_dead_zone, stochastic_binary, stochastic_derivative
from ..layers import Forward, Layer
from ..network import Network
from ..settings import fail
from .base import (
    BackpropHooks,
    BatchReduce,
    DeviceRuleSettings,
    LearningRule,
    StepStats,
    backprop,
    pulse_update,
    register,
    step_stats,
)


@dataclass(frozen=True)
class BslSettings(DeviceRuleSettings):
    """Settings of binary stochastic learning."""

    batch_reduce: BatchReduce = "sum"
    """How a mini-batch's ternary updates combine: ``sum`` (pulse counts) or ``sign``."""
    dead_zone: float = 0.3
    """Output errors with ``|t - p|`` at or below this are not propagated (BSL)."""
    hidden_dead_zone: float = 0.0
    """Hidden errors (the transposed crossbar read, in gain-scaled weight units) at or below
    this magnitude are not propagated (BSL); 0 = pure sign."""
    output_derivative: bool = False
    """Multiply the output sign error by the binary derivative (BSL)."""

    def validate(self) -> None:
        super().validate()
        if not 0 <= self.dead_zone < 1:
            fail("dead_zone", self.dead_zone, "must lie in [0, 1)")
        if not (self.hidden_dead_zone >= 0 and math.isfinite(self.hidden_dead_zone)):
            fail("hidden_dead_zone", self.hidden_dead_zone, "must be a finite number >= 0")


@register("bsl")
class BinaryStochasticLearning(LearningRule):
    """The paper's rule on device weights: :func:`backprop` with binarizing hooks."""

    torch_device_types = ("cpu", "cuda")

    settings = BslSettings

    @torch.no_grad()
    def train_step(self, net: Network, x: Tensor, target: Tensor, gen: torch.Generator) -> StepStats:
        s = self.config.rule_settings
        assert isinstance(s, BslSettings)
        last = len(net.layers) - 1

        def output_error(t: Tensor, p: Tensor) -> Tensor:
            delta = sign_with_dead_zone(t - p, s.dead_zone)
            if s.output_derivative:
                delta = delta * stochastic_derivative(p, gen)
            return delta

        def hidden_error(error: Tensor, p: Tensor) -> Tensor:
            return sign_with_dead_zone(error, s.hidden_dead_zone) * stochastic_derivative(p, gen)

        def update(i: int, layer: Layer, fwd: Forward, delta: Tensor) -> None:
            probability = s.update_probability * self.rate_scale * layer.update_scale
            if i < last:
                probability *= s.hidden_update_scale
            pulse_update(
                layer.store, fwd.x, layer.delta_matrix(delta),
                probability=probability, reduce=s.batch_reduce, gen=gen,
            )

        hooks = BackpropHooks(lambda h: stochastic_binary(h, gen), output_error, hidden_error)
        return step_stats(backprop(net, x, target, update, hooks), target)
