"""Rules own their settings: the ``[rule]`` table, flat compatibility, generated flags, and
BSL on the shared backprop loop (hooks) drawing exactly what its own loop drew."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torch import Tensor

from bsl.binarize import sign_with_dead_zone, stochastic_binary, stochastic_derivative
from bsl.commands import train as train_command
from bsl.config import TrainConfig, config_names, load_config_file, save_config
from bsl.network import Network, build_network, parse_layers
from bsl.rules import RULES, LearningRule, StepStats, register
from bsl.rules.base import RuleSettings, pulse_update, step_stats
from bsl.rules.bsl import BinaryStochasticLearning, BslSettings
from bsl.rules.sgd import SgdSettings
from bsl.stores import FloatStore

pytestmark = pytest.mark.usefixtures("single_thread")


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# -- run files ----------------------------------------------------------------------


def test_rule_table_loads_and_flat_names_override_it(tmp_path: Path) -> None:
    run = _write(tmp_path / "run.toml", '[train]\nrule = "bsl"\nepochs = 2\n\n'
                                        "[rule]\ndead_zone = 0.1\nupdate_probability = 0.4\n")
    values = load_config_file(run)
    config = TrainConfig(**values)
    assert config.rule_settings == BslSettings(dead_zone=0.1, update_probability=0.4)
    assert config.epochs == 2
    # A flag (a flat name) overrides the table.
    assert TrainConfig(**{**values, "dead_zone": 0.25}).rule_settings.dead_zone == 0.25  # type: ignore[attr-defined]
    # Without [train] the [rule] table stands next to the top-level fields.
    flat = _write(tmp_path / "flat.toml", 'epochs = 2\n\n[rule]\nlr = 0.5\n')
    with pytest.raises(ValueError, match=r"rule 'bsl' has no setting\(s\) \['lr'\]"):
        load_config_file(flat)
    flat = _write(tmp_path / "flat.toml", 'rule = "sgd"\nepochs = 2\n')
    assert TrainConfig(**load_config_file(flat)).rule_settings == SgdSettings()


def test_unknown_rule_table_key_is_refused_in_one_line_naming_the_rule(tmp_path: Path) -> None:
    run = _write(tmp_path / "run.toml", '[train]\nrule = "manhattan"\n\n[rule]\ndead_zone = 0.1\n')
    with pytest.raises(ValueError) as info:
        load_config_file(run)
    message = str(info.value)
    assert "\n" not in message and "rule 'manhattan'" in message and "dead_zone" in message
    # The same for a dict given directly, and when a flag changes the rule under a table.
    with pytest.raises(ValueError, match="rule 'sgd' has no setting"):
        TrainConfig(rule="sgd", rule_settings={"dead_zone": 0.1})


def test_flat_settings_of_another_rule_are_checked_then_ignored() -> None:
    """Sweep bases (sims/*.toml) set device-rule keys for sgd points too."""
    config = TrainConfig(rule="sgd", lr=2.0, dead_zone=0.2, batch_reduce="sign", update_probability=0.5)
    assert config.rule_settings == SgdSettings(lr=2.0)
    assert "dead_zone" not in config.to_dict()
    with pytest.raises(ValueError, match="dead_zone"):  # still checked
        TrainConfig(rule="sgd", dead_zone=1.0)
    with pytest.raises(ValueError, match="lr"):
        TrainConfig(rule="bsl", lr=0.0)
    with pytest.raises(TypeError, match="no_such_setting"):
        TrainConfig(no_such_setting=1)


def test_saved_config_has_rule_table_and_old_flat_dicts_still_load(tmp_path: Path) -> None:
    config = TrainConfig(rule="bsl", dead_zone=0.2, hidden_update_scale=0.5, epochs=3)
    path = save_config(config, tmp_path / "config.toml")
    text = path.read_text()
    assert "[rule]" in text and "dead_zone = 0.2" in text
    assert TrainConfig(**load_config_file(path)) == config
    # A checkpoint's config dict from before (every field flat, all rules' settings in it).
    old = {**{name: getattr(config, name) for name in config_names() if hasattr(config, name)},
           "batch_reduce": "sum", "update_probability": 0.2, "hidden_update_scale": 0.5, "anneal": 0.85,
           "dead_zone": 0.2, "hidden_dead_zone": 0.0, "output_derivative": False, "lr": 1.0}
    assert TrainConfig(**old) == config
    assert TrainConfig(**config.to_dict()) == config
    assert config.replace(rule="manhattan").rule_settings.hidden_update_scale == 0.5  # type: ignore[attr-defined]


# -- generated flags ----------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class TinySettings(RuleSettings):
    """One setting of a made-up rule."""

    tiny_knob: int = 3
    """How many tiny things (count)."""


@pytest.fixture
def tiny_rule() -> Iterator[type[LearningRule]]:
    class Tiny(LearningRule):
        settings = TinySettings

        def train_step(self, net: Network, x: Tensor, target: Tensor, gen: torch.Generator) -> StepStats:
            raise NotImplementedError

    try:
        yield register("tiny-test-rule")(Tiny)
    finally:
        RULES.pop("tiny-test-rule", None)


def _train_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    train_command.register(parser.add_subparsers())
    return parser


def test_a_new_rules_settings_get_flags(tiny_rule: type[LearningRule], tmp_path: Path) -> None:
    parser = _train_parser()
    args = parser.parse_args(["train", "--rule", "tiny-test-rule", "--tiny-knob", "7"])
    assert args.tiny_knob == 7
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert "How many tiny things (count)." in action.choices["train"].format_help()
    config = TrainConfig(rule="tiny-test-rule", tiny_knob=7)
    assert config.rule_settings == TinySettings(tiny_knob=7, anneal=0.85)
    with pytest.raises(ValueError, match="tiny_knob"):
        TrainConfig(rule="tiny-test-rule", tiny_knob="many")


def test_a_rule_setting_may_not_shadow_a_train_field() -> None:
    @dataclasses.dataclass(frozen=True)
    class Clashing(RuleSettings):
        epochs: int = 1

    class Bad(LearningRule):
        settings = Clashing

        def train_step(self, net: Network, x: Tensor, target: Tensor, gen: torch.Generator) -> StepStats:
            raise NotImplementedError

    with pytest.raises(ValueError, match="clash"):
        register("clashing-test-rule")(Bad)
    assert "clashing-test-rule" not in RULES


# -- BSL through the shared loop ----------------------------------------------------


class _Recording(FloatStore):
    def __init__(self, w: Tensor) -> None:
        super().__init__(w)
        self.calls: list[Tensor] = []

    def pulse(self, counts: Tensor, rows: Tensor | None = None, cols: Tensor | None = None) -> None:
        self.calls.append(counts.clone())


def _net(seed: int) -> Network:
    g = torch.Generator().manual_seed(seed)

    def make(rows: int, cols: int, index: int) -> _Recording:
        return _Recording(torch.rand(rows, cols, generator=g) - torch.rand(rows, cols, generator=g))

    return build_network(parse_layers("16,8"), (20,), 3, make, 3.0)


def _reference_bsl_step(config: TrainConfig, rate_scale: float, net: Network, x: Tensor, target: Tensor,
                        gen: torch.Generator) -> StepStats:
    """BSL's own loop as it was before it moved onto the shared loop's hooks."""
    cfg = config.rule_settings
    assert isinstance(cfg, BslSettings)
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
            derivative = stochastic_derivative(probs[i - 1], gen)
            below = sign_with_dead_zone(error, cfg.hidden_dead_zone) * derivative
        probability = cfg.update_probability * rate_scale * layer.update_scale
        if i < last:
            probability *= cfg.hidden_update_scale
        pulse_update(layer.store, fwd.x, layer.delta_matrix(delta), probability=probability,
                     reduce=cfg.batch_reduce, gen=gen)
        if i > 0:
            delta = below
    return step_stats(probs[-1], target)


@pytest.mark.parametrize("output_derivative", [False, True])
@pytest.mark.parametrize("reduce", ["sum", "sign"])
def test_bsl_on_hooks_draws_exactly_what_its_own_loop_drew(output_derivative: bool, reduce: str) -> None:
    config = TrainConfig(rule="bsl", update_probability=0.6, hidden_update_scale=0.5, dead_zone=0.1,
                         hidden_dead_zone=0.05, output_derivative=output_derivative, batch_reduce=reduce)
    g = torch.Generator().manual_seed(5)
    x, labels = torch.rand(12, 20, generator=g), torch.randint(0, 3, (12,), generator=g)
    target = torch.eye(3)[labels]
    rule = BinaryStochasticLearning(config)
    rule.start_epoch(2)
    new_net, old_net = _net(1), _net(1)
    gen_new, gen_old = torch.Generator().manual_seed(9), torch.Generator().manual_seed(9)
    new = rule.train_step(new_net, x, target, gen_new)
    old = _reference_bsl_step(config, rule.rate_scale, old_net, x, target, gen_old)
    assert new == old
    for a, b in zip(new_net.layers, old_net.layers, strict=True):
        calls_a, calls_b = a.store.calls, b.store.calls  # type: ignore[attr-defined]
        assert len(calls_a) == len(calls_b)
        assert all(torch.equal(p, q) for p, q in zip(calls_a, calls_b, strict=True))
    assert torch.equal(gen_new.get_state(), gen_old.get_state())  # the same number of draws
