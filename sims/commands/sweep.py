"""``bsl sweep SPEC.toml --out STUDY_DIR`` and ``bsl sweep-plot STUDY_DIR``.

Example::

    bsl sweep sims/c2c_noise.toml --out studies/c2c            # LocalCluster, one worker per core
    bsl sweep sims/c2c_noise.toml --out studies/c2c --scheduler tcp://head:8786
    bsl sweep-plot studies/c2c                                  # PNGs in studies/c2c/plots/
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from bsl.commands.arguments import boolean


def register(subparsers: Any) -> None:
    """Add ``sweep`` and ``sweep-plot``."""
    p = subparsers.add_parser(
        "sweep", help="run a sweep of training runs on Dask",
        description="Run every point of a sweep file (a base config plus a grid of train settings and "
        "device.<field> values) as an ordinary training run on Dask distributed: a LocalCluster by "
        "default, or a running scheduler. Rerunning skips finished points; results gather in "
        "STUDY_DIR/results.nc.")
    p.add_argument("spec", type=Path, metavar="SPEC.toml")
    p.add_argument("--out", type=Path, required=True, metavar="STUDY_DIR")
    p.add_argument("--scheduler", default="", metavar="ADDRESS", help="a running Dask scheduler")
    p.add_argument("--workers", type=int, default=0, help="LocalCluster workers (default: one per core)")
    p.add_argument("--dashboard", default="", metavar="ADDRESS",
                   help="serve the LocalCluster's Dask dashboard at ADDRESS, e.g. :8787 (needs bokeh; "
                   "default: no dashboard)")
    p.add_argument("--progress", type=boolean, default=True, help="progress bar (default: true)")
    p.set_defaults(run=run_sweep_command)
    q = subparsers.add_parser("sweep-plot", help="plot a study's accuracy against each swept parameter",
                              description="Accuracy vs each swept parameter, one line per rule, seed "
                              "spread as bands; PNGs in STUDY_DIR/plots (or --out).")
    q.add_argument("study", type=Path, metavar="STUDY_DIR")
    q.add_argument("--out", type=Path, default=None, metavar="DIR")
    q.set_defaults(run=run_plot_command)


def run_sweep_command(args: argparse.Namespace) -> int:
    from sims.sweep import run_sweep

    if args.workers < 0:
        raise ValueError(f"--workers {args.workers}: must be >= 0")
    path = run_sweep(args.spec, args.out, scheduler=args.scheduler, workers=args.workers,
                     dashboard=args.dashboard, progress=args.progress)
    print(f"results in {path}")
    return 0


def run_plot_command(args: argparse.Namespace) -> int:
    from sims.plots import accuracy_plots

    results = args.study / "results.nc"
    if not results.is_file():
        raise FileNotFoundError(f"{args.study} holds no results.nc: run bsl sweep first")
    for path in accuracy_plots(results, args.out or args.study / "plots"):
        print(path)
    return 0
