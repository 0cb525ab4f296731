"""The training loop's view of a :class:`.model.BinaryNet`: one store per binary layer (its
latent weights as a ``rows x cols`` crossbar matrix), layer facts, ``predict``; and the saved
network file of a run."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..evaluation import deterministic_probabilities
from ..stores import WeightStore
from .binarize import BinaryConv2d, BinaryLinear
from .model import BinaryNet

NET_FILE = "binary_net.pt"
"""The trained network in a run folder (:func:`save_net` / :func:`load_net`)."""


class LatentStore(WeightStore):
    """A binary layer's latent weights as the loop stores them (snapshot ``weight``: the latent
    values, ``(rows, cols)`` in crossbar order; their signs are the binary weights). The
    parameters themselves are checkpointed by the rule."""

    kind = "binary"
    arrays = 0

    def __init__(self, layer: BinaryConv2d | BinaryLinear) -> None:
        self.layer = layer
        self.rows, self.cols = layer.crossbar_matrix().shape
        self._reads = 0

    def _matrix(self) -> Tensor:
        latent = self.layer.latent.detach()
        return latent.reshape(latent.shape[0], -1).T

    def forward(self, x: Tensor) -> Tensor:
        return x @ self.layer.crossbar_matrix()

    def backward(self, d: Tensor) -> Tensor:
        return d @ self.layer.crossbar_matrix().T

    def weights(self) -> Tensor:
        return self.layer.crossbar_matrix()

    def count_pass(self, samples: int) -> None:
        self._reads += samples

    def reads(self) -> tuple[int, int]:
        return self._reads, 0

    def description(self) -> dict[str, Any]:
        return {"kind": "binary", "rows": self.rows, "cols": self.cols}

    def snapshot(self) -> dict[str, np.ndarray]:
        return {"weight": self._matrix().double().cpu().numpy()}

    def state_dict(self) -> dict[str, Any]:
        return {"reads": self._reads}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._reads = int(state["reads"])


class BinaryLayerView:
    """One binary layer as the loop describes it."""

    def __init__(self, layer: BinaryConv2d | BinaryLinear, positions: int) -> None:
        self.layer, self.store, self.positions = layer, LatentStore(layer), positions
        self.kind = "binary_conv" if isinstance(layer, BinaryConv2d) else "binary_dense"

    def describe(self) -> str:
        if isinstance(self.layer, BinaryConv2d):
            return f"binary conv {self.layer.c_in}->{self.layer.c_out} k{self.layer.kernel}"
        return f"binary dense {self.layer.n_in}->{self.layer.n_out}"

    def facts(self) -> dict[str, Any]:
        return {"kind": self.kind, "describe": self.describe(), "rows": self.store.rows,
                "cols": self.store.cols, "positions": self.positions}


def layer_positions(net: BinaryNet, input_shape: tuple[int, ...]) -> list[int]:
    """Crossbar reads per sample of each binary layer (a convolution: one per output position)."""
    sizes: list[int] = []
    hooks = [layer.register_forward_hook(
        lambda _m, _i, out: sizes.append(int(out[0, 0].numel()) if out.dim() == 4 else 1))
        for layer in net.binary_layers()]
    was = net.training
    net.eval()
    try:
        with torch.no_grad():
            net(torch.zeros((1, *input_shape)))
    finally:
        net.train(was)
        for hook in hooks:
            hook.remove()
    return sizes


class BinaryNetModel:
    """The loop's view of a :class:`BinaryNet` (``layers``, ``stores``, ``predict``)."""

    def __init__(self, net: BinaryNet, input_shape: tuple[int, ...]) -> None:
        self.net, self.input_shape = net, input_shape
        self.layers = [BinaryLayerView(layer, n) for layer, n in
                       zip(net.binary_layers(), layer_positions(net, input_shape), strict=True)]

    def stores(self) -> list[WeightStore]:
        return [view.store for view in self.layers]

    def describe(self) -> str:
        return "\n".join(view.describe() for view in self.layers)

    @torch.no_grad()
    def predict(self, x: Tensor, mode: str, samples: int, gen: torch.Generator,
                on_pass: Callable[[], None] | None = None) -> Tensor:
        """Class probabilities with eval statistics (both modes: the network is deterministic)."""
        out = deterministic_probabilities(self.net, self.net, x, mode)
        for view in self.layers:
            view.store.count_pass(len(x))  # type: ignore[attr-defined]
        if on_pass is not None:
            on_pass()
        return out


def save_net(net: BinaryNet, meta: dict[str, Any], path: Path) -> None:
    """Write the network's state and what rebuilds it (``kind``, ``layers``, ``input_shape``,
    ``classes``, ``slices``)."""
    torch.save({"meta": meta, "state": net.state_dict()}, path)


def load_net(path: Path) -> tuple[BinaryNet, dict[str, Any]]:
    """Rebuild a saved network (eval mode) and return it with its meta data."""
    if not path.is_file():
        raise ValueError(f"{path} not found: a finished boolnet or bireal run folder has {NET_FILE}")
    data = torch.load(path, weights_only=True)
    meta = data["meta"]
    net = BinaryNet(meta["kind"], meta["layers"], tuple(meta["input_shape"]), meta["classes"], meta["slices"],
                    torch.Generator().manual_seed(0))
    net.load_state_dict(data["state"])
    net.eval()
    return net, meta
