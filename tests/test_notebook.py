"""``notebooks/conductance_traces.ipynb`` runs top to bottom on real run folders.

Each test makes a small digits run in ``tmp_path`` and executes the notebook in a fresh
``python3`` kernel (nbclient), pointing it at the run with ``BSL_RUN_DIR``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from bsl.config import TrainConfig
from bsl.train import train
from devices.fitting.characterize import potentiation_depression

pytestmark = pytest.mark.slow  # each test starts a kernel (a few seconds)

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "conductance_traces.ipynb"

SMALL_RUN: dict[str, Any] = dict(
    dataset="digits", train_limit=300, test_limit=100, layers="16", epochs=2, batch_size=8,
    progress=False, snapshot_every=10, seed=0,
)
"""Two epochs of 300 digits: 76 steps, snapshots every 10 of them (a few seconds)."""


def make_run(tmp_path: Path, **changes: Any) -> Path:
    out = tmp_path / "run"
    train(TrainConfig(**{**SMALL_RUN, "out": str(out), **changes}))
    return out


def execute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_dir: Path,
            trace_csv: Path | None = None) -> nbformat.NotebookNode:
    """Execute a fresh copy of the notebook in ``tmp_path``; the kernel inherits os.environ."""
    monkeypatch.setenv("BSL_RUN_DIR", str(run_dir))
    if trace_csv is None:
        monkeypatch.delenv("BSL_TRACE_CSV", raising=False)
    else:
        monkeypatch.setenv("BSL_TRACE_CSV", str(trace_csv))
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the notebook's %matplotlib inline sets it anyway
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    return nb


def outputs(nb: nbformat.NotebookNode) -> list[dict[str, Any]]:
    return [out for cell in nb.cells if cell.cell_type == "code" for out in cell.get("outputs", [])]


def stdout(nb: nbformat.NotebookNode) -> str:
    return "".join(out["text"] for out in outputs(nb)
                   if out["output_type"] == "stream" and out["name"] == "stdout")


def n_images(nb: nbformat.NotebookNode) -> int:
    return sum("image/png" in out.get("data", {}) for out in outputs(nb))


def test_notebook_is_stored_clean() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert code, "the notebook has no code cells"
    assert all(cell.execution_count is None and cell.outputs == [] for cell in code), "clear the outputs"
    assert any('os.environ.get("BSL_RUN_DIR"' in cell.source for cell in code)


def test_notebook_on_device_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_dir = make_run(tmp_path, rule="bsl", preset="rram")
    summary = json.loads((run_dir / "summary.json").read_text())
    nb = execute(tmp_path, monkeypatch, run_dir)
    text = stdout(nb)
    errors = [out for out in outputs(nb) if out["output_type"] == "error"]
    assert not errors, errors
    assert f"final test accuracy: {summary['test_accuracy']:.4f}" in text, text
    assert "rule bsl, dataset digits" in text
    assert "10 snapshot(s) of g_plus, g_minus" in text  # steps 0, 10, 20, 30, 38 (epoch end), ..., 76
    assert "no conductances to plot" not in text
    assert "preset rram" in text  # the fitted trace was simulated with the run's preset
    assert "R^2 SET = " in text
    # synapse traces, histograms over time, weight distribution, pulse statistics, device fit
    assert n_images(nb) == 5


def test_notebook_on_float_run_with_trace_csv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_dir = make_run(tmp_path, rule="sgd", lr=2.0, gain_scale=4.0)
    summary = json.loads((run_dir / "summary.json").read_text())
    csv = potentiation_depression("ideal", pulses=64, cycles=1, devices=2, seed=3).to_csv(
        tmp_path / "trace.csv"
    )
    nb = execute(tmp_path, monkeypatch, run_dir, trace_csv=csv)
    text = stdout(nb)
    assert f"final test accuracy: {summary['test_accuracy']:.4f}" in text, text
    assert "snapshot(s) of weight" in text
    assert "layer 0 is a float layer (rule sgd): no conductances to plot" in text
    assert "no pulses recorded" in text
    assert f"reads from {csv}" in text  # the CSV was fitted, not a simulated trace
    # histograms over time, weight distribution, device fit (no conductance or pulse plots)
    assert n_images(nb) == 3


def test_notebook_missing_run_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(CellExecutionError) as info:
        execute(tmp_path, monkeypatch, tmp_path / "no-such-run")
    message = str(info.value)
    assert "FileNotFoundError" in message
    assert "no-such-run" in message
    assert "bsl train --out runs/example" in message
