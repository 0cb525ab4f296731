"""The BOLD network (Boolean layers on crossbars) and the training loop's view of it."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from ..evaluation import deterministic_probabilities
from ..stores import WeightStore
from .layers import BooleanLayer, boolean_sign


def encode_inputs(x: Tensor, threshold: float) -> Tensor:
    """Features as Boolean read pulses: T (+1) where ``x >= threshold``, else F (-1); ``(n, features)``."""
    return boolean_sign(x.reshape(x.shape[0], -1) - threshold)


def random_boolean(rows: int, cols: int, gen: torch.Generator) -> Tensor:
    """A uniformly random ``rows x cols`` matrix of +-1."""
    return torch.where(torch.rand((rows, cols), generator=gen) < 0.5, 1.0, -1.0)


class BoldNet(nn.Module):
    """Boolean layers input to output; inputs thresholded at ``input_threshold``."""

    def __init__(self, layers: list[BooleanLayer], input_threshold: float) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(layers)
        self.input_threshold = input_threshold

    @property
    def boolean_layers(self) -> list[BooleanLayer]:
        return [layer for layer in self.blocks if isinstance(layer, BooleanLayer)]

    def forward(self, x: Tensor) -> Tensor:
        """Training pass (batch statistics, autograd signals): class scores ``(n, classes)``."""
        h = encode_inputs(x, self.input_threshold)
        for layer in self.boolean_layers:
            h = layer(h)
        return h

    @torch.no_grad()
    def infer(self, x: Tensor) -> Tensor:
        """The deployed network: crossbar reads, comparators, the output's folded affine scores."""
        h = encode_inputs(x, self.input_threshold)
        for layer in self.boolean_layers:
            h = layer.infer(h)
        return h

    def real_parameters(self) -> list[nn.Parameter]:
        """The real-valued parameters (the normalisations' scales and offsets)."""
        return [p for layer in self.boolean_layers for p in layer.norm.parameters()]


class BoldModel:
    """The loop's view of a :class:`BoldNet` (``layers``, ``stores``, ``predict``)."""

    def __init__(self, net: BoldNet, input_shape: tuple[int, ...]) -> None:
        self.net, self.input_shape = net, input_shape
        self.layers = net.boolean_layers

    def stores(self) -> list[WeightStore]:
        return [layer.store for layer in self.layers]

    def describe(self) -> str:
        return "\n".join(layer.describe() for layer in self.layers)

    @torch.no_grad()
    def predict(self, x: Tensor, mode: str, samples: int, gen: torch.Generator,
                on_pass: Callable[[], None] | None = None) -> Tensor:
        """Class probabilities of the deployed network (both modes: it has no randomness of its
        own; read noise comes from the devices)."""
        return deterministic_probabilities(self.net, self.net.infer, x, mode, on_pass)

