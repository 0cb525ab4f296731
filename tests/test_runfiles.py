"""Run files: the HDF5 trace layout, checkpoints, exact resume, the reader API and
``bsl inspect`` / ``bsl plot``. Short digits runs in ``tmp_path``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import torch

from bsl.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from bsl.cli import main
from bsl.config import TrainConfig
from bsl.rundir import CHECKPOINT_FILE, RunDirError
from bsl.runs import Run, RunError
from bsl.traces import LAYOUT_VERSION, TraceWriter
from bsl.train import resume, train
from devices.hil.journal import OPERATION_DTYPE

pytestmark = pytest.mark.usefixtures("single_thread")

SMALL: dict[str, Any] = dict(
    dataset="digits", train_limit=240, test_limit=120, layers="16", epochs=3, batch_size=8,
    progress=False, seed=1, preset="rram", update_probability=0.3, dead_zone=0.2, anneal=1.0,
)


class Crash(Exception):
    """Stands in for a failure in the middle of a run."""


def crash_at(step: int) -> Any:
    def on_step(s: int, epoch: int, stats: Any) -> None:
        if s == step:
            raise Crash(f"crash at batch {s}")
    return on_step


def small(out: Path, **changes: Any) -> TrainConfig:
    return TrainConfig(**{**SMALL, "out": str(out), **changes})


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("runs") / "bsl"
    return out, train(small(out, snapshot_every=7)).summary


# -- the trace layout ---------------------------------------------------------------
def test_trace_file_layout(finished: tuple[Path, dict[str, Any]]) -> None:
    out, summary = finished
    with h5py.File(out / "traces.h5", "r") as f:
        assert f.attrs["layout_version"] == LAYOUT_VERSION
        assert json.loads(f.attrs["config"]) == summary["config"]
        assert f.attrs["seed"] == 1 and f.attrs["package_version"] == summary["versions"]["memristor-bsl"]
        assert f.attrs["git_commit"]
        device = json.loads(f.attrs["device"])
        assert [d["crossbar"]["model"]["g_max"] for d in device] == [1e-4, 1e-4]  # the rram preset
        assert len(device[0]["crossbar"]["model"]) > 10
        steps = f["steps"][:]
        n_steps = summary["steps"]
        assert n_steps == 3 * 30
        np.testing.assert_array_equal(steps["step"], np.arange(1, n_steps + 1))
        np.testing.assert_array_equal(steps["samples"], 8)
        assert steps["set_pulses"].shape == (n_steps, 2)
        # per-batch pulse records add up to the devices' own counters
        assert steps["set_pulses"].sum(0).tolist() == [p["set"] for p in summary["pulses"]]
        assert steps["reset_pulses"].sum(0).tolist() == [p["reset"] for p in summary["pulses"]]
        epochs = f["epochs"][:]
        np.testing.assert_allclose(epochs["test_accuracy"], summary["test_accuracy_per_epoch"])
        assert epochs["step"].tolist() == [30, 60, 90]
        for layer, (rows, cols) in enumerate([(65, 16), (17, 10)]):
            g = f[f"snapshots/layer{layer}"]
            # at the start, every 7 batches, and after every epoch (once when both fall together)
            expected = sorted({0, *range(7, n_steps + 1, 7), 30, 60, 90})
            assert g["step"][:].tolist() == expected
            for name in ("g_plus", "g_minus"):
                ds = g[name]
                assert ds.shape == (len(expected), rows, cols) and ds.dtype == np.float32
                assert ds.attrs["unit"] == "S" and ds.compression == "gzip" and ds.chunks == (1, rows, cols)
                assert 0 < ds[:].min() and ds[:].max() <= 1.2e-4
        assert f["operations"].dtype == OPERATION_DTYPE and f["operations"].shape == (0,)
        kinds = [k.decode() for k in f["events"]["kind"]]
        assert kinds[0] == "start" and kinds[-1] == "finish"


def test_snapshots_are_the_true_device_states(tmp_path: Path) -> None:
    result = train(small(tmp_path / "run", epochs=1))
    with Run(result.run_dir) as run:
        for layer, store in enumerate(result.network.stores()):
            g = store.crossbar.conductances()  # type: ignore[attr-defined]
            last = run.snapshot(layer)
            np.testing.assert_allclose(last["g_plus"], g[0].numpy(), rtol=1e-6)
            np.testing.assert_allclose(last["g_minus"], g[1].numpy(), rtol=1e-6)


def test_float_and_carry_runs_record_their_own_fields(tmp_path: Path) -> None:
    sgd = train(small(tmp_path / "sgd", rule="sgd", lr=2.0, gain_scale=4.0, epochs=1))
    with Run(sgd.run_dir) as run:
        assert run.snapshot_fields(0) == ["weight"]
        np.testing.assert_allclose(run.weights(1), sgd.network.layers[1].store.weights().numpy(), rtol=1e-6)
        assert run.conductance_range(0) is None
        assert run.pulses()["set"].sum() == 0
    carry = train(small(tmp_path / "carry", carry_period=5, carry_significance=4.0, epochs=1))
    with Run(carry.run_dir) as run:
        assert run.snapshot_fields(0) == ["g_plus", "g_minus", "lsb_g_plus", "lsb_g_minus"]
        assert run.layers()[0]["store"]["store"] == "carry"
        pulses = run.pulses()  # both arrays' pulses, transfers and verify pulses included
        assert pulses["set"].sum(0).tolist() == [p["set"] for p in carry.summary["pulses"]]
        assert pulses["reset"].sum(0).tolist() == [p["reset"] for p in carry.summary["pulses"]]


def test_no_trace_when_turned_off(tmp_path: Path) -> None:
    result = train(small(tmp_path / "run", epochs=1, trace=False))
    assert not (result.run_dir / "traces.h5").exists()
    assert result.summary["trace_file"] is None
    with pytest.raises(RunError, match="no traces.h5"):
        Run(result.run_dir)


def test_step_rows_reach_the_file_at_once(tmp_path: Path) -> None:
    """Step rows go straight to their bytes in the file: another process sees them while
    the writer is still open, and unwritten rows read as zeros."""
    writer = TraceWriter.create(tmp_path / "traces.h5", attrs={}, layers=[{}, {}],
                                snapshot_fields=[["g_plus"], ["g_plus"]], shapes=[(3, 2), (2, 2)],
                                total_steps=5)
    writer.step(1, 0, 8, 3, 0.5, np.array([[4, 1], [2, 0]]))
    writer.step(2, 0, 8, 5, 0.25, np.array([[10, 1], [3, 7]]))
    reader = ("import sys, h5py, numpy as np; f = h5py.File(sys.argv[1], 'r', locking=False); "
              "np.save(sys.argv[2], f['steps'][:])")
    subprocess.run([sys.executable, "-c", reader, str(tmp_path / "traces.h5"), str(tmp_path / "rows.npy")],
                   check=True, timeout=60)
    rows = np.load(tmp_path / "rows.npy")
    writer.close()
    assert rows["step"].tolist() == [1, 2, 0, 0, 0]
    assert rows["set_pulses"][:2].tolist() == [[4, 1], [6, 0]]  # per-batch differences
    assert rows["reset_pulses"][:2].tolist() == [[2, 0], [1, 7]]
    assert rows["loss"][:2].tolist() == [0.5, 0.25] and rows["correct"][:2].tolist() == [3, 5]
    writer = TraceWriter.reopen(tmp_path / "traces.h5", steps=1, epochs=0)  # resume after batch 1
    writer.close()
    with h5py.File(tmp_path / "traces.h5", "r") as f:
        assert f["steps"]["step"].tolist() == [1, 0, 0, 0, 0]


# -- the reader ---------------------------------------------------------------------
def test_reader_returns_consistent_arrays(finished: tuple[Path, dict[str, Any]]) -> None:
    out, summary = finished
    with Run(out) as run:
        assert run.finished and not run.resumable
        assert run.summary == summary
        e = run.epochs()
        assert e["epoch"].tolist() == [1, 2, 3]
        per_epoch = run.pulses(per="epoch")
        per_step = run.pulses(per="step")
        assert per_epoch["epoch"].tolist() == [0, 1, 2]
        np.testing.assert_array_equal(per_epoch["set"].sum(0), per_step["set"].sum(0))
        np.testing.assert_array_equal(per_epoch["set"][1], per_step["set"][30:60].sum(0))
        steps = run.snapshot_steps(0)
        cell = run.synapse(0, row=5, col=3)
        for k in (0, len(steps) // 2, len(steps) - 1):
            assert cell["g_plus"][k] == run.snapshot(0, k)["g_plus"][5, 3]
        g_min, g_max = run.conductance_range(0)  # type: ignore[misc]
        last = run.snapshot(0, -1)
        expected = (last["g_plus"] - last["g_minus"].astype(float)) / (g_max - g_min)
        np.testing.assert_allclose(run.weights(0), expected)
        counts, edges = run.histograms(0, "g_minus", 30)
        assert counts.shape == (len(steps), 30) and edges.shape == (31,)
        assert (counts.sum(1) == 65 * 16).all()  # every device of every snapshot counted once
        with pytest.raises(IndexError, match="layer 5"):
            run.snapshot(5)
        with pytest.raises(IndexError, match="outside"):
            run.synapse(0, 65, 0)
        with pytest.raises(KeyError, match="weight"):
            run.histograms(0, "weight")
        with pytest.raises(ValueError, match="per"):
            run.pulses(per="hour")


def test_operation_journal_round_trip(tmp_path: Path) -> None:
    """The per-operation table that instrument-backed runs fill."""
    writer = TraceWriter.create(tmp_path / "traces.h5", attrs={"config": {"rule": "bsl"}},
                                layers=[{"describe": "dense 2->2"}], snapshot_fields=[["g_plus"]],
                                shapes=[(3, 2)], total_steps=4)
    ops = np.zeros(3, dtype=OPERATION_DTYPE)
    ops["op"] = [b"read", b"pulse", b"pulse-read"]
    ops["voltage"] = [0.2, 1.5, -1.2]
    ops["width"] = [1e-6, 1e-7, 1e-7]
    ops["current"] = [4e-6, np.nan, 2e-6]
    ops["row"], ops["col"] = [0, 1, 2], [1, 1, 0]
    writer.operations(ops)
    writer.operations(ops[:1])
    writer.close()
    with h5py.File(tmp_path / "traces.h5", "r") as f:
        got = f["operations"][:]
    assert len(got) == 4
    assert got["op"].tolist() == [b"read", b"pulse", b"pulse-read", b"read"]
    np.testing.assert_array_equal(got["voltage"], [0.2, 1.5, -1.2, 0.2])


# -- checkpoint and resume ----------------------------------------------------------
def _same_run(a: Path, b: Path) -> None:
    """Two run folders hold the same numbers (times and events aside)."""
    sa, sb = (json.loads((p / "summary.json").read_text()) for p in (a, b))
    for key in ("test_accuracy", "test_accuracy_stochastic", "train_accuracy", "test_accuracy_per_epoch",
                "pulses", "device_counters", "steps"):
        assert sa[key] == sb[key], key
    assert [e["train_loss"] for e in sa["epochs"]] == [e["train_loss"] for e in sb["epochs"]]
    with h5py.File(a / "traces.h5", "r") as fa, h5py.File(b / "traces.h5", "r") as fb:
        for name in ("step", "epoch", "samples", "correct", "loss", "set_pulses", "reset_pulses"):
            np.testing.assert_array_equal(fa["steps"][name], fb["steps"][name])
        for layer in ("layer0", "layer1"):
            for name in fa[f"snapshots/{layer}"]:
                a_snap, b_snap = fa[f"snapshots/{layer}/{name}"][:], fb[f"snapshots/{layer}/{name}"][:]
                np.testing.assert_array_equal(a_snap, b_snap)


@pytest.mark.parametrize(
    ("changes", "crash"),
    [
        (dict(), 47),                                                  # mid-epoch, epoch checkpoint
        (dict(checkpoint_every=20, snapshot_every=9), 53),             # mid-epoch checkpoints
        (dict(carry_period=4, carry_significance=4.0, checkpoint_every=25), 61),
        (dict(rule="sgd", lr=2.0, gain_scale=4.0, checkpoint_every=10), 33),
    ],
)
def test_resumed_run_reproduces_the_uninterrupted_one(
    changes: dict[str, Any], crash: int, tmp_path: Path
) -> None:
    train(small(tmp_path / "whole", **changes))
    with pytest.raises(Crash):
        train(small(tmp_path / "broken", **changes), on_step=crash_at(crash))
    with Run(tmp_path / "broken") as run:
        assert not run.finished and run.resumable
        assert run.events()[-1]["kind"] == "error"
        assert run.steps()["step"][-1] == crash  # the crashing batch itself was recorded
    result = resume(tmp_path / "broken")
    assert result.summary["resumes"] == 1
    _same_run(tmp_path / "whole", tmp_path / "broken")
    with Run(tmp_path / "broken") as run:
        kinds = [e["kind"] for e in run.events()]
        assert kinds.count("resume") == 1 and kinds[-1] == "finish"


def test_resume_twice_in_a_row(tmp_path: Path) -> None:
    train(small(tmp_path / "whole", checkpoint_every=15))
    with pytest.raises(Crash):
        train(small(tmp_path / "broken", checkpoint_every=15), on_step=crash_at(20))
    with pytest.raises(Crash):
        resume(tmp_path / "broken", on_step=crash_at(70))
    assert resume(tmp_path / "broken").summary["resumes"] == 2
    _same_run(tmp_path / "whole", tmp_path / "broken")


def test_resume_refusals(tmp_path: Path, finished: tuple[Path, dict[str, Any]]) -> None:
    with pytest.raises(RunDirError, match="already finished"):
        resume(finished[0])
    with pytest.raises(RunDirError, match="nothing to resume"):
        resume(tmp_path)
    with pytest.raises(RunDirError, match="already holds a run"):
        train(small(finished[0]))


def test_checkpoint_write_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / CHECKPOINT_FILE
    save_checkpoint(path, {"value": torch.arange(3)})

    def broken_save(obj: Any, fh: Any) -> None:
        fh.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"value": torch.arange(5)})
    monkeypatch.undo()
    assert load_checkpoint(path)["value"].tolist() == [0, 1, 2]  # the previous one survives
    path.write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="cannot be read"):
        load_checkpoint(path)


# -- the commands -------------------------------------------------------------------
def test_inspect_prints_a_summary(
    finished: tuple[Path, dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    out, summary = finished
    assert main(["inspect", str(out)]) == 0
    text = capsys.readouterr().out
    assert f"test accuracy {summary['test_accuracy']:.4f}" in text
    assert "dense 64->16" in text and f"SET {summary['pulses'][0]['set']:,}" in text
    last_epoch = f"      3  {summary['test_accuracy_per_epoch'][-1]:.4f}"
    assert last_epoch in text  # the epoch table's last row
    assert "finish" in text


def test_inspect_tells_how_to_resume(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(Crash):
        train(small(tmp_path / "run", epochs=2), on_step=crash_at(40))
    assert main(["inspect", str(tmp_path / "run")]) == 0
    text = capsys.readouterr().out
    assert "unfinished at batch 40" in text and f"bsl train --resume {tmp_path / 'run'}" in text


def test_plot_writes_png_figures(finished: tuple[Path, dict[str, Any]], tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plot", str(finished[0]), "--out", str(tmp_path / "figs")]) == 0
    names = sorted(p.name for p in (tmp_path / "figs").iterdir())
    assert names == ["conductance_histograms.png", "learning_curves.png", "pulses.png", "weights.png"]
    for p in (tmp_path / "figs").iterdir():
        data = p.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    assert capsys.readouterr().out.count(".png") == 4


def test_command_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                     finished: tuple[Path, dict[str, Any]]) -> None:
    assert main(["inspect", str(tmp_path)]) == 2
    assert "no traces.h5" in capsys.readouterr().err
    assert main(["plot", str(tmp_path / "missing")]) == 2
    assert "not a folder" in capsys.readouterr().err
    assert main(["train", "--resume", str(finished[0]), "--epochs", "5"]) == 2
    err = capsys.readouterr().err
    assert "drop --epochs" in err and err.count("\n") == 1
    assert main(["train", "--resume", str(finished[0])]) == 2
    assert "already finished" in capsys.readouterr().err
