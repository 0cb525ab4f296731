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
from typing import Any, Literal

import torch
from torch import Tensor

from ..accumulator import accumulate_and_fire
from ..binarize import sampled_one_hot, sign_with_dead_zone, stochastic_binary, stochastic_derivative
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

StepUpdate = Literal["probabilistic", "accumulate"]
OutputError = Literal["sign", "softmax_sample"]


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
    output_error: OutputError = "sign"
    """The output error: ``sign`` (sigmoid outputs, ``sign(t - p)`` with ``dead_zone``) or
    ``softmax_sample`` (paper 003's authors: softmax outputs, error ``t - onehot`` of one
    class drawn from the softmax: ternary, unbiased, no dead zone)."""
    update: StepUpdate = "probabilistic"
    """How ternary products become pulses: ``probabilistic`` (each is a pulse sent with
    probability ``update_probability``) or ``accumulate`` (paper 003's authors: a signed
    accumulator per synapse, kept across batches, adds ``update_probability`` times each
    product; a synapse whose accumulator reaches ``accumulator_threshold`` gets one pulse
    and keeps the remainder; see :mod:`bsl.accumulator`)."""
    accumulator_threshold: float = 64.0
    """``update = 'accumulate'``: the accumulator magnitude that fires one pulse, in
    ternary products (the authors': 64 with batch 64)."""

    def validate(self) -> None:
        super().validate()
        if not (self.accumulator_threshold > 0 and math.isfinite(self.accumulator_threshold)):
            fail("accumulator_threshold", self.accumulator_threshold, "must be a finite number > 0")
        if not 0 <= self.dead_zone < 1:
            fail("dead_zone", self.dead_zone, "must lie in [0, 1)")
        if not (self.hidden_dead_zone >= 0 and math.isfinite(self.hidden_dead_zone)):
            fail("hidden_dead_zone", self.hidden_dead_zone, "must be a finite number >= 0")


@register("bsl")
class BinaryStochasticLearning(LearningRule):
    """The paper's rule on device weights: :func:`backprop` with binarizing hooks."""

    torch_device_types = ("cpu", "cuda")

    settings = BslSettings

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self.accumulators: list[Tensor | None] = []
        """Per layer, the signed accumulators of ``update = 'accumulate'`` (rows x cols)."""

    @torch.no_grad()
    def train_step(self, net: Network, x: Tensor, target: Tensor, gen: torch.Generator) -> StepStats:
        s = self.config.rule_settings
        assert isinstance(s, BslSettings)
        last = len(net.layers) - 1

        def output_error(t: Tensor, p: Tensor) -> Tensor:
            if s.output_error == "softmax_sample":
                delta = t - sampled_one_hot(p, gen)
            else:
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
            if s.update == "accumulate":
                self._accumulate(i, layer, fwd.x, layer.delta_matrix(delta), probability)
                return
            pulse_update(
                layer.store, fwd.x, layer.delta_matrix(delta),
                probability=probability, reduce=s.batch_reduce, gen=gen,
            )

        out = (lambda a: torch.softmax(a, -1)) if s.output_error == "softmax_sample" else torch.sigmoid
        hooks = BackpropHooks(lambda h: stochastic_binary(h, gen), output_error, hidden_error, out)
        return step_stats(backprop(net, x, target, update, hooks), target)

    def _accumulate(self, i: int, layer: Layer, x: Tensor, d: Tensor, scale: float) -> None:
        """The authors' step-wise update of layer ``i`` (one pulse where the accumulator fires)."""
        s = self.config.rule_settings
        while len(self.accumulators) <= i:
            self.accumulators.append(None)
        acc = self.accumulators[i]
        if acc is None:
            acc = self.accumulators[i] = x.new_zeros((layer.store.rows, layer.store.cols))
        pulses = accumulate_and_fire(acc, scale * (x.T @ d), s.accumulator_threshold)
        rows = torch.nonzero(pulses.abs().sum(1)).flatten()
        cols = torch.nonzero(pulses.abs().sum(0)).flatten()
        if rows.numel() and cols.numel():
            layer.store.pulse(pulses[rows][:, cols], rows, cols)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(),
                "accumulators": [None if a is None else a.clone() for a in self.accumulators]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.accumulators = [None if a is None else a.clone() for a in state.get("accumulators", [])]
