"""A study of a logic-gate network's interconnect on memristor crossbars (``bsl route-logic``).

``run_routing_study(spec, run, out)`` loads a trained :class:`bsl.logic.discrete.DiscreteNet`
(``RUN_DIR/logic_net.npz``, or an ``.npz`` path), the test set its run used (``config.toml``
next to it: dataset, data_dir, seed, train_limit, test_limit), and evaluates every point of
a sweep file (see ``sims/logic_routing.toml``): one layer's routing on simulated crossbars
(:func:`bsl.logic.routing.evaluate_routed`), the other layers exact. The points run on Dask
(threads); the study folder gets::

    OUT/sweep.toml      the sweep file, as given
    OUT/results.csv     one row per point: swept values, on_off_ratio, metrics
    OUT/results.json    the same rows, with the net, data set and sample count
    OUT/routing.png     accuracy and routing bit error rate against each swept key
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bsl.logic.discrete import NET_FILE, DiscreteNet
from bsl.logic.routing import (
    DEFAULT_BATCH,
    DEFAULT_TILE,
    DEFAULT_TILE_ROWS,
    check_routing_settings,
    evaluate_routed,
)
from devices import DeviceModel, check_keys, get_preset, read_toml

from .spec import swept_keys, swept_values

DEVICE_PREFIX = "device."
SETTINGS: dict[str, Any] = {
    "preset": "rram", "layer": None, "seed": 0, "tile_rows": DEFAULT_TILE_ROWS, "tile_cols": DEFAULT_TILE,
    "threshold_fraction": 0.5, "tolerance_fraction": 0.1, "max_pulses": 0, "init": "min",
    "compensate": False, "samples": 0, "batch": DEFAULT_BATCH, "sense": "selected",
}
"""Settings of a point (``[base]`` or swept) and their defaults; ``layer`` None = every layer."""
INIT_STATES = ("min", "mid", "max", "random")
METRICS = ("accuracy", "exact_accuracy", "agreement", "bit_error_rate", "bit_errors", "gate_error_rate",
           "samples", "rows", "cols", "tiles", "devices", "reads", "programming_pulses", "failed_devices",
           "failed_selected", "verify_iterations")
DataLoader = Callable[[], tuple[np.ndarray, np.ndarray]]
"""Returns test features and labels ``(x, y)``."""


@dataclasses.dataclass(frozen=True)
class RoutingSpec:
    base: dict[str, Any]
    grid: dict[str, list[Any]]
    points: list[dict[str, Any]]

    @property
    def keys(self) -> list[str]:
        return swept_keys(self.grid, self.points)

    def expand(self, n_layers: int) -> list[dict[str, Any]]:
        """Every point's swept values (``layer`` added, over every layer, when nowhere given)."""
        values = swept_values(self.grid, self.points)
        if "layer" not in self.keys and self.base.get("layer") is None:
            values = [{**v, "layer": k} for v in values for k in range(n_layers)]
        return values


def load_routing_spec(path: str | Path) -> RoutingSpec:
    """Read and check a routing sweep file (unknown keys and invalid models refused)."""
    data = read_toml(path, "sweep file")
    check_keys(data, ("base", "grid", "points"), f"sweep file {path}", what="table(s)")
    base, grid, points = data.get("base", {}), data.get("grid", {}), data.get("points", [])
    if not isinstance(base, dict) or not isinstance(grid, dict) or not isinstance(points, list) \
            or not all(isinstance(p, dict) for p in points):
        raise ValueError(f"sweep file {path}: expected a [base] table, a [grid] table and [[points]] tables")
    grid = {k: v if isinstance(v, list) else [v] for k, v in grid.items()}
    if not grid and not points:
        raise ValueError(f"sweep file {path}: give a [grid] or [[points]]")
    for key, values in grid.items():
        if not values:
            raise ValueError(f"sweep file {path}: grid {key!r} has no values")
    spec = RoutingSpec(dict(base), grid, [dict(p) for p in points])
    fields = {f.name for f in dataclasses.fields(DeviceModel)} - {"source"}
    for key in [*spec.base, *spec.keys]:
        device = key.startswith(DEVICE_PREFIX)
        if not (key.removeprefix(DEVICE_PREFIX) in fields if device else key in SETTINGS):
            raise ValueError(f"sweep file {path}: {key!r} is not a routing setting ({', '.join(SETTINGS)}) "
                             "or device.<DeviceModel field>")
    for values in spec.expand(1):
        try:
            point_model(spec, values)
            check_point(_settings(spec, values))
        except ValueError as exc:
            raise ValueError(f"sweep file {path}: point {point_name(values)}: {exc}") from None
    return spec


def point_name(values: dict[str, Any]) -> str:
    return ",".join(f"{k.removeprefix(DEVICE_PREFIX)}={v}" for k, v in sorted(values.items())) or "base"


def _settings(spec: RoutingSpec, values: dict[str, Any]) -> dict[str, Any]:
    merged = {**spec.base, **values}
    return {**SETTINGS, **{k: v for k, v in merged.items() if not k.startswith(DEVICE_PREFIX)}}


def point_model(spec: RoutingSpec, values: dict[str, Any]) -> DeviceModel:
    """The point's device model: the preset with its ``device.<field>`` values replaced."""
    merged = {**spec.base, **values}
    device = {k.removeprefix(DEVICE_PREFIX): v for k, v in merged.items() if k.startswith(DEVICE_PREFIX)}
    return get_preset(merged.get("preset", SETTINGS["preset"])).replace(**device)


def check_point(s: dict[str, Any], n_layers: int | None = None) -> None:
    """Refuse a point's bad settings (one line each)."""
    check_routing_settings(s["tile_rows"], s["tile_cols"], s["threshold_fraction"], s["batch"], s["seed"],
                           s["sense"])
    if s["init"] not in INIT_STATES:
        raise ValueError(f"init = {s['init']!r}: choose one of {INIT_STATES}")
    if not isinstance(s["compensate"], bool):
        raise ValueError(f"compensate = {s['compensate']!r}: must be true or false")
    if not isinstance(s["tolerance_fraction"], float | int) or not 0 < s["tolerance_fraction"] < 1:
        raise ValueError(f"tolerance_fraction = {s['tolerance_fraction']!r}: must lie strictly between "
                         "0 and 1")
    for name in ("max_pulses", "samples"):
        if isinstance(s[name], bool) or not isinstance(s[name], int) or s[name] < 0:
            raise ValueError(f"{name} = {s[name]!r}: must be an integer >= 0")
    layer = s["layer"]
    if layer is not None and (isinstance(layer, bool) or not isinstance(layer, int) or layer < 0
                              or (n_layers is not None and layer >= n_layers)):
        top = f"0..{n_layers - 1}" if n_layers is not None else "0, 1, ..."
        raise ValueError(f"layer = {layer!r}: the net has layers {top}")


def load_net(run: str | Path) -> tuple[DiscreteNet, Path]:
    """The net of a run folder (its ``logic_net.npz``) or of an ``.npz`` file, and that file."""
    path = Path(run)
    if not path.exists():
        raise FileNotFoundError(f"run folder {path} does not exist")
    if path.is_dir():
        path = path / NET_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{run} holds no {NET_FILE}: not a finished logic-gate run folder")
    elif path.suffix != ".npz":
        raise ValueError(f"{path}: give a run folder or a logic net .npz file")
    return DiscreteNet.load(path), path


def run_test_set(config_path: str | Path) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """The test split a run used: features, labels, and what was loaded (from its config.toml)."""
    from bsl.data import load_dataset

    config_path = Path(config_path)
    data = read_toml(config_path, "run config")
    table = data.get("train", data)
    if not isinstance(table, dict):
        raise ValueError(f"run config {config_path}: 'train' must be a table")
    data_dir = str(table.get("data_dir", "") or "")
    if data_dir and not Path(data_dir).expanduser().is_absolute():
        data_dir = str(config_path.parent / Path(data_dir))
    info: dict[str, Any] = {"dataset": str(table.get("dataset", "digits")), "seed": int(table.get("seed", 0)),
            "train_limit": int(table.get("train_limit", 0)), "test_limit": int(table.get("test_limit", 0))}
    ds = load_dataset(info["dataset"], data_dir=data_dir or None, seed=info["seed"], download=False,
                      train_limit=info["train_limit"], test_limit=info["test_limit"])
    return ds.x_test.numpy(), ds.y_test.numpy(), info


def evaluate_point(net: DiscreteNet, x: np.ndarray, y: np.ndarray, spec: RoutingSpec,
                   values: dict[str, Any]) -> dict[str, Any]:
    """One point's row: its swept values, the model's on/off ratio, the routing metrics."""
    s, model = _settings(spec, values), point_model(spec, values)
    if s["samples"]:
        x, y = x[:s["samples"]], y[:s["samples"]]
    result = evaluate_routed(
        net, x, y, int(s["layer"]), model, seed=int(s["seed"]), tile_rows=int(s["tile_rows"]),
        tile_cols=int(s["tile_cols"]), threshold_fraction=float(s["threshold_fraction"]),
        tolerance=float(s["tolerance_fraction"]) * model.g_range, max_pulses=int(s["max_pulses"]) or None,
        init=s["init"], batch=int(s["batch"]), compensate=bool(s["compensate"]), sense=str(s["sense"]))
    ratio = model.g_max / model.g_min if model.g_min > 0 else None
    return {**values, "layer": int(s["layer"]), "on_off_ratio": ratio, **{k: result[k] for k in METRICS}}


def run_routing_study(spec_path: str | Path, run: str | Path, out_dir: str | Path,
                      data_loader: DataLoader | None = None, *, workers: int = 0,
                      progress: bool = True) -> list[dict[str, Any]]:
    """Evaluate every point of ``spec_path`` for the net of ``run`` (a run folder or ``.npz``);
    write ``results.csv``, ``results.json`` and ``routing.png`` into ``out_dir``; return the
    rows. ``data_loader`` replaces the run's test set; ``workers`` threads (0: Dask's default)."""
    import dask
    from dask.diagnostics import ProgressBar

    spec = load_routing_spec(spec_path)
    net, net_file = load_net(run)
    n_layers = len(net.layers)
    points = spec.expand(n_layers)
    for values in points:
        try:
            check_point(_settings(spec, values), n_layers)
        except ValueError as exc:
            raise ValueError(f"sweep file {spec_path}: point {point_name(values)}: {exc}") from None
    if data_loader is not None:
        x, y = data_loader()
        info: dict[str, Any] = {"dataset": "given"}
    else:
        config = net_file.parent / "config.toml"
        if not config.is_file():
            raise FileNotFoundError(f"{net_file.parent} holds no config.toml: cannot tell which test set the "
                                    "run used")
        x, y, info = run_test_set(config)
    x, y = np.asarray(x), np.asarray(y).reshape(-1)
    if x.reshape(len(x), -1).shape[1] != net.encoder.features:
        raise ValueError(f"the test set has {x.reshape(len(x), -1).shape[1]} features; the net's encoder "
                         f"takes {net.encoder.features}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if Path(spec_path).resolve() != (out / "sweep.toml").resolve():
        shutil.copyfile(spec_path, out / "sweep.toml")
    tasks = [dask.delayed(evaluate_point, pure=False)(net, x, y, spec, values) for values in points]
    options: dict[str, Any] = {"scheduler": "threads"}
    if workers:
        options["num_workers"] = int(workers)
    if progress:
        import sys

        with ProgressBar(out=sys.stderr):
            rows = list(dask.compute(*tasks, **options))
    else:
        rows = list(dask.compute(*tasks, **options))
    write_rows(rows, out, {"net": str(net_file), "layers": [layer.size for layer in net.layers],
                           "inputs": net.encoder.bits, **info})
    plot_rows(rows, out / "routing.png")
    return rows


def write_rows(rows: list[dict[str, Any]], out: Path, meta: dict[str, Any]) -> None:
    """``results.csv`` (one row per point) and ``results.json`` (the rows and ``meta``)."""
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    with open(out / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    text = json.dumps({**meta, "points": len(rows), "rows": rows}, indent=1)
    (out / "results.json").write_text(text + "\n")


def plot_rows(rows: list[dict[str, Any]], path: Path) -> Path:
    """Accuracy (routed solid, exact dashed) and bit error rate against each swept key, one
    line per layer, averaged over the other keys (categorical axis: values in sweep order)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    skip = {"layer", "seed", "on_off_ratio", *METRICS}
    keys = [k for k in rows[0] if k not in skip and len({repr(r[k]) for r in rows}) > 1] or ["layer"]
    layers = sorted({r["layer"] for r in rows})
    fig, axes = plt.subplots(2, len(keys), figsize=(3.6 * len(keys) + 0.6, 6), squeeze=False)
    for i, key in enumerate(keys):
        values = list(dict.fromkeys(r[key] for r in rows))
        pos = np.arange(len(values))
        for layer in layers:
            mine = [r for r in rows if r["layer"] == layer]

            def mean(metric: str, v: Any, mine: list[dict[str, Any]] = mine, key: str = key) -> float:
                picked = [r[metric] for r in mine if r[key] == v]
                return float(np.mean(picked)) if picked else math.nan

            line = axes[0, i].plot(pos, [mean("accuracy", v) for v in values], "o-", label=f"layer {layer}")
            axes[0, i].plot(pos, [mean("exact_accuracy", v) for v in values], "--", color=line[0].get_color())
            axes[1, i].plot(pos, [mean("bit_error_rate", v) for v in values], "o-", label=f"layer {layer}")
        for ax, label in ((axes[0, i], "accuracy (dashed: exact)"), (axes[1, i], "routing bit error rate")):
            ax.set_xticks(pos, [f"{v:g}" if isinstance(v, float) else str(v) for v in values])
            ax.set_ylabel(label)
            ax.grid(alpha=0.3)
        axes[1, i].set_xlabel(key.removeprefix(DEVICE_PREFIX))
    axes[0, 0].legend(fontsize=8)
    fig.suptitle("logic layer routing on crossbars (mean over the other swept keys)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
