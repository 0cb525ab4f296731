"""Figures of a study: test accuracy against each swept parameter, one line per rule,
the spread over seeds as a band (mean +- standard deviation)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure


def accuracy_plots(results: Path, out_dir: Path, dpi: int = 110) -> list[Path]:
    """One PNG per swept parameter (other than ``rule`` and ``seed``); return the paths."""
    import xarray as xr

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    with xr.open_dataset(results, engine="h5netcdf") as ds:
        acc = ds["test_accuracy"].load()
    params = [d for d in acc.dims if d not in ("rule", "seed")] or ["rule"]
    for param in params:
        fig = Figure(figsize=(5.5, 3.6), layout="constrained")
        ax = fig.subplots()
        rules = [str(r) for r in acc["rule"].values] if "rule" in acc.dims and param != "rule" else [None]
        for rule in rules:
            a = acc.sel(rule=rule) if rule is not None else acc
            other = [d for d in a.dims if d not in (param, "seed")]
            if other:
                a = a.mean(dim=other, skipna=True)
            x = a[param].values
            mean = a.mean("seed", skipna=True).values if "seed" in a.dims else a.values
            std = a.std("seed", skipna=True).values if "seed" in a.dims else np.zeros_like(mean)
            xs = np.arange(len(x)) if x.dtype.kind in "US" else x
            ax.plot(xs, mean, "o-", label=rule or "test accuracy")
            ax.fill_between(xs, mean - std, mean + std, alpha=0.25)
            if x.dtype.kind in "US":
                ax.set_xticks(xs, [str(v) for v in x])
        ax.set(xlabel=param, ylabel="test accuracy", title=f"accuracy vs {param}")
        ax.grid(alpha=0.3)
        if rules != [None]:
            ax.legend(title="rule")
        path = out_dir / f"accuracy_vs_{param}.png"
        fig.savefig(path, dpi=dpi)
        paths.append(path)
    return paths
