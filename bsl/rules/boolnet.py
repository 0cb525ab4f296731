"""BoolNet (Guo et al. 2021) and its Bi-Real-style baseline: binary CNNs trained in software with
latent weights and a straight-through estimator (:mod:`bsl.boolnet`).

``boolnet``: binary weights, activations, feature maps (multi-slice) and Boolean shortcuts.
``bireal``: the same channels with 32-bit feature maps and shortcuts (the energy reference).
``--layers 32,32,64``: stem channels, then one block per entry. Adam on the latent weights and
the batch norms (latent weights clipped to [-1, 1]); cross-entropy. The trained network is
saved to ``RUN_DIR/binary_net.pt``; ``bsl deploy-binary`` puts its weights on binary crossbars.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from ..boolnet.adapter import NET_FILE, BinaryNetModel, save_net
from ..boolnet.model import BinaryNet
from ..seeds import Seeds
from ..settings import fail
from .base import LearningRule, RuleSettings, StepStats, register, set_learning_rate


@dataclass(frozen=True)
class BinaryNetSettings(RuleSettings):
    """Settings of the boolnet and bireal rules."""

    binary_lr: float = 0.003
    """boolnet/bireal: Adam learning rate on the latent weights and batch norms."""
    slices: int = 4
    """boolnet/bireal: binary slices of multi-slice binarization (input and BoolNet blocks), >= 1."""

    def validate(self) -> None:
        super().validate()
        if not (math.isfinite(self.binary_lr) and self.binary_lr > 0):
            fail("binary_lr", self.binary_lr, "must be a finite number > 0")
        if self.slices < 1:
            fail("slices", self.slices, "must be >= 1 (k binary slices)")


class BinaryNetRule(LearningRule):
    """Adam with a straight-through estimator on a :class:`BinaryNet` of kind ``kind``."""

    uses_devices = False
    settings = BinaryNetSettings
    kind: ClassVar[str] = "boolnet"

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self.model: BinaryNetModel | None = None
        self.adam: torch.optim.Optimizer | None = None
        self.meta: dict[str, Any] = {}

    @property
    def s(self) -> BinaryNetSettings:
        s = self.config.rule_settings
        assert isinstance(s, BinaryNetSettings)
        return s

    def build_model(self, input_shape: tuple[int, ...], n_classes: int) -> BinaryNetModel:
        gen = torch.Generator().manual_seed(Seeds(self.config.seed).weights_init)
        net = BinaryNet(self.kind, self.config.layers, input_shape, n_classes, self.s.slices, gen)
        self.meta = {"kind": self.kind, "layers": self.config.layers, "input_shape": list(input_shape),
                     "classes": n_classes, "slices": self.s.slices}
        self.model = BinaryNetModel(net, input_shape)
        self.adam = torch.optim.Adam(net.parameters(), lr=self.s.binary_lr)
        return self.model

    def start_epoch(self, epoch: int) -> None:
        super().start_epoch(epoch)
        set_learning_rate(self.adam, self.s.binary_lr * self.rate_scale)

    def train_step(self, net: Any, x: Tensor, target: Tensor, gen: torch.Generator) -> StepStats:
        assert self.model is not None and self.adam is not None
        model = self.model.net
        model.train()
        logits = model(x)
        labels = target.argmax(1)
        loss = F.cross_entropy(logits, labels)
        self.adam.zero_grad(set_to_none=True)
        loss.backward()
        self.adam.step()
        model.clip_latent()
        for view in self.model.layers:
            view.store.count_pass(len(x))  # type: ignore[attr-defined]
        return StepStats(int((logits.detach().argmax(1) == labels).sum()), float(loss.detach()))

    def state_dict(self) -> dict[str, Any]:
        assert self.model is not None and self.adam is not None
        return {**super().state_dict(), "adam": self.adam.state_dict(),
                "net": {k: v.clone() for k, v in self.model.net.state_dict().items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        assert self.model is not None and self.adam is not None
        self.model.net.load_state_dict(state["net"])  # in place: Adam keeps its parameters
        self.adam.load_state_dict(state["adam"])

    def summary_extras(self, net: Any, run_dir: Path) -> dict[str, Any]:
        """Writes ``RUN_DIR/binary_net.pt``; returns the network's facts."""
        assert self.model is not None
        model = self.model.net
        save_net(model, self.meta, run_dir / NET_FILE)
        binary = sum(layer.latent.numel() for layer in model.binary_layers())
        norms = sum(p.numel() for name, p in model.named_parameters() if "bn" in name)
        blocks = [{"channels": view.store.cols, "positions": view.positions}  # each block's conv1
                  for view in self.model.layers[1:-1:2]]
        return {"binary_net": {**self.meta, "binary_weights": binary, "real_parameters": norms,
                               "features": model.features, "blocks": blocks, "net_file": NET_FILE}}


@register("boolnet")
class BoolNet(BinaryNetRule):
    """BoolNet: binary feature maps (multi-slice), XNOR and OR shortcuts."""


@register("bireal")
class BiReal(BinaryNetRule):
    """Bi-Real-style baseline: 32-bit feature maps and shortcuts, binary weights and conv inputs."""

    kind = "bireal"
