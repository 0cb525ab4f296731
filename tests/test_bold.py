"""BOLD on binary devices: the flip rule, the surrogates, the folded thresholds, a digits run,
resume, and bad input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from bsl.bold.layers import BooleanLayer, boolean_sign, surrogate_derivative
from bsl.bold.optimizer import BooleanVariation
from bsl.cli import main
from bsl.config import TrainConfig
from bsl.stores import CrossbarStore
from bsl.train import resume, train
from devices import SimulatedCrossbar

pytestmark = pytest.mark.usefixtures("single_thread")


class Crash(RuntimeError):
    pass


def config(out: Path, **changes: Any) -> TrainConfig:
    values = {"rule": "bold", "preset": "binary_ideal", "layers": "256", "batch_size": 32, "epochs": 3,
              "progress": False, "out": str(out), "variation_lr": 0.1, **changes}
    return TrainConfig(**values)


def test_the_flip_rule_accumulates_flips_resets_and_sets_beta_by_hand() -> None:
    opt = BooleanVariation([(2, 2)])
    w = torch.tensor([[1.0, -1.0], [1.0, -1.0]])
    q = torch.tensor([[0.6, 0.6], [-0.6, -0.3]])
    flip = opt.step(0, q, w, eta=1.0)
    assert not flip.any()  # |m| = 0.6 < 1 everywhere
    assert torch.allclose(opt.m[0], q) and opt.beta[0] == 1.0
    flip = opt.step(0, q, w, eta=1.0)
    # m = [[1.2, 1.2], [-1.2, -0.6]]: (0,0) has the weight's sign (+) and |m| >= 1 -> flips;
    # (0,1) is past 1 but of the other sign (flipping -1 would raise the loss); (1,0) likewise;
    # (1,1) has the weight's sign (-) but |m| = 0.6 < 1.
    assert flip.tolist() == [[True, False], [False, False]]
    assert torch.allclose(opt.m[0], torch.tensor([[0.0, 1.2], [-1.2, -0.6]]))
    assert opt.beta[0] == pytest.approx(0.75) and opt.flips == [1]
    opt.step(0, torch.zeros(2, 2), w, eta=1.0)  # the decay: m <- beta m
    assert torch.allclose(opt.m[0], torch.tensor([[0.0, 0.9], [-0.9, -0.45]]))
    assert opt.beta[0] == 1.0


def test_the_rms_normalised_variation_makes_eta_a_layer_independent_rate() -> None:
    opt = BooleanVariation([(3, 1), (3, 1)])
    w = -torch.ones(3, 1)
    opt.step(0, -torch.tensor([[1e-5], [2e-5], [2e-5]]), w, eta=0.5, normalise=True)
    opt.step(1, -torch.tensor([[1.0], [2.0], [2.0]]), w, eta=0.5, normalise=True)
    want = -0.5 * torch.tensor([[1.0], [2.0], [2.0]]) / 3**0.5  # rms = sqrt(3)
    assert torch.allclose(opt.m[0], opt.m[1]) and torch.allclose(opt.m[1], want)


@pytest.mark.parametrize(("kind", "want"), [
    ("triangle", [0.0, 0.5, 1.0, 0.75, 0.0]),
    ("box", [0.0, 1.0, 1.0, 1.0, 0.0]),
])
def test_the_surrogates_by_hand(kind: str, want: list[float]) -> None:
    y = torch.tensor([-3.0, -1.0, 0.0, 0.5, 2.5])
    assert surrogate_derivative(y, kind, 2.0).tolist() == want
    assert surrogate_derivative(torch.tensor([0.0]), "tanh", 1.0).item() == 1.0
    with pytest.raises(ValueError, match="surrogate 'relu'"):
        surrogate_derivative(y, "relu", 1.0)


def test_the_layer_sends_z_w_transposed_below_and_leaves_q_x_transposed_z() -> None:
    xbar = SimulatedCrossbar(3, 2, "binary_ideal", seed=0)
    w = torch.tensor([[1.0, -1.0], [-1.0, -1.0], [1.0, 1.0]])
    g_min, g_max = xbar.g_bounds
    xbar.program_and_verify(torch.stack((torch.where(w > 0, g_max, g_min), torch.where(w > 0, g_min, g_max))),
                            tolerance=0.5 * (g_max - g_min))
    layer = BooleanLayer(CrossbarStore(xbar), output=True, surrogate="box", width=1.0)
    with torch.no_grad():
        layer.norm.weight.fill_(1.0)
    x = torch.tensor([[1.0, -1.0, 1.0], [-1.0, -1.0, 1.0]], requires_grad=True)
    z = torch.tensor([[0.5, -1.0], [2.0, 1.0]])
    layer.norm.eval()  # running stats 0 and 1: y = s / sqrt(1 + eps)
    (layer(x) * z).sum().backward()
    scale = 1 / (1 + layer.norm.eps) ** 0.5
    assert x.grad is not None and torch.allclose(x.grad, scale * z @ w.T, atol=1e-5)
    assert layer.variation is not None
    assert torch.allclose(layer.variation, scale * x.detach().T @ z, atol=1e-5)


def test_the_folded_thresholds_give_the_outputs_of_normalisation_and_sign() -> None:
    torch.manual_seed(0)
    xbar = SimulatedCrossbar(20, 6, "binary_ideal", seed=1)
    layer = BooleanLayer(CrossbarStore(xbar), output=False, surrogate="triangle", width=1.0)
    with torch.no_grad():
        layer.norm.running_mean.copy_(torch.randn(6))
        layer.norm.running_var.copy_(torch.rand(6) + 0.5)
        layer.norm.weight.copy_(torch.tensor([1.0, -0.5, 2.0, -2.0, 0.0, 0.3]))
        layer.norm.bias.copy_(torch.randn(6))
    layer.norm.eval()
    x = boolean_sign(torch.randn(64, 20))
    with torch.no_grad():
        want = boolean_sign(layer.norm(layer.store.forward(x)))
    assert torch.equal(layer.infer(x), want)


def test_bold_learns_digits_on_ideal_binary_devices_well_above_chance(tmp_path: Path) -> None:
    s = train(config(tmp_path / "run")).summary
    assert s["test_accuracy"] > 0.75  # chance 0.1; measured 0.88 at 3 epochs
    bold = s["bold"]
    assert bold["flips"][0] > 0 and bold["flips"][1] > 0
    assert bold["accumulators"] == 64 * 256 + 256 * 10 and bold["misprogrammed_at_start"] == [0, 0]
    assert [f["kind"] for f in s["layer_facts"]] == ["boolean", "boolean"]
    for layer, flips in zip(s["pulses"], bold["flips"], strict=True):  # the start's programming, then
        assert layer["set"] >= flips and layer["reset"] >= flips  # one SET and one RESET per flip


def test_bold_still_learns_on_noisy_binary_devices_with_failing_switches(tmp_path: Path) -> None:
    s = train(config(tmp_path / "run", preset="binary_rram")).summary
    assert s["test_accuracy"] > 0.6


def test_a_resumed_bold_run_ends_with_the_numbers_of_an_uninterrupted_one(tmp_path: Path) -> None:
    changes = {"epochs": 2, "checkpoint_every": 20, "preset": "binary_rram"}
    whole = train(config(tmp_path / "whole", **changes)).summary

    def crash(step: int, epoch: int, stats: Any) -> None:
        if step == 55:
            raise Crash("stop")

    with pytest.raises(Crash):
        train(config(tmp_path / "cut", **changes), on_step=crash)
    again = resume(tmp_path / "cut").summary
    for key in ("test_accuracy", "train_accuracy", "test_accuracy_per_epoch", "bold"):
        assert again[key] == whole[key], key
    assert [e["train_loss"] for e in again["epochs"]] == [e["train_loss"] for e in whole["epochs"]]


@pytest.mark.parametrize(("flags", "message"), [
    (["--rule", "bold"], "bold holds Boolean weights: it needs a binary device preset"),
    (["--rule", "bsl", "--preset", "binary_rram"], "is a two-state device: rule bsl needs analog"),
    (["--rule", "manhattan", "--preset", "binary_ideal"], "rule manhattan needs analog"),
    (["--rule", "bold", "--preset", "binary_ideal", "--surrogate", "relu"], "surrogate = 'relu'"),
    (["--rule", "bold", "--preset", "binary_ideal", "--variation-lr", "0"], "variation_lr = 0"),
    (["--rule", "bold", "--preset", "binary_ideal", "--layers", "c8k3"], "bold takes dense layers only"),
    (["--rule", "bold", "--preset", "binary_ideal", "--scheme", "set_only"], "use push_pull"),
])
def test_bad_bold_input_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                               flags: list[str], message: str) -> None:
    run = tmp_path / "run"
    assert main(["train", *flags, "--dataset", "digits", "--out", str(run), "--progress", "false"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_the_shipped_switching_study_and_run_file_are_valid() -> None:
    from bsl.config import load_config_file
    from sims.spec import load_sweep

    root = Path(__file__).resolve().parent.parent
    points = load_sweep(root / "sims" / "bold_switching.toml").expand()
    assert [p.device["switch_probability"] for p in points] == [1.0, 0.95, 0.9, 0.85, 0.8]
    assert {(p.config["rule"], p.config["preset"], p.config["dataset"]) for p in points} == {
        ("bold", "binary_rram", "mnist")}
    values = load_config_file(root / "examples" / "bold" / "bold_mnist.toml")
    c = TrainConfig(**values)
    assert (c.rule, c.preset, c.layers) == ("bold", "binary_ideal", "1024,1024")
