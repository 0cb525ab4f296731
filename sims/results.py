"""A study's results as one labelled array file: one dimension per swept key.

``results.nc`` is netCDF4 (HDF5) written with xarray (h5netcdf engine); open it with
``xarray.open_dataset("STUDY_DIR/results.nc", engine="h5netcdf")``. Variables:
``test_accuracy``, ``train_accuracy``, ``samples_per_s`` (1/s), ``wall_s`` (s) and
``pulses`` (SET + RESET over all layers); unfinished points hold NaN.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from .spec import SweepSpec

METRICS = {
    "test_accuracy": ("", lambda s: s["test_accuracy"]),
    "train_accuracy": ("", lambda s: s["train_accuracy"]),
    "samples_per_s": ("1/s", lambda s: s["samples_per_s"]),
    "wall_s": ("s", lambda s: s["wall_s"]),
    "pulses": ("pulses", lambda s: sum(p["set"] + p["reset"] for p in s["pulses"])),
}


def dimension_name(key: str) -> str:
    """A swept key as a dimension name (``device.dw_min_std`` -> ``dw_min_std``)."""
    return key.removeprefix("device.")


def write_results(spec: SweepSpec, summaries: dict[str, dict[str, Any]], path: Path) -> Path:
    """Write the finished points' metrics (atomically: a reader never sees half a file)."""
    import xarray as xr

    keys = spec.keys
    points = spec.expand()
    coords = {dimension_name(k): _values(k, points) for k in keys}
    shape = tuple(len(v) for v in coords.values())
    data = {name: np.full(shape, np.nan) for name in METRICS}
    for point in points:
        summary = summaries.get(point.name)
        if summary is None:
            continue
        index = tuple(coords[dimension_name(k)].index(point.values.get(k, _MISSING)) for k in keys)
        for name, (_unit, get) in METRICS.items():
            data[name][index] = float(get(summary))
    ds = xr.Dataset(
        {name: (list(coords), values, {"units": METRICS[name][0]}) for name, values in data.items()},
        coords={name: _coordinate(values) for name, values in coords.items()},
        attrs={"finished_points": len(summaries), "points": len(points), "swept": ",".join(keys)},
    )
    tmp = path.with_name(path.name + ".tmp")
    ds.to_netcdf(tmp, engine="h5netcdf")
    os.replace(tmp, path)
    return path


_MISSING = "(base)"
"""Coordinate of a key that a listed point does not set (it keeps the base value)."""


def _values(key: str, points: list[Any]) -> list[Any]:
    seen: list[Any] = []
    for p in points:
        value = p.values.get(key, _MISSING)
        if value not in seen:
            seen.append(value)
    return seen


def _coordinate(values: list[Any]) -> np.ndarray:
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return np.asarray(values, dtype=float)
    return np.asarray([str(v) for v in values])
