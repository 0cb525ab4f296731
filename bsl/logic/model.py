"""A logic-gate network as the training loop sees a network: encoder, gate layers, group-sum
readout, inference modes, and one store per layer for checkpoints and trace snapshots.

Readout: the last layer's outputs form ``classes`` consecutive equal groups; the class
logits are the group sums divided by the temperature ``tau`` (learned as ``log tau``
when ``learn_tau``). Inference modes for logic networks: ``deterministic`` is the
discretised Boolean circuit (argmax gates and wires, what hardware runs); ``stochastic``
is the relaxed network (its softmax outputs; no random draws).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ..network import LayerSpec
from ..stores import WeightStore
from .discrete import DiscreteNet, Encoder
from .layers import LogicLayer, SlotGates, WiredGates


class LogicNet(nn.Module):
    """Encoder + relaxed gate layers + group-sum readout."""

    def __init__(self, encoder: Encoder, layers: list[LogicLayer], classes: int, tau: float,
                 learn_tau: bool) -> None:
        super().__init__()
        if layers[-1].size % classes:
            raise ValueError(f"layers: the last gate layer's {layers[-1].size} gates do not split into "
                             f"{classes} equal class groups; make it a multiple of {classes}")
        self.encoder, self.classes = encoder, classes
        self.gate_modules = nn.ModuleList(layers)
        self.log_tau = nn.Parameter(torch.tensor(math.log(tau)), requires_grad=learn_tau)

    @property
    def gates(self) -> list[LogicLayer]:
        """The gate layers, input to output."""
        return [layer for layer in self.gate_modules if isinstance(layer, LogicLayer)]

    @property
    def tau(self) -> float:
        return float(self.log_tau.detach().exp())

    def encode(self, x: Tensor) -> Tensor:
        """Input bits ``(n, bits)`` as floats (the encoder of :mod:`bsl.logic.discrete`)."""
        return torch.from_numpy(self.encoder.encode(x.detach().cpu().numpy()).astype(np.float32))

    def forward(self, x: Tensor) -> Tensor:
        """Class logits of the relaxed network for raw inputs ``x``."""
        h = self.encode(x).T.contiguous()  # gates first: (bits, batch)
        for layer in self.gates:
            h = layer(h)
        return h.view(self.classes, -1, h.shape[1]).sum(1).T / self.log_tau.exp()

    @torch.no_grad()
    def discrete_scores(self, x: Tensor) -> Tensor:
        """Class scores (true outputs per group) of the discretised network."""
        h = self.encode(x).T.contiguous()
        for layer in self.gates:
            h = layer.forward_discrete(h)
        return h.view(self.classes, -1, h.shape[1]).sum(1).T

    def discrete(self) -> DiscreteNet:
        return DiscreteNet(self.encoder, tuple(layer.discrete() for layer in self.gates), self.classes)


def build_logic_layers(specs: list[LayerSpec], encoder: Encoder, input_shape: tuple[int, ...], wiring: str,
                       candidates: int, wire_logit: float, gen: torch.Generator, *,
                       at_most_inputs: bool = False) -> list[LogicLayer]:
    """Gate layers from a layer spec: ``N`` is a layer of N gates, ``cCkKsS`` a CompactLogic
    logic convolution of C channels over K x K windows (``wiring='slots'`` only).
    ``at_most_inputs``: a top-K layer with fewer inputs than ``candidates`` takes them all
    (for a default K; a K the user chose is checked instead)."""
    if not specs:
        raise ValueError("layers: a logic network needs at least one gate layer, e.g. --layers 2000,1000")
    levels = len(encoder.thresholds)
    image: tuple[int, int, int, int] | None = None
    if len(input_shape) == 3:
        image = (input_shape[0] * levels, input_shape[1], input_shape[2], levels)
    width, layers = encoder.bits, list[LogicLayer]()
    for spec in specs:
        layer: LogicLayer
        if spec.kind == "conv":
            if wiring != "slots":
                raise ValueError("layers: logic convolutions are CompactLogic's: use --rule compactlogic")
            if image is None:
                raise ValueError(f"layers: a logic convolution needs image input, got shape {input_shape}")
            layer = SlotGates(width, 0, gen, candidates=candidates, image=image, channels=spec.size,
                              window=spec.kernel, stride=spec.stride)
            image = (spec.size, *layer.out_hw, 1)  # type: ignore[attr-defined]
        elif wiring == "slots":
            layer = SlotGates(width, spec.size, gen, candidates=candidates)
            image = None
        else:
            k = min(candidates, width) if at_most_inputs else candidates
            layer = WiredGates(width, spec.size, wiring, gen, candidates=k, wire_logit=wire_logit)
            image = None
        layers.append(layer)
        width = layer.size
    return layers


class GateStore(WeightStore):
    """A logic layer's parameters as the loop stores them: checkpointed with the run,
    snapshotted as per-row choice entropies (bits, shape ``(1, rows)``)."""

    kind = "logic"
    arrays = 0

    def __init__(self, layer: LogicLayer) -> None:
        self.layer = layer
        self.rows, self.cols = 1, int(next(iter(layer.entropies().values())).numel())
        self._reads = 0

    def forward(self, x: Tensor) -> Tensor:
        raise TypeError("a logic layer is not a weight matrix")

    def backward(self, d: Tensor) -> Tensor:
        raise TypeError("a logic layer is not a weight matrix")

    def weights(self) -> Tensor:
        raise TypeError("a logic layer is not a weight matrix")

    def count_pass(self, samples: int) -> None:
        self._reads += samples

    def reads(self) -> tuple[int, int]:
        return self._reads, 0

    def description(self) -> dict[str, Any]:
        return {"kind": "logic", "wiring": self.layer.wiring, "gates": self.layer.size}

    def snapshot(self) -> dict[str, np.ndarray]:
        return {name: e.double().cpu().numpy()[None, :] for name, e in self.layer.entropies().items()}

    def state_dict(self) -> dict[str, Any]:
        return {"module": {k: v.clone() for k, v in self.layer.state_dict().items()}, "reads": self._reads}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            for key, value in self.layer.state_dict().items():  # in place: the optimizer keeps its params
                value.copy_(state["module"][key])
        self._reads = int(state["reads"])


class LogicLayerView:
    """One gate layer as the loop describes it."""

    def __init__(self, layer: LogicLayer) -> None:
        self.layer, self.store = layer, GateStore(layer)
        self.kind = "logic"

    def describe(self) -> str:
        return f"logic {self.layer.inputs}->{self.layer.size} gates, {self.layer.describe_wiring()}"

    def facts(self) -> dict[str, Any]:
        return {**self.layer.facts(), "describe": self.describe()}


class LogicModel:
    """The loop's view of a :class:`LogicNet` (``layers``, ``stores``, ``predict``)."""

    def __init__(self, net: LogicNet, input_shape: tuple[int, ...]) -> None:
        self.net, self.input_shape = net, input_shape
        self.layers = [LogicLayerView(layer) for layer in net.gates]
        self.tau_store = TauStore(net)

    def stores(self) -> list[WeightStore]:
        return [view.store for view in self.layers]

    def describe(self) -> str:
        return "\n".join(view.describe() for view in self.layers)

    @torch.no_grad()
    def predict(self, x: Tensor, mode: str, samples: int, gen: torch.Generator,
                on_pass: Callable[[], None] | None = None) -> Tensor:
        """Scores ``(n, classes)``: ``deterministic`` = the discretised circuit, ``stochastic``
        = the relaxed network's softmax (``samples`` and ``gen`` are not used)."""
        if mode == "deterministic":
            out = self.net.discrete_scores(x)
        elif mode == "stochastic":
            modes = [layer.straight_through for layer in self.net.gates]
            for layer in self.net.gates:
                layer.straight_through = False  # the relaxed network itself
            out = torch.softmax(self.net(x), -1)
            for layer, mode_was in zip(self.net.gates, modes, strict=True):
                layer.straight_through = mode_was
        else:
            raise ValueError(f"inference mode {mode!r}: choose deterministic or stochastic")
        for view in self.layers:
            view.store.count_pass(len(x))  # type: ignore[attr-defined]
        if on_pass is not None:
            on_pass()
        return out


class TauStore:
    """The readout temperature's state (saved by the rule with its optimizer)."""

    def __init__(self, net: LogicNet) -> None:
        self.net = net

    def state_dict(self) -> dict[str, Any]:
        return {"log_tau": self.net.log_tau.detach().clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            self.net.log_tau.copy_(state["log_tau"])
