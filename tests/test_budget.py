"""Runs that cannot fit are refused in one line before anything is allocated: the
estimator's numbers for a small configuration worked out by hand, its crossbar figures
against the arrays' real tensors, the refusals of ``bsl train`` (memory, disk, counts
that overflow the trace) and of ``bsl device-response`` (too many rows)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from bsl import budget
from bsl.budget import SIM_RESIDENT, BudgetError, check_run, estimate, layer_sizes, refusal
from bsl.cli import main
from bsl.config import TrainConfig
from bsl.data import load_dataset
from bsl.network import build_network, parse_layers
from bsl.stores import FloatStore
from devices import SimulatedCrossbar
from devices.fitting.characterize import MAX_TRACE_ROWS, potentiation_depression, read_trace_csv

SMALL: dict[str, Any] = dict(dataset="digits", train_limit=240, test_limit=120, layers="16", epochs=3,
                             batch_size=8, snapshot_every=7, progress=False)


def test_estimate_of_a_small_run_by_hand() -> None:
    b = estimate(TrainConfig(**SMALL), (1, 8, 8), 10, 240, 120)
    # crossbars 65x16 and 17x10: 1040 + 170 = 1210 cells, 2 devices each
    assert [(s.rows, s.cols, s.positions) for s in b.layers] == [(65, 16, 1), (17, 10, 1)]
    assert b.devices == 2420 and b.total_steps == 90 and b.snapshots == 16
    assert b.memory == {
        "crossbars": 75 * 2420,
        "update workspace": 120 * 2 * 1040,  # the largest array's update (> 38 B x 2420 checkpoint copy)
        "batch activations": 4 * 8 * ((3 * 65 + 8 * 16) + (3 * 17 + 8 * 10)),
        "evaluation": 4 * 240 * (3 * 65 + 6 * 16),  # chunk = all 240 training samples, layer 0
        "per-epoch records": 700 * 3,
    }
    assert b.memory_bytes == 75 * 2420 + 700 * 3 + max(120 * 2 * 1040 + 14_528, 279_360)
    assert b.disk == {
        "steps": 90 * 64,  # one segment of 90 rows of 64 B (2 layers)
        "snapshots": 16 * (4 * 2 * 1210 + 64 * 2 * 2),
        "trace metadata": 256_000,
        "checkpoints": 2 * (38 * 2420 + 8 * 240 + 65_536),
        "per-epoch records": 420 * 3,
    }
    assert "steps" not in estimate(TrainConfig(**SMALL, trace=False), (1, 8, 8), 10, 240, 120).disk


def test_layer_sizes_are_those_build_network_makes() -> None:
    spec, shape = "c4k3s2,c6k2s1,24", (1, 28, 28)
    made: list[tuple[int, int]] = []

    def store(rows: int, cols: int, index: int) -> FloatStore:
        made.append((rows, cols))
        return FloatStore(torch.zeros(rows, cols))

    net = build_network(parse_layers(spec), shape, 10, store, 1.0)
    sizes = layer_sizes(spec, shape, 10)
    assert [(s.rows, s.cols) for s in sizes] == made == [(10, 4), (17, 6), (6 * 12 * 12 + 1, 24), (25, 10)]
    assert [s.positions for s in sizes] == [13 * 13, 12 * 12, 1, 1]
    assert [s.describe for s in sizes] == [layer.describe() for layer in net.layers]


def test_crossbar_figure_is_the_arrays_own_tensors() -> None:
    """If the simulated array gains a per-device tensor, SIM_RESIDENT must follow."""
    xbar = SimulatedCrossbar(7, 5, "rram", seed=1)
    xbar.read_forward(torch.ones(1, 7))  # builds the read cache too
    held = 0
    for value in vars(xbar).values():
        for t in value if isinstance(value, tuple) else (value,):
            if isinstance(t, torch.Tensor):
                held += t.numel() * t.element_size()
    assert held == SIM_RESIDENT * 2 * 7 * 5


def test_refusal_is_one_line_naming_the_size_and_the_fix() -> None:
    config = TrainConfig(layers="100000000")
    b = estimate(config, (1, 8, 8), 10, 1437, 360)
    assert b.devices == 2 * (65 * 10**8 + (10**8 + 1) * 10)
    assert refusal(b, config, b.memory_bytes, None) is None
    why = refusal(b, config, b.memory_bytes - 1, None)
    assert why is not None and "\n" not in why
    assert why.startswith(f"this run needs about {budget.size_text(b.memory_bytes)} of memory")
    assert "'100000000' on 15 G devices" in why and why.endswith("use smaller --layers")
    small = TrainConfig(**SMALL)
    b = estimate(small, (1, 8, 8), 10, 240, 120)
    why = refusal(b, small, None, b.disk_bytes - 1, "/data")
    assert why is not None and "free in /data" in why and "90 batch rows" in why and "16 snapshots" in why
    assert refusal(b, small, None, b.disk_bytes, "/data") is None


def _no_allocation(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the network was built before the budget check")

    monkeypatch.setattr("bsl.train.build_model", refuse)


def test_train_refuses_huge_layers_before_allocating(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _no_allocation(monkeypatch)
    monkeypatch.setattr(budget, "available_memory", lambda: 21_300_000_000)
    out = tmp_path / "run"
    assert main(["train", "--layers", "100000000", "--progress", "false", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("bsl train: error: this run needs about 4.57 TB of memory")
    assert "but 21.3 GB are available; use smaller --layers" in err
    assert not out.exists()  # refused before the run folder is made


def test_train_refuses_a_billion_epochs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A billion epochs of digits (180 billion batches) cannot finish, and its per-epoch
    records alone outgrow memory (and its trace any disk): refused, not started."""
    _no_allocation(monkeypatch)
    monkeypatch.setattr(budget, "available_memory", lambda: 64_000_000_000)
    out = tmp_path / "run"
    assert main(["train", "--epochs", "1000000000", "--progress", "false", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "700 GB of memory (per-epoch records 700 GB" in err
    assert err.rstrip().endswith("use fewer --epochs") and not out.exists()
    monkeypatch.setattr(budget, "available_memory", lambda: 10**15)  # memory no object: the disk refuses
    monkeypatch.setattr(budget, "free_disk", lambda folder: (10**12, tmp_path))
    assert main(["train", "--epochs", "1000000000", "--progress", "false", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "need up to 89.1 TB on disk (180,000,000,000 batch rows 11.5 TB" in err
    assert "1,000,000,001 snapshots 77.1 TB" in err and err.rstrip().endswith("or --trace false")
    assert main(["train", "--epochs", "3000000000", "--progress", "false", "--out", str(out)]) == 2
    assert "int32 epoch numbers" in capsys.readouterr().err


def test_check_run_counts_the_files_of_a_run_it_continues(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    data = load_dataset("digits", train_limit=240, test_limit=120)
    config = TrainConfig(**{**SMALL, "out": str(tmp_path / "run")})
    need = check_run(config, data).disk_bytes
    monkeypatch.setattr(budget, "free_disk", lambda folder: (need - 1000, tmp_path))
    with pytest.raises(BudgetError, match=f"free in {tmp_path}"):
        check_run(config, data)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "checkpoint.pt").write_bytes(bytes(1000))  # already on disk
    check_run(config, data)


def test_device_response_refuses_too_many_rows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "trace.csv"
    assert main(["device-response", "--pulses", "1000000000", "--cycles", "1", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "= 2,000,000,002 rows, more than the limit of 10,000,000" in err
    assert "use fewer --pulses, --cycles or --devices" in err and not out.exists()
    with pytest.raises(ValueError, match="more than the 10,000,000"):
        potentiation_depression("ideal", pulses=MAX_TRACE_ROWS // 2, cycles=1)


def test_device_response_progress_counts_reads(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("devices.fitting.characterize.CSV_BLOCK_ROWS", 7)  # the CSV is written in blocks
    out = tmp_path / "trace.csv"
    assert main(["device-response", "--preset", "ideal", "--pulses", "4", "--cycles", "2", "--devices", "3",
                 "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "20/20" in err and "read" in err  # 2 cycles x 2 branches x 5 reads, one bar step per read
    assert "cycle 2/2 reset" in err
    trace = read_trace_csv(out)
    assert len(trace) == 60 and trace.pulse.tolist()[:10] == [0, 1, 2, 3, 4] * 2
