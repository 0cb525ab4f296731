"""Networks of crossbar layers built from a short layer spec, and their inference modes.

Layer spec: comma-separated hidden layers; the output layer (dense, one unit per
class) is appended automatically. ``256`` is a dense layer of 256 sigmoid units;
``c8k5s2`` a convolution with 8 output channels, a 5x5 kernel and stride 2.
Example: ``c8k5s2,c16k3s2,64``. Every unit is a logistic sigmoid.

Inference modes:

``deterministic``
    activations are not binarized: each layer passes its sigmoid output on, the
    input pixels are applied as they are (a mean-field pass; on hardware this needs
    analog input drivers).
``stochastic``
    the trained network as it runs in BSL: inputs and hidden outputs are binary
    samples; the output probabilities are averaged over ``K`` such passes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from .binarize import stochastic_binary
from .layers import Conv2d, Dense, Layer
from .stores import WeightStore

INFERENCE_MODES = ("deterministic", "stochastic")
_CONV = re.compile(r"^c(\d+)k(\d+)(?:s(\d+))?$")


@dataclass(frozen=True)
class LayerSpec:
    """One hidden layer: ``dense`` with ``size`` units, or ``conv`` with ``size`` channels."""

    kind: str
    size: int
    kernel: int = 0
    stride: int = 1


def parse_layers(spec: str) -> list[LayerSpec]:
    """Parse a layer spec such as ``"256"`` or ``"c8k5s2,64"`` (empty: no hidden layer)."""
    specs: list[LayerSpec] = []
    for item in (s.strip() for s in spec.split(",")):
        if not item:
            continue
        if item.isdigit() and int(item) > 0:
            specs.append(LayerSpec("dense", int(item)))
            continue
        m = _CONV.match(item)
        if m and int(m.group(1)) > 0 and int(m.group(2)) > 0 and int(m.group(3) or 1) > 0:
            specs.append(LayerSpec("conv", int(m.group(1)), int(m.group(2)), int(m.group(3) or 1)))
            continue
        raise ValueError(
            f"layers: cannot read {item!r} in {spec!r}; use positive integers for dense "
            "layers and cOUTkKsS (e.g. c8k5s2) for convolutions"
        )
    if any(a.kind == "dense" and b.kind == "conv" for a, b in zip(specs, specs[1:], strict=False)):
        raise ValueError(f"layers: {spec!r} puts a convolution after a dense layer")
    return specs


StoreFactory = Callable[[int, int, int], WeightStore]
"""``make_store(rows, cols, layer_index)``."""


class Network:
    """A stack of crossbar layers with sigmoid units."""

    def __init__(self, layers: list[Layer], input_shape: tuple[int, ...]) -> None:
        self.layers = layers
        self.input_shape = input_shape

    def stores(self) -> list[WeightStore]:
        """The weight store of every layer, input to output."""
        return [layer.store for layer in self.layers]

    def describe(self) -> str:
        """One line per layer."""
        return "\n".join(layer.describe() for layer in self.layers)

    @torch.no_grad()
    def predict(self, x: Tensor, mode: str, samples: int, gen: torch.Generator,
                on_pass: Callable[[], None] | None = None) -> Tensor:
        """Output probabilities ``(n, classes)`` in the given inference mode; ``on_pass``
        is called after every pass through the network (for progress)."""
        done = on_pass or (lambda: None)
        if mode == "deterministic":
            out = self._pass(x, None)
            done()
            return out
        if mode == "stochastic":
            if samples < 1:
                raise ValueError(f"samples = {samples!r}: must be >= 1")
            total = self._pass(stochastic_binary(x, gen), gen)
            done()
            for _ in range(samples - 1):
                total += self._pass(stochastic_binary(x, gen), gen)
                done()
            return total / samples
        raise ValueError(f"inference mode {mode!r}: choose one of {INFERENCE_MODES}")

    def _pass(self, h: Tensor, gen: torch.Generator | None) -> Tensor:
        for i, layer in enumerate(self.layers):
            h = torch.sigmoid(layer.forward(h).a)
            if gen is not None and i < len(self.layers) - 1:
                h = stochastic_binary(h, gen)
        return h


def build_network(
    specs: list[LayerSpec],
    input_shape: tuple[int, ...],
    n_classes: int,
    make_store: StoreFactory,
    gain_scale: float,
) -> Network:
    """Build hidden layers from ``specs`` plus a dense output layer of ``n_classes`` units."""
    layers: list[Layer] = []
    shape = input_shape
    for index, spec in enumerate([*specs, LayerSpec("dense", n_classes)]):
        if spec.kind == "conv":
            if len(shape) != 3:
                raise ValueError(
                    f"layers: a convolution needs image input (channels, height, width), got {shape}"
                )
            rows = shape[0] * spec.kernel * spec.kernel + 1
            layer: Layer = Conv2d(
                (shape[0], shape[1], shape[2]), spec.size, spec.kernel, spec.stride,
                make_store(rows, spec.size, index), gain_scale,
            )
        else:
            n_in = 1
            for d in shape:
                n_in *= d
            layer = Dense(n_in, spec.size, make_store(n_in + 1, spec.size, index), gain_scale)
        layers.append(layer)
        shape = layer.output_shape
    return Network(layers, input_shape)
