"""The Manhattan rule (Zamanidoost et al., 2015): backpropagation with analog signals,
then one pulse per synapse in the direction of the gradient's sign.

Forward inputs and activations are analog voltages (DACs), errors are analog through
the transposed read, and each cell gets ``sign(sum_n x_ni delta_nj)`` pulses per batch
(each sent with ``update_probability``). The classic memristor baseline for BSL.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..layers import Forward, Layer
from ..network import Network
from .base import (
    DeviceRuleSettings,
    LearningRule,
    StepStats,
    analog_backprop,
    pulse_update,
    register,
    step_stats,
)


@register("manhattan")
class Manhattan(LearningRule):
    """Sign-of-gradient pulses on device weights."""

    torch_device_types = ("cpu", "cuda")

    settings = DeviceRuleSettings

    @torch.no_grad()
    def train_step(self, net: Network, x: Tensor, target: Tensor, gen: torch.Generator) -> StepStats:
        s = self.config.rule_settings
        assert isinstance(s, DeviceRuleSettings)
        top = len(net.layers) - 1

        def update(i: int, layer: Layer, fwd: Forward, delta: Tensor) -> None:
            probability = s.layer_probability(self.rate_scale, hidden=i < top)
            pulse_update(
                layer.store, fwd.x, layer.delta_matrix(delta), probability=probability, reduce="sign", gen=gen
            )

        return step_stats(analog_backprop(net, x, target, update), target)
