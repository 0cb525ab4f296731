"""``bsl train --torch-device``: refusals everywhere, a real run where CUDA is present."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from bsl.cli import main

SMALL = ["--dataset", "digits", "--layers", "16", "--epochs", "1", "--train-limit", "300",
         "--test-limit", "100", "--progress", "false"]


def _one_line_error(capsys: pytest.CaptureFixture[str], argv: list[str], needle: str) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("bsl train: error: ") and needle in err[0], err


def test_a_malformed_torch_device_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _one_line_error(capsys, ["train", *SMALL, "--out", str(tmp_path / "r"), "--torch-device", "gpu0"],
                    "torch_device = 'gpu0': must be 'cpu', 'cuda' or 'cuda:N'")
    assert not (tmp_path / "r").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _one_line_error(capsys, ["train", *SMALL, "--out", str(tmp_path / "r"), "--torch-device", "cuda"],
                    "CUDA is not available on this machine")
    assert not (tmp_path / "r").exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_rule_written_for_the_cpu_refuses_cuda(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _one_line_error(capsys, ["train", *SMALL, "--rule", "difflogic", "--out", str(tmp_path / "r"),
                             "--torch-device", "cuda"], "runs on ('cpu',) only")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("rule", ["bsl", "sgd"])
def test_training_on_cuda_learns_like_on_the_cpu(tmp_path: Path, rule: str) -> None:
    accuracy = {}
    for device in ("cpu", "cuda"):
        out = tmp_path / device
        assert main(["train", *SMALL, "--rule", rule, "--out", str(out), "--torch-device", device]) == 0
        summary = json.loads((out / "summary.json").read_text())
        assert summary["config"]["torch_device"] == device
        accuracy[device] = summary["test_accuracy"]
    assert accuracy["cuda"] > 0.5
    assert abs(accuracy["cuda"] - accuracy["cpu"]) < 0.15  # different random streams, same learning
