"""Sweep files: a base run config plus a grid (and/or a list) of points, in TOML.

Example (``bsl sweep study.toml --out studies/c2c``)::

    [base]                      # any bsl train setting (TrainConfig fields, rule settings)
    dataset = "digits"
    epochs = 5
    progress = false

    [grid]                      # every combination; keys: train settings or device.<field>
    "device.dw_min_std" = [0.0, 0.3, 0.6]     # a devices.DeviceModel field of the base preset
    rule = ["bsl", "manhattan"]
    seed = [0, 1, 2]

    [[points]]                  # optional extra points, each a table of the same keys
    rule = "sgd"
    seed = 0

A ``device.<field>`` value replaces that field of the base preset (``base.preset``); the
point then trains on a preset file written into its own run folder.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bsl.config import TrainConfig, config_names
from devices.sim.physics import DeviceModel
from devices.toml_io import check_keys, read_toml

DEVICE_PREFIX = "device."


@dataclass(frozen=True)
class Point:
    """One run of a sweep: its swept values and its full config (preset may be a model)."""

    values: dict[str, Any]
    """Swept key -> value (keys as in the sweep file)."""
    config: dict[str, Any]
    """Train settings of the run (``out`` and the preset file are set when it runs)."""
    device: dict[str, Any]
    """DeviceModel fields that replace the base preset's (empty: the preset as is)."""

    @property
    def name(self) -> str:
        """A stable folder name made of the swept values."""
        parts = [f"{k.removeprefix(DEVICE_PREFIX)}={v}" for k, v in sorted(self.values.items())]
        return re.sub(r"[^A-Za-z0-9_.=,-]", "_", ",".join(parts)) or "base"


def swept_keys(grid: dict[str, list[Any]], points: list[dict[str, Any]]) -> list[str]:
    """Every swept key of a ``[grid]`` and ``[[points]]``, grid keys first, in file order."""
    keys = list(grid)
    for p in points:
        keys += [k for k in p if k not in keys]
    return keys


def swept_values(grid: dict[str, list[Any]], points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each point's swept values: the grid's combinations, then the listed points."""
    combos = [dict(zip(grid, values, strict=True)) for values in itertools.product(*grid.values())] \
        if grid else []
    return [*combos, *points]


@dataclass(frozen=True)
class SweepSpec:
    base: dict[str, Any]
    grid: dict[str, list[Any]]
    points: list[dict[str, Any]]

    @property
    def keys(self) -> list[str]:
        """Every swept key, grid keys first, in file order."""
        return swept_keys(self.grid, self.points)

    def expand(self) -> list[Point]:
        """All points: the grid's combinations, then the listed points."""
        out = []
        for values in swept_values(self.grid, self.points):
            train = {k: v for k, v in values.items() if not k.startswith(DEVICE_PREFIX)}
            device = {k.removeprefix(DEVICE_PREFIX): v
                      for k, v in values.items() if k.startswith(DEVICE_PREFIX)}
            out.append(Point(values, {**self.base, **train}, device))
        names = [p.name for p in out]
        if len(set(names)) != len(names):
            raise ValueError("sweep file: two points have the same swept values")
        return out


def load_sweep(path: str | Path) -> SweepSpec:
    """Read and check a sweep file: every point must make a valid run config."""
    data = read_toml(path, "sweep file")
    check_keys(data, ("base", "grid", "points"), f"sweep file {path}", what="table(s)")
    for name, kind, what in (("base", dict, "a [base] table"), ("grid", dict, "a [grid] table"),
                             ("points", list, "[[points]] tables")):
        value = data.get(name, kind())
        if not isinstance(value, kind) or (kind is list and not all(isinstance(p, dict) for p in value)):
            raise ValueError(f"sweep file {path}: {name} must be {what}, got {value!r}")
    base = dict(data.get("base", {}))
    grid = {k: list(v) if isinstance(v, list) else [v] for k, v in data.get("grid", {}).items()}
    points = [dict(p) for p in data.get("points", [])]
    if not grid and not points:
        raise ValueError(f"sweep file {path}: give a [grid] or [[points]]")
    for key, values in grid.items():
        if not values:
            raise ValueError(f"sweep file {path}: grid {key!r} has no values")
    spec = SweepSpec(base, grid, points)
    train_fields = set(config_names())  # TrainConfig fields and every rule's settings
    model_fields = {f.name for f in dataclasses.fields(DeviceModel)}
    for key in [*base, *spec.keys]:
        name = key.removeprefix(DEVICE_PREFIX)
        swept = key not in base  # device.<field> values are swept ([grid], [[points]]), not base settings
        known = model_fields if swept and key.startswith(DEVICE_PREFIX) else train_fields
        if name not in known or key in ("out",):
            raise ValueError(f"sweep file {path}: {key!r} is not a train setting or "
                             "device.<DeviceModel field>")
    for point in spec.expand():
        try:
            TrainConfig(**{**point.config, "out": ""})
            if point.device:
                model_for(point)
        except ValueError as exc:
            raise ValueError(f"sweep file {path}: point {point.name}: {exc}") from None
    return spec


def model_for(point: Point) -> DeviceModel:
    """The point's device model: the base preset with the swept fields replaced."""
    from devices.sim.presets import get_preset

    return get_preset(point.config.get("preset", TrainConfig.preset)).replace(**point.device)
