"""The Manhattan rule (Zamanidoost et al., 2015): backpropagation with analog signals,
then one pulse per synapse in the direction of the gradient's sign.

Forward inputs and activations are analog voltages (DACs), errors are analog through
the transposed read, and each cell gets ``sign(sum_n x_ni delta_nj)`` pulses per batch
(each sent with ``update_probability``). The classic memristor baseline for BSL.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..network import Network
from .base import LearningRule, StepStats, pulse_update, register, step_stats


@register("manhattan")
class Manhattan(LearningRule):
    """Sign-of-gradient pulses on device weights."""

    @torch.no_grad()
    def train_step(self, net: Network, x: Tensor, target: Tensor, gen: torch.Generator) -> StepStats:
        cfg = self.config
        h = x
        fwds, probs = [], []
        for layer in net.layers:
            fwd = layer.forward(h)
            h = torch.sigmoid(fwd.a)
            fwds.append(fwd)
            probs.append(h)
        delta = target - probs[-1]
        for i in range(len(net.layers) - 1, -1, -1):
            layer, fwd = net.layers[i], fwds[i]
            if i > 0:
                p = probs[i - 1]
                below = layer.backward(delta, fwd) * p * (1 - p)
            probability = cfg.update_probability * self.rate_scale
            if i < len(net.layers) - 1:
                probability *= cfg.hidden_update_scale
            pulse_update(
                layer.store, fwd.x, layer.delta_matrix(delta), probability=probability, reduce="sign", gen=gen
            )
            if i > 0:
                delta = below
        return step_stats(probs[-1], target)
