"""Running a sweep on Dask distributed: every point an ordinary ``bsl train`` run.

``run_sweep`` starts a ``LocalCluster`` (one single-threaded worker process per core by
default) or joins a running scheduler, submits the points that have no finished run
folder yet (reruns skip finished points), retries a point whose worker died, shows a
progress bar over points and gathers every finished point into ``STUDY_DIR/results.nc``
(netCDF4/HDF5 that ``xarray.open_dataset`` opens), rewritten after every point so that
nothing finished is ever lost. Layout of a study folder::

    STUDY_DIR/sweep.toml          the sweep file, as given
    STUDY_DIR/points/<name>/      each point's run folder (config, summary, traces, preset.toml)
    STUDY_DIR/results.nc          metrics with one dimension per swept key
"""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from .results import write_results
from .spec import Point, SweepSpec, load_sweep, model_for

RETRIES = 2
"""Times a point is retried after its worker died or it raised."""


class SweepError(ValueError):
    """Some points failed; the finished ones are saved."""


def run_point(point: Point, run_dir: str) -> dict[str, Any]:
    """Train one point into ``run_dir`` (on a worker); return its summary. A point whose
    ``summary.json`` exists is not run again; a half-written folder is started afresh."""
    import json

    import torch

    from bsl.config import TrainConfig
    from bsl.train import train
    from devices.sim.presets import save_preset_file

    folder = Path(run_dir)
    done = folder / "summary.json"
    if done.is_file():
        return dict(json.loads(done.read_text()))
    if folder.exists():
        shutil.rmtree(folder)  # an interrupted attempt: its partial record is of no use to the study
    folder.mkdir(parents=True)
    torch.set_num_threads(1)
    config = dict(point.config)
    if point.device:
        config["preset"] = str(save_preset_file(model_for(point), folder / "preset.toml",
                                                meta={f"swept_{k}": v for k, v in point.device.items()}))
    return train(TrainConfig(**{**config, "out": str(folder), "progress": False})).summary


def finished_points(spec: SweepSpec, study: Path) -> dict[str, dict[str, Any]]:
    """Summaries of the points already finished in ``study``, by point name."""
    import json

    out = {}
    for point in spec.expand():
        path = study / "points" / point.name / "summary.json"
        if path.is_file():
            out[point.name] = json.loads(path.read_text())
    return out


def run_sweep(spec_path: str | Path, study_dir: str | Path, *, scheduler: str = "", workers: int = 0,
              dashboard: str = "", progress: bool = True,
              on_done: Callable[[str], None] | None = None) -> Path:
    """Run every unfinished point of the sweep file; return the results file.

    ``scheduler``: address of a running Dask scheduler (default: start a LocalCluster of
    ``workers`` single-threaded processes, one per core if 0). ``dashboard``: address for
    the LocalCluster's dashboard, e.g. ``":8787"`` (needs bokeh; default: none)."""
    from dask.distributed import Client, as_completed

    if scheduler and dashboard:
        raise ValueError("a dashboard is served by the scheduler: give --dashboard only without --scheduler")
    if dashboard and importlib.util.find_spec("bokeh") is None:
        raise ValueError("the Dask dashboard needs bokeh: pip install 'bokeh>=3.1'")
    spec = load_sweep(spec_path)
    study = Path(study_dir)
    (study / "points").mkdir(parents=True, exist_ok=True)
    copy = study / "sweep.toml"
    if copy.exists() and copy.read_text() != Path(spec_path).read_text():
        raise ValueError(f"{study} holds another sweep ({copy} differs from {spec_path}): "
                         "choose another --out")
    shutil.copyfile(spec_path, copy)
    points = spec.expand()
    results = finished_points(spec, study)
    todo = [p for p in points if p.name not in results]
    results_file = study / "results.nc"
    write_results(spec, results, results_file)
    if not todo:
        return results_file
    cluster = None
    if scheduler:
        client = Client(scheduler)
    else:
        cluster = _local_cluster(workers or _cores(), dashboard)
        client = Client(cluster)
        if dashboard:
            print(f"Dask dashboard: {cluster.dashboard_link}", flush=True)
    failed: dict[str, str] = {}
    try:
        futures = {client.submit(run_point, p, str(study / "points" / p.name), key=f"point-{p.name}",
                                 retries=RETRIES, pure=False): p for p in todo}
        with tqdm(total=len(points), initial=len(points) - len(todo), unit="point", disable=not progress,
                  desc="sweep") as bar:
            for future in as_completed(futures):
                point = futures[future]
                try:
                    results[point.name] = future.result()
                except Exception as exc:  # noqa: BLE001 - one failed point must not stop the others
                    failed[point.name] = f"{type(exc).__name__}: {exc}"
                else:
                    write_results(spec, results, results_file)
                bar.update(1)
                if on_done is not None:
                    on_done(point.name)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    if failed:
        first = next(iter(failed.items()))
        raise SweepError(f"{len(failed)} of {len(points)} point(s) failed after {RETRIES} retries "
                         f"(first: {first[0]}: {first[1]}); finished points are in {results_file}; "
                         "rerun the same command to retry the rest")
    return results_file


def _local_cluster(workers: int, dashboard: str) -> Any:
    """Single-threaded worker processes on this machine. Without a dashboard the scheduler's
    small HTTP server (health checks) listens on a free loopback port, not on 8787."""
    from dask.distributed import LocalCluster

    quiet = {"dashboard_address": None, "scheduler_kwargs": {"dashboard_address": "127.0.0.1:0"}}
    where: dict[str, Any] = {"dashboard_address": dashboard} if dashboard else quiet
    return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, **where)


def _cores() -> int:
    import os

    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)

