"""``bsl plot RUN_DIR``: write a run's figures as PNG files."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    """Add the ``plot`` sub-command."""
    p = subparsers.add_parser(
        "plot", help="write a run's figures as PNG",
        description="Write learning curves, conductance histograms over time per layer, weight "
        "(G+ - G-) distributions and pulses per epoch as PNG files.")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--out", metavar="DIR", help="where to write the figures (default RUN_DIR/plots)")
    p.add_argument("--dpi", type=int, default=110, help="resolution (default 110)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from bsl.plots import save_all
    from bsl.runs import Run

    if args.dpi < 20:
        raise ValueError(f"--dpi {args.dpi}: must be at least 20")
    with Run(args.run_dir) as r:
        paths = save_all(r, Path(args.out) if args.out else r.path / "plots", dpi=args.dpi)
    for path in paths:
        print(path)
    return 0
