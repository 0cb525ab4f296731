"""BOLD: Boolean weights trained by Boolean variation (Nguyen et al., NeurIPS 2024), on binary devices.

``--layers`` gives the Boolean hidden layers (``1024,1024``); a Boolean output layer is added.
Every weight is one differential pair of binary devices (:mod:`bsl.binary_read` for the
mapping); inputs are the features thresholded at ``input_threshold``. Forward: XNOR-popcount
reads, batch normalisation, threshold. Backward (:mod:`bsl.bold.layers`): the variation
``Z W^T`` by transposed reads, the weights' ``q = X^T Z``; the flip rule
(:mod:`bsl.bold.optimizer`) turns accumulated variations into flips, each flip one SET and one
RESET pulse on the pair (``push_pull``). Real-valued, trained by Adam: the normalisations'
scales and offsets (one per neuron; at inference they fold into the comparator thresholds and
the output's per-class affine scores). Needs a binary device preset (``binary_ideal``,
``binary_rram`` or a ``step_model = "binary"`` file).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from ..binary_read import program_boolean
from ..bold.layers import SURROGATES, BooleanLayer, Surrogate
from ..bold.model import BoldModel, BoldNet, random_boolean
from ..bold.optimizer import ACCUMULATOR_BITS, BooleanVariation
from ..network import parse_layers
from ..seeds import Seeds
from ..settings import fail
from .base import LearningRule, RuleSettings, StepStats, register, set_learning_rate

VariationScale = Literal["rms", "none"]


@dataclass(frozen=True)
class BoldSettings(RuleSettings):
    """Settings of BOLD (the ``anneal`` factor applies to ``variation_lr`` and ``norm_lr``)."""

    variation_lr: float = 0.05
    """BOLD: eta of the accumulators, ``m <- beta m + eta q`` (``q`` the batch-mean variation, divided
    by its rms over the layer unless ``variation_scale = "none"``); a weight flips once ``|m| >= 1``."""
    variation_scale: VariationScale = "rms"
    """BOLD: ``rms``: each layer's variation divided by its root mean square before accumulating
    (eta is then a layer-independent flip rate; ours), ``none``: as the paper's optimizer."""
    norm_lr: float = 0.01
    """BOLD: Adam learning rate of the real-valued normalisation scales and offsets."""
    surrogate: Surrogate = "triangle"
    """BOLD: the threshold's backward: triangle ``max(0, 1 - |y|/c)``, tanh ``1 - tanh(y/c)^2`` or box
    ``[|y| <= c]``."""
    surrogate_width: float = 1.0
    """BOLD: ``c`` of the surrogate, in units of the normalised pre-activation (> 0)."""
    input_threshold: float = 0.5
    """BOLD: a feature is T (a +v_read pulse) where it is >= this, else F (-v_read)."""

    def validate(self) -> None:
        super().validate()
        for name in ("variation_lr", "norm_lr", "surrogate_width"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                fail(name, value, "must be a finite number > 0")
        if self.surrogate not in SURROGATES:
            fail("surrogate", self.surrogate, f"must be one of {SURROGATES}")


@register("bold")
class Bold(LearningRule):
    """Boolean variation and flips on binary device weights; Adam on the normalisations."""

    settings = BoldSettings
    device_kind = "binary"

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        if config.scheme != "push_pull":
            fail("scheme", config.scheme, "bold writes each flip as a push_pull pulse pair (SET one device, "
                 "RESET the other): use push_pull")
        self.model: BoldModel | None = None
        self.variation: BooleanVariation | None = None
        self.adam: torch.optim.Optimizer | None = None
        self.misprogrammed: list[int] = []

    @property
    def s(self) -> BoldSettings:
        s = self.config.rule_settings
        assert isinstance(s, BoldSettings)
        return s

    def build_model(self, input_shape: tuple[int, ...], n_classes: int) -> BoldModel:
        from ..backend import make_stores  # (bsl.backend imports the rule registry)

        specs = parse_layers(self.config.layers)
        if any(spec.kind != "dense" for spec in specs):
            raise ValueError(f"layers: bold takes dense layers only (e.g. 1024,1024), got "
                             f"{self.config.layers!r}")
        features = math.prod(input_shape)
        sizes = [features, *(spec.size for spec in specs), n_classes]
        shapes = list(zip(sizes[:-1], sizes[1:], strict=True))
        stores = make_stores(self.config, True, shapes)
        gen = torch.Generator().manual_seed(Seeds(self.config.seed).weights_init)
        self.misprogrammed = [program_boolean(store, random_boolean(*shape, gen))
                              for store, shape in zip(stores, shapes, strict=True)]
        s = self.s
        layers = [BooleanLayer(store, output=i == len(stores) - 1, surrogate=s.surrogate,
                               width=s.surrogate_width) for i, store in enumerate(stores)]
        net = BoldNet(layers, s.input_threshold)
        self.model = BoldModel(net, input_shape)
        self.variation = BooleanVariation(shapes)
        self.adam = torch.optim.Adam(net.real_parameters(), lr=s.norm_lr)
        return self.model

    def start_epoch(self, epoch: int) -> None:
        super().start_epoch(epoch)
        set_learning_rate(self.adam, self.s.norm_lr * self.rate_scale)

    def train_step(self, net: Any, x: Tensor, target: Tensor, gen: torch.Generator) -> StepStats:
        assert self.model is not None and self.variation is not None and self.adam is not None
        bold = self.model.net
        bold.train()
        logits = bold(x)
        labels = target.argmax(1)
        loss = F.cross_entropy(logits, labels)
        self.adam.zero_grad(set_to_none=True)
        loss.backward()
        self.adam.step()
        eta = self.s.variation_lr * self.rate_scale
        with torch.no_grad():
            for i, layer in enumerate(bold.boolean_layers):
                self._flip(i, layer, eta)
        return StepStats(int((logits.detach().argmax(1) == labels).sum()), float(loss.detach()))

    def _flip(self, index: int, layer: BooleanLayer, eta: float) -> None:
        """Read the layer's weights, order its flips, send one pulse pair to each."""
        assert self.variation is not None and layer.variation is not None
        w = layer.store.weights()
        flip = self.variation.step(index, layer.variation.to(w.dtype), w, eta,
                                   normalise=self.s.variation_scale == "rms")
        layer.variation = None
        if bool(flip.any()):
            counts = torch.zeros(flip.shape, dtype=torch.int64)
            counts[flip] = torch.where(w[flip] > 0, -1, 1)  # the new value: SET G+ for T, G- for F
            layer.store.pulse(counts)

    def state_dict(self) -> dict[str, Any]:
        assert self.model is not None and self.variation is not None and self.adam is not None
        return {**super().state_dict(), "variation": self.variation.state_dict(),
                "adam": self.adam.state_dict(),
                "net": {k: v.clone() for k, v in self.model.net.state_dict().items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        assert self.model is not None and self.variation is not None and self.adam is not None
        self.variation.load_state_dict(state["variation"])
        self.model.net.load_state_dict(state["net"])
        self.adam.load_state_dict(state["adam"])

    def summary_extras(self, net: Any, run_dir: Path) -> dict[str, Any]:
        assert self.variation is not None
        accumulators = sum(m.numel() for m in self.variation.m)
        return {"bold": {"flips": list(self.variation.flips), "accumulators": accumulators,
                         "accumulator_bits": ACCUMULATOR_BITS, "misprogrammed_at_start": self.misprogrammed,
                         "input_threshold": self.s.input_threshold, "surrogate": self.s.surrogate,
                         "real_parameters": 2 * sum(layer.n_out for layer in self.model.layers)
                         if self.model is not None else 0}}
