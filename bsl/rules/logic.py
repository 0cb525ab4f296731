"""Logic-gate networks trained by gradient descent on their relaxation (:mod:`bsl.logic`):

``difflogic``
    Petersen et al. 2022: fixed random wiring, learned gates.
``lilogic``
    LILogicNet (Fojcik et al., arXiv 2511.12340): learned interconnect (each gate input a
    softmax over candidate inputs: ``topk`` candidates fixed at initialisation, or
    ``dense`` over all inputs), learned readout temperature.
``compactlogic``
    CompactLogic (Wang et al., arXiv 2602.05830): learned connections through candidate
    slots with no extra parameters, the entropy-driven slot resampler, adaptive
    discretization (layers frozen front to back), logic convolutions (``cCkKsS`` layers).

``--layers`` gives the gate layers (``2000,1000``: 3000 gates; the last layer's size must
be a multiple of the classes); no weight layer is added. Adam on cross-entropy of the
group-sum logits. The network runs in software (no crossbar): ``bsl.logic.routing``
puts a trained layer's interconnect on an array.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from ..logic.compact import Freezer, resample_slots
from ..logic.discrete import NET_FILE, Encoder
from ..logic.layers import SlotGates
from ..logic.model import LogicModel, LogicNet, build_logic_layers
from ..network import parse_layers
from ..seeds import Seeds
from ..settings import fail
from .base import LearningRule, RuleSettings, StepStats, register, set_learning_rate

Wiring = Literal["auto", "random", "dense", "topk", "slots"]
TauMode = Literal["auto", "fixed", "learned"]
Encoding = Literal["fixed", "quantile"]


@dataclass(frozen=True)
class LogicSettings(RuleSettings):
    """Settings of the logic-gate rules (``auto`` and 0 mean the rule's own default)."""

    adam_lr: float = 0.1
    """Adam learning rate of the logic rules (on gate and connection logits)."""
    tau: float = 10.0
    """Readout temperature of the logic rules: class logits are group sums / tau (> 0)."""
    tau_mode: TauMode = "auto"
    """Logic rules: keep tau fixed or learn it (auto: learned for lilogic and compactlogic)."""
    connections: Wiring = "auto"
    """Logic rules' connections: random, dense, topk or slots (auto: difflogic random,
    lilogic topk, compactlogic slots)."""
    candidates: int = 0
    """Logic rules: candidate inputs per gate input (topk) or slots per gate (slots); 0 = 32 for
    topk, 4 for slots."""
    wire_logit: float = 4.0
    """Logic rules: initial logit of each gate input's random wire (learned wiring)."""
    encoding: Encoding = "fixed"
    """Logic rules' input binarization: fixed thresholds or per-sample quantiles."""
    thresholds: str = "0.5"
    """Logic rules: comma-separated increasing thresholds (several = a thermometer code), e.g.
    0.25,0.5,0.75; quantile encoding: quantile levels in (0, 1)."""
    check_every: int = 100
    """compactlogic: batches between slot-resampling and freezing checks (0 = neither)."""
    resample_confidence: float = 0.6
    """compactlogic: a row whose best slot has this probability keeps it; its other slots are redrawn."""
    undecided_entropy: float = 0.95
    """compactlogic: normalised entropy at or above which a row counts as undecided."""
    undecided_patience: int = 5
    """compactlogic: checks a row may stay undecided before it is re-initialised."""
    straight_through_from: float = 0.1
    """Logic rules: from this fraction of the epochs on, the forward pass uses the argmax gates and
    wires (straight-through gradients of the relaxed ones), closing the discretisation gap (1 = never,
    as the papers train)."""
    gumbel_noise: float = 0.0
    """Logic rules: scale of Gumbel noise added to the gate and wire logits in the straight-through
    phase (the argmax of the noisy logits is forwarded; 0 = none)."""
    freeze_tolerance: float = 0.002
    """compactlogic: freeze the first unfrozen layer once its mean normalised entropy changes by
    at most this between checks (0 = no adaptive discretization)."""

    def validate(self) -> None:
        super().validate()
        if not self.adam_lr > 0:
            fail("adam_lr", self.adam_lr, "must be > 0")
        if not self.tau > 0:
            fail("tau", self.tau, "must be > 0")
        if self.candidates < 0:
            fail("candidates", self.candidates, "must be >= 0 (0 = the rule's default)")
        try:
            values = tuple(float(t) for t in self.thresholds.split(","))
        except ValueError:
            values = ()
        if not values or list(values) != sorted(set(values)):
            fail("thresholds", self.thresholds, "give increasing numbers separated by commas, e.g. 0.25,0.5")
        if self.encoding == "quantile" and not all(0 < t < 1 for t in values):
            fail("thresholds", self.thresholds, "quantile levels must lie in (0, 1)")
        for name in ("check_every", "undecided_patience"):
            if getattr(self, name) < 0:
                fail(name, getattr(self, name), "must be >= 0")
        for name in ("resample_confidence", "undecided_entropy"):
            if not 0 < getattr(self, name) <= 1:
                fail(name, getattr(self, name), "must lie in (0, 1]")
        if not 0 <= self.straight_through_from <= 1:
            fail("straight_through_from", self.straight_through_from, "must lie in [0, 1]")
        if self.gumbel_noise < 0:
            fail("gumbel_noise", self.gumbel_noise, "must be >= 0")
        if self.freeze_tolerance < 0:
            fail("freeze_tolerance", self.freeze_tolerance, "must be >= 0")

    def threshold_values(self) -> tuple[float, ...]:
        return tuple(float(t) for t in self.thresholds.split(","))


class LogicRule(LearningRule):
    """Adam on the relaxed network; the rule owns the model it trains."""

    uses_devices = False
    settings = LogicSettings
    default_wiring: ClassVar[str] = "random"
    default_tau_mode: ClassVar[str] = "fixed"
    compact: ClassVar[bool] = False

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self.model: LogicModel | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.steps = 0
        self.epoch = 0
        s = self.s
        self.freezer = Freezer(s.freeze_tolerance)
        wiring = self.wiring
        if self.compact != (wiring == "slots"):
            fail("connections", s.connections, "slots is compactlogic's wiring (and compactlogic's only one)")

    @property
    def s(self) -> LogicSettings:
        s = self.config.rule_settings
        assert isinstance(s, LogicSettings)
        return s

    @property
    def wiring(self) -> str:
        return self.default_wiring if self.s.connections == "auto" else self.s.connections

    def build_model(self, input_shape: tuple[int, ...], n_classes: int) -> LogicModel:
        s, c = self.s, self.config
        specs = parse_layers(c.layers)
        if specs and specs[-1].kind == "dense" and specs[-1].size % n_classes:
            raise ValueError(f"layers: the last gate layer's {specs[-1].size} gates do not split into "
                             f"{n_classes} equal class groups; make it a multiple of {n_classes}")
        features = 1
        for d in input_shape:
            features *= d
        encoder = Encoder(s.encoding, s.threshold_values(), features)
        candidates = s.candidates or (4 if self.wiring == "slots" else 32)
        gen = torch.Generator().manual_seed(Seeds(c.seed).weights_init)
        layers = build_logic_layers(specs, encoder, input_shape, self.wiring, candidates, s.wire_logit, gen,
                                    at_most_inputs=not s.candidates)
        learn = s.tau_mode == "learned" or (s.tau_mode == "auto" and self.default_tau_mode == "learned")
        net = LogicNet(encoder, layers, n_classes, s.tau, learn)
        self.model = LogicModel(net, input_shape)
        params = [p for p in net.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(params, lr=s.adam_lr)
        return self.model

    def start_epoch(self, epoch: int) -> None:
        super().start_epoch(epoch)
        self.epoch = epoch
        set_learning_rate(self.optimizer, self.s.adam_lr * self.rate_scale)
        self._set_straight_through()

    def _set_straight_through(self) -> None:
        start = self.s.straight_through_from
        on = start < 1 and self.epoch >= start * self.config.epochs
        if self.model is not None:
            for layer in self.model.net.gates:
                layer.straight_through = on

    def train_step(self, net: Any, x: Tensor, target: Tensor, gen: torch.Generator) -> StepStats:
        assert self.model is not None and self.optimizer is not None
        for layer in self.model.net.gates:
            layer.noise, layer.noise_gen = self.s.gumbel_noise, gen
        try:
            logits = self.model.net(x)
        finally:
            for layer in self.model.net.gates:
                layer.noise_gen = None
        labels = target.argmax(1)
        loss = F.cross_entropy(logits, labels)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.steps += 1
        for view in self.model.layers:
            view.store.count_pass(len(x))  # type: ignore[attr-defined]
        if self.compact:
            self._compact_checks(gen)
        return StepStats(int((logits.detach().argmax(1) == labels).sum()), float(loss.detach()))

    def _compact_checks(self, gen: torch.Generator) -> None:
        s = self.s
        if not s.check_every or self.steps % s.check_every:
            return
        assert self.model is not None
        layers = self.model.net.gates
        for layer in layers:
            if isinstance(layer, SlotGates) and not layer.is_frozen:
                resample_slots(layer, gen, confidence=s.resample_confidence, undecided=s.undecided_entropy,
                               patience=s.undecided_patience, optimizer=self.optimizer)
        if s.freeze_tolerance > 0:
            self.freezer.check(layers, self.steps)

    def state_dict(self) -> dict[str, Any]:
        assert self.model is not None and self.optimizer is not None
        return {**super().state_dict(), "steps": self.steps, "epoch": self.epoch,
                "optimizer": self.optimizer.state_dict(),
                "tau": self.model.tau_store.state_dict(), "freezer": self.freezer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        assert self.model is not None and self.optimizer is not None
        self.steps, self.epoch = int(state["steps"]), int(state["epoch"])
        self._set_straight_through()
        self.optimizer.load_state_dict(state["optimizer"])
        self.model.tau_store.load_state_dict(state["tau"])
        self.freezer.load_state_dict(state["freezer"])

    def summary_extras(self, net: Any, run_dir: Path) -> dict[str, Any]:
        """Writes the discretised network to ``RUN_DIR/logic_net.npz``; returns its circuit facts."""
        from ..logic.packed import circuit_stats

        assert self.model is not None
        discrete = self.model.net.discrete()
        discrete.save(run_dir / NET_FILE)
        e = discrete.encoder
        return {"logic": {**circuit_stats(discrete), "input_bits": e.bits, "features": e.features,
                          "encoding": e.kind, "thresholds": list(e.thresholds), "tau": self.model.net.tau,
                          "wiring": self.wiring, "freezes": [list(h) for h in self.freezer.history],
                          "net_file": NET_FILE}}


@register("difflogic")
class DiffLogic(LogicRule):
    """difflogic: random wiring, learned gates."""


@register("lilogic")
class LILogic(LogicRule):
    """LILogicNet: learned interconnect (top-K by default), learned temperature."""

    default_wiring = "topk"
    default_tau_mode = "learned"


@register("compactlogic")
class CompactLogic(LogicRule):
    """CompactLogic: learned slots, resampler, adaptive discretization, logic convolutions."""

    default_wiring = "slots"
    default_tau_mode = "learned"
    compact = True
