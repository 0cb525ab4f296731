"""BoolNet and its Bi-Real baseline: the binary pieces on hand-checked tensors, training on
digits, exact resume, deployment on ideal binary crossbars, bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from bsl.boolnet.adapter import NET_FILE, load_net
from bsl.boolnet.binarize import (
    bool_or,
    channel_shuffle,
    folded_threshold,
    multi_slice,
    sign_ste,
    slice_offsets,
    xnor,
)
from bsl.boolnet.deploy import deploy, undeploy
from bsl.cli import main
from bsl.config import TrainConfig
from bsl.data import load_dataset
from bsl.rules.boolnet import BinaryNetSettings
from bsl.train import resume, train

pytestmark = pytest.mark.usefixtures("single_thread")

LAYERS = "16,16,32"


class Crash(RuntimeError):
    pass


def config(out: Path, rule: str, **changes: Any) -> TrainConfig:
    values = {"rule": rule, "layers": LAYERS, "batch_size": 32, "epochs": 3, "progress": False,
              "out": str(out), "anneal": 1.0, "trace": False, **changes}
    return TrainConfig(**values)


def test_sign_forwards_the_sign_and_passes_the_gradient_only_where_x_is_within_one() -> None:
    x = torch.tensor([-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5], requires_grad=True)
    y = sign_ste(x)
    assert y.tolist() == [-1, -1, -1, 1, 1, 1, 1]  # sign(0) = +1 (T)
    y.backward(torch.arange(1.0, 8.0))
    assert x.grad is not None
    assert x.grad.tolist() == [0, 2, 3, 4, 5, 6, 0]  # upstream x [|x| <= 1]


def test_multi_slice_gives_k_sign_maps_at_the_offsets_and_refuses_k_below_one() -> None:
    assert slice_offsets(4) == pytest.approx([-2 / 3, -1 / 3, 1 / 3, 2 / 3])
    assert slice_offsets(1) == [0.0] and slice_offsets(3) == pytest.approx([-0.5, 0.0, 0.5])
    x = torch.tensor([[[-0.9, -0.5, 0.0, 0.5, 0.9]]])  # (n=1, c=1, 5)
    s = multi_slice(x, 4)
    assert s.shape == (1, 4, 5)
    assert s[0].tolist() == [[-1, 1, 1, 1, 1],  # x >= -2/3
                             [-1, -1, 1, 1, 1],  # x >= -1/3
                             [-1, -1, -1, 1, 1],  # x >= 1/3
                             [-1, -1, -1, -1, 1]]  # x >= 2/3
    two = multi_slice(torch.zeros((2, 3, 4, 4)), 2)
    assert two.shape == (2, 6, 4, 4) and (two[:, :3] == 1).all() and (two[:, 3:] == -1).all()
    for bad in (0, -1):
        with pytest.raises(ValueError, match="slices"):
            slice_offsets(bad)
        with pytest.raises(ValueError, match="slices"):
            BinaryNetSettings(slices=bad)


def test_boolean_shortcuts_and_channel_shuffle_on_a_truth_table() -> None:
    a, b = torch.tensor([1.0, 1.0, -1.0, -1.0]), torch.tensor([1.0, -1.0, 1.0, -1.0])
    assert xnor(a, b).tolist() == [1, -1, -1, 1]
    assert bool_or(a, b).tolist() == [1, 1, 1, -1]
    x = torch.arange(6.0).reshape(1, 6, 1, 1)
    assert channel_shuffle(x, 2).flatten().tolist() == [0, 3, 1, 4, 2, 5]
    assert channel_shuffle(x, 1).flatten().tolist() == [0, 1, 2, 3, 4, 5]


def test_batch_norm_folded_into_comparator_thresholds_gives_the_bits_of_bn_and_sign() -> None:
    gen = torch.Generator().manual_seed(3)
    norm = nn.BatchNorm2d(6).eval()
    assert norm.running_mean is not None and norm.running_var is not None
    with torch.no_grad():
        norm.running_mean.copy_(torch.randn(6, generator=gen) * 5)
        norm.running_var.copy_(torch.rand(6, generator=gen) * 4 + 0.1)
        norm.weight.copy_(torch.tensor([1.5, -0.7, 0.2, -2.0, 0.0, 1.0]))  # both signs and a zero gamma
        norm.bias.copy_(torch.randn(6, generator=gen))
    scale = torch.rand(6, generator=gen) + 0.05
    s = torch.randint(-20, 21, (50, 6, 3, 3), generator=gen).double()  # integer XNOR-popcount products
    with torch.no_grad():
        want = norm((scale[None, :, None, None] * s).float()) >= 0
    theta, polarity = folded_threshold(norm, scale)
    got = polarity[None, :, None, None] * (s - theta[None, :, None, None]) >= 0
    assert (got == want).all()
    assert want.any() and (~want).any()


@pytest.mark.parametrize(("rule", "least"), [("boolnet", 0.5), ("bireal", 0.6)])
def test_each_rule_learns_digits_well_above_chance_and_saves_its_net(tmp_path: Path, rule: str,
                                                                      least: float) -> None:
    s = train(config(tmp_path / "run", rule)).summary
    assert s["test_accuracy"] > least  # chance 0.1; measured 0.65 (boolnet) and 0.81 (bireal)
    net = s["binary_net"]
    assert (net["kind"], net["slices"], net["layers"]) == (rule, 4, LAYERS)
    facts = s["layer_facts"]
    assert [f["kind"] for f in facts] == ["binary_conv"] * 5 + ["binary_dense"]
    conv2_rows = (4 * 16 if rule == "boolnet" else 16) * 9  # BoolNet's second conv sees k slices
    assert (facts[0]["rows"], facts[0]["positions"], facts[2]["rows"]) == (4 * 9, 64, conv2_rows)
    assert (tmp_path / "run" / NET_FILE).is_file()


def test_a_resumed_run_ends_with_the_numbers_of_an_uninterrupted_one(tmp_path: Path) -> None:
    whole = train(config(tmp_path / "whole", "boolnet", epochs=2)).summary

    def crash(step: int, epoch: int, stats: Any) -> None:
        if step == 55:  # in the second epoch, after a mid-epoch checkpoint
            raise Crash("stop")

    with pytest.raises(Crash):
        train(config(tmp_path / "cut", "boolnet", epochs=2, checkpoint_every=20), on_step=crash)
    again = resume(tmp_path / "cut").summary
    for key in ("test_accuracy", "train_accuracy", "test_accuracy_per_epoch"):
        assert again[key] == whole[key], key
    assert [e["train_loss"] for e in again["epochs"]] == [e["train_loss"] for e in whole["epochs"]]
    a, b = load_net(tmp_path / "whole" / NET_FILE)[0], load_net(tmp_path / "cut" / NET_FILE)[0]
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(x, y), name


def test_deploy_on_ideal_binary_crossbars_reproduces_the_software_predictions(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = train(config(tmp_path / "run", "boolnet", epochs=1)).run_dir
    net, _ = load_net(run / NET_FILE)
    x = load_dataset("digits", seed=0).x_test
    with torch.no_grad():
        software = net(x).argmax(1)
        layers = deploy(net, "binary_ideal", 0)
        on_devices = net(x).argmax(1)
        undeploy(net)
    assert all(layer["misprogrammed"] == 0 for layer in layers)
    assert torch.equal(software, on_devices)
    assert main(["deploy-binary", str(run), "--preset", "binary_ideal"]) == 0
    result = json.loads((run / "deploy_binary_ideal_seed0.json").read_text())
    assert result["crossbar_accuracy"] == result["software_accuracy"]
    assert "through the crossbars" in capsys.readouterr().out


@pytest.mark.parametrize(("args", "message"), [
    (["--rule", "boolnet", "--slices", "0"], "slices = 0: must be >= 1"),
    (["--rule", "bireal", "--binary-lr", "0"], "binary_lr = 0.0"),
    (["--rule", "boolnet", "--layers", "16,24"], "multiple"),
    (["--rule", "boolnet", "--layers", "c8k3s1"], "channel counts"),
])
def test_bad_settings_get_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                              args: list[str], message: str) -> None:
    assert main(["train", *args, "--epochs", "1", "--out", str(tmp_path / "run"), "--progress", "false"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err


def test_unknown_options_and_wrong_presets_are_refused(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--rule", "boolnet", "--slicez", "3"]) == 2
    assert "unrecognized arguments: --slicez" in capsys.readouterr().err
    assert main(["deploy-binary", str(tmp_path), "--preset", "rram"]) == 2  # an analog preset
    assert "binary device preset" in capsys.readouterr().err
    assert main(["deploy-binary", str(tmp_path)]) == 2  # no trained net there
    assert NET_FILE in capsys.readouterr().err
