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

import torch
from torch import Tensor

from ..binarize import sign_with_dead_zone, stochastic_binary, stochastic_derivative
from ..network import Network
from .base import LearningRule, StepStats, pulse_update, register, step_stats


@register("bsl")
class BinaryStochasticLearning(LearningRule):
    """The paper's rule on device weights."""

    @torch.no_grad()
    def train_step(self, net: Network, x: Tensor, target: Tensor, gen: torch.Generator) -> StepStats:
        cfg = self.config
        last = len(net.layers) - 1
        h = stochastic_binary(x, gen)
        fwds, probs = [], []
        for i, layer in enumerate(net.layers):
            fwd = layer.forward(h)
            p = torch.sigmoid(fwd.a)
            fwds.append(fwd)
            probs.append(p)
            if i < last:
                h = stochastic_binary(p, gen)
        delta = sign_with_dead_zone(target - probs[-1], cfg.dead_zone)
        if cfg.output_derivative:
            delta = delta * stochastic_derivative(probs[-1], gen)
        for i in range(last, -1, -1):
            layer, fwd = net.layers[i], fwds[i]
            if i > 0:
                error = layer.backward(delta, fwd)
                below = sign_with_dead_zone(error, cfg.hidden_dead_zone) * stochastic_derivative(
                    probs[i - 1], gen
                )
            probability = cfg.update_probability * self.rate_scale * layer.update_scale
            if i < last:
                probability *= cfg.hidden_update_scale
            pulse_update(
                layer.store, fwd.x, layer.delta_matrix(delta),
                probability=probability, reduce=cfg.batch_reduce, gen=gen,
            )
            if i > 0:
                delta = below
        return step_stats(probs[-1], target)
