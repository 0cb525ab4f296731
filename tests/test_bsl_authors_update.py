"""BSL as paper 003's authors ran it: the per-synapse accumulator (``--update accumulate``)
and the sampled softmax output error (``--output-error softmax_sample``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from bsl.accumulator import accumulate_and_fire
from bsl.binarize import sampled_one_hot
from bsl.cli import main
from bsl.config import TrainConfig
from bsl.train import resume, train


def test_fires_exactly_at_the_threshold_and_keeps_the_remainder() -> None:
    acc = torch.zeros(1, 4)
    steps = [  # products added, pulses expected, accumulator after (threshold 3), by hand
        ([2, -2, 3, 0], [0, 0, 1, 0], [2, -2, 0, 0]),
        ([1, -1, 2, 0], [1, -1, 0, 0], [0, 0, 2, 0]),
        ([7, -8, 1, 2], [1, -1, 1, 0], [1, -2, 0, 2]),  # 7 and -8 reach 2 thresholds: one pulse each
        ([-1, 2, -2, -5], [0, 0, 0, -1], [0, 0, -2, 0]),
    ]
    for products, pulses, after in steps:
        fired = accumulate_and_fire(acc, torch.tensor([products], dtype=torch.float32), 3.0)
        assert fired.dtype == torch.int64
        assert fired.tolist() == [pulses]
        assert acc.tolist() == [[float(v) for v in after]]


def test_bad_threshold_and_shape_are_refused() -> None:
    with pytest.raises(ValueError, match="threshold = 0"):
        accumulate_and_fire(torch.zeros(2, 2), torch.ones(2, 2), 0)
    with pytest.raises(ValueError, match="expected shape"):
        accumulate_and_fire(torch.zeros(2, 2), torch.ones(2, 3), 1.0)


def _config(out: Path, **changes: Any) -> TrainConfig:
    values: dict[str, Any] = dict(dataset="digits", train_limit=600, test_limit=300, layers="32", epochs=2,
                                  batch_size=8, update="accumulate", accumulator_threshold=4.0,
                                  update_probability=1.0, dead_zone=0.2, progress=False, out=str(out))
    return TrainConfig(**{**values, **changes})


class Crash(RuntimeError):
    pass


def test_accumulating_bsl_learns_and_resumes_exactly(tmp_path: Path) -> None:
    whole = train(_config(tmp_path / "whole")).summary
    assert whole["test_accuracy"] > 0.5, whole["test_accuracy_per_epoch"]

    def crash(step: int, epoch: int, stats: Any) -> None:
        if step == 100:  # in the second epoch (75 batches each), after a mid-epoch checkpoint
            raise Crash("stop")

    with pytest.raises(Crash):
        train(_config(tmp_path / "cut", checkpoint_every=20), on_step=crash)
    again = resume(tmp_path / "cut").summary
    for key in ("test_accuracy", "train_accuracy", "test_accuracy_per_epoch"):
        assert again[key] == whole[key], key
    assert again["pulses"] == whole["pulses"] and whole["pulses"][0]["set"] > 0


def test_a_threshold_of_zero_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--dataset", "digits", "--update", "accumulate", "--accumulator-threshold", "0",
                 "--out", str(tmp_path / "r"), "--progress", "false"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "accumulator_threshold = 0" in err[0] and "must be a finite number > 0" in err[0]
    assert not (tmp_path / "r").exists()


def test_the_sampled_softmax_error_is_unbiased() -> None:
    gen = torch.Generator().manual_seed(0)
    p = torch.softmax(torch.randn(1, 6, generator=gen) * 1.5, -1)
    n = 40_000
    target = torch.zeros(n, 6)
    target[:, 2] = 1.0
    delta = target - sampled_one_hot(p.expand(n, 6).contiguous(), gen)
    assert set(delta.unique().tolist()) <= {-1.0, 0.0, 1.0}  # ternary
    assert torch.equal(delta.sum(1), torch.zeros(n))  # one class drawn per sample
    sigma = (p * (1 - p) / n).sqrt()
    assert torch.all((delta.mean(0) - (target[0] - p[0])).abs() < 4 * sigma[0])


def test_bsl_with_the_softmax_error_learns(tmp_path: Path) -> None:
    config = _config(tmp_path / "run", update="probabilistic", update_probability=0.3, epochs=3,
                     output_error="softmax_sample")
    assert train(config).summary["test_accuracy"] > 0.5
