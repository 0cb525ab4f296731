"""The learning-rule interface, the registry, and the pulse update shared by device rules."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from ..binarize import stochastic_round
from ..layers import Forward, Layer
from ..network import Network
from ..stores import WeightStore

RULES: dict[str, type[LearningRule]] = {}


def register(name: str) -> Callable[[type[LearningRule]], type[LearningRule]]:
    """Class decorator: make a rule available under ``name``."""

    def deco(cls: type[LearningRule]) -> type[LearningRule]:
        if name in RULES:
            raise ValueError(f"a learning rule named {name!r} is already registered")
        cls.name = name
        RULES[name] = cls
        return cls

    return deco


@dataclass
class StepStats:
    """What one training step reports to the loop."""

    correct: int
    """Samples of the batch whose output argmax was the label."""
    loss: float
    """Mean binary cross-entropy of the output probabilities, summed over classes."""


class LearningRule(ABC):
    """One way of turning a batch into weight changes."""

    name: ClassVar[str] = ""
    uses_devices: ClassVar[bool] = True
    """False for software rules whose weights are float tensors."""

    def __init__(self, config: Any) -> None:
        self.config = config
        self.rate_scale = 1.0

    def start_epoch(self, epoch: int) -> None:
        """Called by the loop before epoch ``epoch`` (0-based): anneals the learning rate
        (``update_probability`` or ``lr``) by ``config.anneal ** epoch``."""
        self.rate_scale = self.config.anneal**epoch

    def state_dict(self) -> dict[str, Any]:
        """The rule's own state for checkpoints (rules with more state extend this)."""
        return {"rate_scale": self.rate_scale}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        self.rate_scale = float(state["rate_scale"])

    @abstractmethod
    def train_step(self, net: Network, x: Tensor, target: Tensor, gen: torch.Generator) -> StepStats:
        """Forward, backward and update on one batch; ``target`` is one-hot ``(n, classes)``."""


def step_stats(p_out: Tensor, target: Tensor) -> StepStats:
    """Accuracy count and loss of a batch's output probabilities."""
    correct = int((p_out.argmax(1) == target.argmax(1)).sum())
    p = p_out.clamp(1e-7, 1 - 1e-7)
    loss = float(-(target * p.log() + (1 - target) * (1 - p).log()).sum(1).mean())
    return StepStats(correct, loss)


def analog_backprop(
    net: Network, x: Tensor, target: Tensor, update: Callable[[int, Layer, Forward, Tensor], None]
) -> Tensor:
    """Ordinary backpropagation with analog signals (sigmoid units, output error ``t - p``).

    Runs the forward pass, then from the top layer down calls ``update(index, layer,
    forward, delta)`` after the error below has been read (so reads see the old
    weights); returns the output probabilities."""
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
        update(i, layer, fwd, delta)
        if i > 0:
            delta = below
    return probs[-1]


def pulse_update(
    store: WeightStore,
    x: Tensor,
    d: Tensor,
    *,
    probability: float,
    reduce: str,
    gen: torch.Generator,
) -> None:
    """Apply the summed per-sample products ``x_i d_j`` as pulse counts.

    ``x`` is the crossbar input matrix ``(n, rows)``, ``d`` the error matrix
    ``(n, cols)``. ``reduce='sum'`` applies ``sum_n x_ni d_nj`` pulses (a mini-batch
    adds its per-sample ternary updates); ``'sign'`` at most one pulse per cell. Each
    count is then scaled by ``probability`` and stochastically rounded, i.e. every
    pulse is sent with that probability (the learning-rate knob of device rules).
    Only the block of rows and columns with any activity is touched.
    """
    rows = torch.nonzero(x.abs().sum(0)).flatten()
    cols = torch.nonzero(d.abs().sum(0)).flatten()
    if rows.numel() == 0 or cols.numel() == 0:
        return
    full = rows.numel() * cols.numel() > 0.5 * store.rows * store.cols
    counts_f = x.T @ d if full else x[:, rows].T @ d[:, cols]
    if reduce == "sign":
        counts_f = torch.sign(counts_f)
    if probability == 1.0:
        counts = torch.round(counts_f).to(torch.int64)
    else:
        counts = stochastic_round(counts_f * probability, gen)
    if full:
        store.pulse(counts)
    else:
        store.pulse(counts, rows, cols)
