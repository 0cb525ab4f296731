"""The learning-rule interface, the registry, the rules' settings, the shared backprop loop
(with hooks) and the pulse update shared by device rules."""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor

from ..binarize import stochastic_round
from ..layers import Forward, Layer
from ..network import Network
from ..settings import check_types, fail
from ..stores import WeightStore

RULES: dict[str, type[LearningRule]] = {}

BatchReduce = Literal["sum", "sign"]
"""How a mini-batch's ternary updates combine (see :func:`pulse_update`)."""


@dataclass(frozen=True)
class RuleSettings:
    """Settings every rule has: the per-epoch schedule of its learning rate. A rule's own
    settings subclass this (frozen, one docstring per field, units in it); they are read
    from the ``[rule]`` table of a run file (or the same names at top level or in
    ``[train]``) and become ``bsl train`` flags."""

    anneal: float = 0.85
    """Per-epoch factor on the rule's learning rate (``update_probability`` of device rules,
    ``lr`` of sgd): epoch ``e`` (from 0) uses ``rate * anneal**e``."""

    def __post_init__(self) -> None:
        check_types(self)
        self.validate()

    def validate(self) -> None:
        """Refuse bad values (subclasses extend this, calling ``super().validate()``)."""
        if not 0 < self.anneal <= 1:
            fail("anneal", self.anneal, "must lie in (0, 1]")


@dataclass(frozen=True)
class DeviceRuleSettings(RuleSettings):
    """Settings shared by the rules that pulse device weights (bsl, manhattan)."""

    update_probability: float = 0.2
    """Each pulse is sent with this probability (device rules' learning rate), in (0, 1]."""
    hidden_update_scale: float = 1.0
    """Factor on ``update_probability`` for hidden layers (device rules); 1 = same as output
    (the product must stay <= 1)."""

    def validate(self) -> None:
        super().validate()
        if not 0 < self.update_probability <= 1:
            fail("update_probability", self.update_probability, "must lie in (0, 1]")
        if not 0 <= self.hidden_update_scale * self.update_probability <= 1:
            fail("hidden_update_scale", self.hidden_update_scale,
                 "must be >= 0, with update_probability * it <= 1")

    def layer_probability(self, rate_scale: float, hidden: bool) -> float:
        """The pulse probability of a layer: ``update_probability * rate_scale``, times
        ``hidden_update_scale`` for hidden layers."""
        probability = self.update_probability * rate_scale
        if hidden:
            probability *= self.hidden_update_scale
        return probability


def register(name: str) -> Callable[[type[LearningRule]], type[LearningRule]]:
    """Class decorator: make a rule available under ``name`` (with its ``settings`` class,
    whose field names must not be :class:`bsl.config.TrainConfig` fields)."""

    def deco(cls: type[LearningRule]) -> type[LearningRule]:
        from ..config import common_field_names

        if name in RULES:
            raise ValueError(f"a learning rule named {name!r} is already registered")
        if not (isinstance(cls.settings, type) and issubclass(cls.settings, RuleSettings)):
            raise ValueError(f"learning rule {name!r}: settings must be a RuleSettings dataclass")
        clash = sorted(set(setting_names(cls.settings)) & set(common_field_names()))
        if clash:
            raise ValueError(f"learning rule {name!r}: settings {clash} clash with TrainConfig fields")
        for other in RULES.values():  # a name shared by two rules must mean the same thing
            for f in dataclasses.fields(other.settings):
                mine = {g.name: g for g in dataclasses.fields(cls.settings)}.get(f.name)
                if mine is not None and (mine.type, mine.default) != (f.type, f.default):
                    raise ValueError(f"learning rule {name!r}: setting {f.name!r} differs from rule "
                                     f"{other.name!r}'s (type and default must agree)")
        cls.name = name
        RULES[name] = cls
        return cls

    return deco


def setting_names(settings: type[RuleSettings]) -> list[str]:
    """The field names of a settings class."""
    return [f.name for f in dataclasses.fields(settings)]


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
    device_kind: ClassVar[str] = "analog"
    """The devices a device rule needs: ``analog`` (many levels) or ``binary`` (two states,
    ``step_model='binary'``); a preset of the other kind is refused."""
    settings: ClassVar[type[RuleSettings]] = RuleSettings
    """The dataclass of the rule's own settings (``config.rule_settings`` is one)."""
    torch_device_types: ClassVar[tuple[str, ...]] = ("cpu",)
    """The torch device types (``config.torch_device``) the rule's code is written for."""

    def __init__(self, config: Any) -> None:
        self.config = config
        self.rate_scale = 1.0
        device_type = torch.device(getattr(config, "torch_device", "cpu")).type
        if device_type not in self.torch_device_types:
            fail("torch_device", config.torch_device,
                 f"rule {self.name} runs on {self.torch_device_types} only")
        if self.uses_devices:
            check_device_kind(self.name, self.device_kind, config.preset)

    def start_epoch(self, epoch: int) -> None:
        """Called by the loop before epoch ``epoch`` (0-based): anneals the learning rate
        (``update_probability`` or ``lr``) by ``anneal ** epoch``."""
        self.rate_scale = self.config.rule_settings.anneal**epoch

    def state_dict(self) -> dict[str, Any]:
        """The rule's own state for checkpoints (rules with more state extend this)."""
        return {"rate_scale": self.rate_scale}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        self.rate_scale = float(state["rate_scale"])

    def build_model(self, input_shape: tuple[int, ...], n_classes: int) -> Any:
        """A rule that trains its own kind of model (not crossbar layers) builds it here and
        returns it (it must offer ``layers``, ``stores()`` and ``predict`` like
        :class:`bsl.network.Network`); None (the default) lets the loop build the crossbar
        network from the config."""
        return None

    def summary_extras(self, net: Any, run_dir: Path) -> dict[str, Any]:
        """Entries the rule adds to ``summary.json`` when the run finishes (it may also write
        its own files into ``run_dir``); none by default."""
        return {}

    @abstractmethod
    def train_step(self, net: Network, x: Tensor, target: Tensor, gen: torch.Generator) -> StepStats:
        """Forward, backward and update on one batch; ``target`` is one-hot ``(n, classes)``."""


def set_learning_rate(optimizer: torch.optim.Optimizer | None, lr: float) -> None:
    """Give every parameter group of ``optimizer`` (if any) the learning rate ``lr``."""
    if optimizer is not None:
        for group in optimizer.param_groups:
            group["lr"] = lr


def check_device_kind(rule: str, kind: str, preset: str) -> None:
    """Refuse a device preset of the wrong kind for ``rule`` (ValueError, one line)."""
    from devices import get_preset

    binary = get_preset(preset).step_model == "binary"
    if kind == "binary" and not binary:
        fail("preset", preset, f"{rule} holds Boolean weights: it needs a binary device preset "
             "(binary_ideal, binary_rram or a step_model = 'binary' file)")
    if kind == "analog" and binary:
        fail("preset", preset, f"is a two-state device: rule {rule} needs analog (multi-level) devices; "
             "train Boolean weights with rule bold")


def step_stats(p_out: Tensor, target: Tensor) -> StepStats:
    """Accuracy count and loss of a batch's output probabilities."""
    correct = int((p_out.argmax(1) == target.argmax(1)).sum())
    p = p_out.clamp(1e-7, 1 - 1e-7)
    loss = float(-(target * p.log() + (1 - target) * (1 - p).log()).sum(1).mean())
    return StepStats(correct, loss)


def _identity(h: Tensor) -> Tensor:
    return h


def _analog_output_error(target: Tensor, p: Tensor) -> Tensor:
    return target - p


def _analog_hidden_error(error: Tensor, p: Tensor) -> Tensor:
    return error * p * (1 - p)


@dataclass(frozen=True)
class BackpropHooks:
    """How :func:`backprop` turns signals into crossbar inputs and errors (the defaults are
    ordinary analog backpropagation)."""

    encode: Callable[[Tensor], Tensor] = _identity
    """The crossbar input made from the network input or a hidden layer's probabilities
    (called bottom-up, once per layer input)."""
    output_error: Callable[[Tensor, Tensor], Tensor] = _analog_output_error
    """``(target, p_out) -> delta`` of the output layer."""
    hidden_error: Callable[[Tensor, Tensor], Tensor] = _analog_hidden_error
    """``(transposed read of the error above, p of the layer below) -> its delta`` (called
    top-down, before that layer's update)."""
    output_activation: Callable[[Tensor], Tensor] = torch.sigmoid
    """The output layer's probabilities from its pre-activation (hidden layers: sigmoid)."""


ANALOG = BackpropHooks()
"""Ordinary backpropagation: analog inputs, error ``t - p``, derivative ``p (1 - p)``."""


def backprop(
    net: Network,
    x: Tensor,
    target: Tensor,
    update: Callable[[int, Layer, Forward, Tensor], None],
    hooks: BackpropHooks = ANALOG,
) -> Tensor:
    """Backpropagation through sigmoid units, its signals shaped by ``hooks``.

    Runs the forward pass, then from the top layer down calls ``update(index, layer,
    forward, delta)`` after the error below has been read (so reads see the old
    weights); returns the output probabilities. Random draws (if the hooks make any)
    come in this order: the encodings bottom-up, the output error, then per layer from
    the top the error below and the update."""
    last = len(net.layers) - 1
    h = hooks.encode(x)
    fwds, probs = [], []
    for i, layer in enumerate(net.layers):
        fwd = layer.forward(h)
        p = hooks.output_activation(fwd.a) if i == last else torch.sigmoid(fwd.a)
        fwds.append(fwd)
        probs.append(p)
        if i < last:
            h = hooks.encode(p)
    delta = hooks.output_error(target, probs[-1])
    for i in range(last, -1, -1):
        layer, fwd = net.layers[i], fwds[i]
        if i > 0:
            below = hooks.hidden_error(layer.backward(delta, fwd), probs[i - 1])
        update(i, layer, fwd, delta)
        if i > 0:
            delta = below
    return probs[-1]


def analog_backprop(
    net: Network, x: Tensor, target: Tensor, update: Callable[[int, Layer, Forward, Tensor], None]
) -> Tensor:
    """Ordinary backpropagation with analog signals (sigmoid units, output error ``t - p``):
    :func:`backprop` with the :data:`ANALOG` hooks."""
    return backprop(net, x, target, update, ANALOG)


def pulse_update(
    store: WeightStore,
    x: Tensor,
    d: Tensor,
    *,
    probability: float,
    reduce: BatchReduce | str,
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
