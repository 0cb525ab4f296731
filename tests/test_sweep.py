"""Sweeps on Dask: the sweep file, a real LocalCluster run, resuming, the results file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bsl.cli import main
from sims.spec import load_sweep
from sims.sweep import run_sweep

pytestmark = pytest.mark.slow

BASE = """
[base]
dataset = "digits"
train_limit = 120
test_limit = 60
layers = "8"
epochs = 1
trace = false
"""


def spec(tmp_path: Path, body: str, name: str = "s.toml") -> Path:
    path = tmp_path / name
    path.write_text(BASE + body)
    return path


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('[grid]\nnonsense = [1, 2]\n', "not a train setting"),
        ('[grid]\n"device.nonsense" = [1]\n', "not a train setting"),
        ('[grid]\nrule = ["bsl", "nope"]\n', "point rule=nope"),
        ('[grid]\n"device.dw_min_std" = [-1.0]\n', "dw_min_std"),
        ("", "give a \\[grid\\]"),
        ("[grid]\nseed = []\n", "no values"),
        ("[[points]]\nseed = 1\n[[points]]\nseed = 1\n", "same swept values"),
        ("[extra]\n[grid]\nseed = [1]\n", "unknown table"),
    ],
)
def test_bad_sweep_files_are_refused(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_sweep(spec(tmp_path, body))


def test_grid_and_points_expand() -> None:
    from sims.spec import SweepSpec

    s = SweepSpec({"epochs": 1}, {"rule": ["bsl", "sgd"], "device.dw_min_std": [0.0, 0.3]}, [{"seed": 5}])
    points = s.expand()
    assert len(points) == 5 and s.keys == ["rule", "device.dw_min_std", "seed"]
    assert points[1].config == {"epochs": 1, "rule": "bsl"} and points[1].device == {"dw_min_std": 0.3}
    assert points[-1].name == "seed=5" and points[-1].device == {}


def test_sweep_runs_resumes_and_gathers(tmp_path: Path) -> None:
    import xarray as xr

    path = spec(tmp_path, '[grid]\n"device.dw_min_std" = [0.0, 0.5]\nrule = ["bsl", "manhattan"]\n')
    study = tmp_path / "study"
    done: list[str] = []
    ports: set[int] = set()

    def record(name: str) -> None:
        done.append(name)
        ports.update(_listening_ports())  # the LocalCluster's scheduler runs in this process

    results = run_sweep(path, study, workers=2, progress=False, on_done=record)
    assert len(done) == 4
    assert ports and 8787 not in ports  # no dashboard unless asked for: nothing on Dask's usual port
    with xr.open_dataset(results, engine="h5netcdf") as ds:
        acc = ds["test_accuracy"].load()
        assert dict(acc.sizes) == {"dw_min_std": 2, "rule": 2}
        assert list(ds["rule"].values) == ["bsl", "manhattan"]
        np.testing.assert_allclose(ds["dw_min_std"].values, [0.0, 0.5])
        assert ds.attrs["finished_points"] == 4
    assert np.isfinite(acc.values).all() and (acc.values > 0.1).any()
    folder = study / "points" / "dw_min_std=0.5,rule=bsl"
    summary = json.loads((folder / "summary.json").read_text())
    assert acc.sel(dw_min_std=0.5, rule="bsl").item() == summary["test_accuracy"]
    assert "dw_min_std = 0.5" in (folder / "preset.toml").read_text()  # the swept device is what trained
    # A rerun skips finished points; a half-written point folder is run again from scratch.
    (study / "points" / "dw_min_std=0.0,rule=bsl" / "summary.json").unlink()
    stamp = (folder / "summary.json").stat().st_mtime_ns
    again: list[str] = []
    run_sweep(path, study, workers=1, progress=False, on_done=again.append)
    assert again == ["dw_min_std=0.0,rule=bsl"]
    assert (folder / "summary.json").stat().st_mtime_ns == stamp
    # Another sweep file cannot reuse the study folder.
    other = spec(tmp_path, "[grid]\nseed = [3]\n", "other.toml")
    with pytest.raises(ValueError, match="holds another sweep"):
        run_sweep(other, study, workers=1, progress=False)


def test_sweep_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = spec(tmp_path, '[grid]\nrule = ["bsl", "sgd"]\nseed = [0, 1]\n')
    assert main(["sweep", str(path), "--out", str(tmp_path / "study"), "--workers", "2",
                 "--progress", "false"]) == 0
    assert "results.nc" in capsys.readouterr().out
    assert main(["sweep-plot", str(tmp_path / "study")]) == 0
    png = (tmp_path / "study" / "plots" / "accuracy_vs_rule.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["sweep-plot", str(tmp_path / "nothing")]) == 2
    assert main(["sweep", str(path), "--out", str(tmp_path / "s2"), "--workers", "-1"]) == 2


def _listening_ports() -> set[int]:
    import psutil

    return {c.laddr.port for c in psutil.Process().net_connections("tcp") if c.status == psutil.CONN_LISTEN}


def test_dashboard_needs_bokeh_and_a_local_cluster(tmp_path: Path) -> None:
    import importlib.util

    path = spec(tmp_path, "[grid]\nseed = [0]\n")
    with pytest.raises(ValueError, match="only without --scheduler"):
        run_sweep(path, tmp_path / "a", scheduler="tcp://127.0.0.1:1", dashboard=":8787")
    if importlib.util.find_spec("bokeh") is None:
        with pytest.raises(ValueError, match="needs bokeh"):
            run_sweep(path, tmp_path / "b", dashboard=":8787")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()  # refused before anything


def test_a_killed_worker_does_not_lose_its_point(tmp_path: Path) -> None:
    """SIGKILL one worker process while points are running: Dask restarts it and runs the
    lost point again; every point ends finished."""
    import os
    import signal

    from distributed import get_client

    path = spec(tmp_path, "[grid]\nseed = [0, 1, 2, 3, 4, 5]\n")
    killed: list[int] = []

    def kill_a_worker(_name: str) -> None:
        if killed:
            return
        pids = sorted(get_client().run(os.getpid).values())  # the sweep's client: worker processes
        assert len(pids) == 2 and os.getpid() not in pids
        os.kill(pids[0], signal.SIGKILL)
        killed.append(pids[0])

    results = run_sweep(path, tmp_path / "study", workers=2, progress=False, on_done=kill_a_worker)
    assert killed
    import xarray as xr

    with xr.open_dataset(results, engine="h5netcdf") as ds:
        assert ds.attrs["finished_points"] == 6
        assert np.isfinite(ds["test_accuracy"].values).all()


@pytest.mark.parametrize("name", ["c2c_noise", "nonlinearity", "stuck_levels"])
def test_shipped_studies_are_valid(name: str) -> None:
    study = load_sweep(Path(__file__).resolve().parent.parent / "sims" / f"{name}.toml")
    points = study.expand()
    assert len(points) >= 24 and all(p.config["dataset"] == "mnist" for p in points)
    assert {p.config["rule"] for p in points} >= {"bsl", "manhattan"}
