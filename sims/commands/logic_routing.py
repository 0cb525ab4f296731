"""``bsl route-logic RUN_DIR --sweep SPEC.toml --out DIR``: a logic net's interconnect on crossbars.

Example::

    bsl route-logic runs/difflogic-digits --sweep sims/logic_routing.toml --out studies/routing

Each point routes one gate layer's inputs through one-hot memristor crossbars (the other
layers exact) and records accuracy, routing bit error rate, devices, reads, programming
pulses and failed devices (:mod:`sims.logic_routing`, :mod:`bsl.logic.routing`).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from bsl.commands.arguments import boolean

SHIPPED_SWEEP = Path(__file__).resolve().parent.parent / "logic_routing.toml"


def register(subparsers: Any) -> None:
    """Add the ``route-logic`` sub-command."""
    p = subparsers.add_parser(
        "route-logic", help="route a logic-gate net's layers through memristor crossbars (a sweep)",
        description="Load RUN_DIR/logic_net.npz (or a .npz file) and the test set of its run, and evaluate "
        "every point of a routing sweep file: one gate layer's interconnect as one-hot memristor crossbars "
        "(differential pairs, program-and-verify, thresholded column currents), the other layers exact. "
        "Writes results.csv, results.json and routing.png into --out.")
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR",
                   help="a logic run folder, or a logic net .npz file")
    p.add_argument("--sweep", type=Path, default=SHIPPED_SWEEP, metavar="SPEC.toml",
                   help="routing sweep file (default: the shipped sims/logic_routing.toml)")
    p.add_argument("--out", type=Path, required=True, metavar="DIR")
    p.add_argument("--workers", type=int, default=0, help="Dask threads (default: one per core)")
    p.add_argument("--progress", type=boolean, default=True, help="progress bar (default: true)")
    p.set_defaults(run=run_command)


def run_command(args: argparse.Namespace) -> int:
    import torch

    from sims.logic_routing import run_routing_study

    if args.workers < 0:
        raise ValueError(f"--workers {args.workers}: must be >= 0")
    torch.set_num_threads(1)  # the points run in parallel threads
    rows = run_routing_study(args.sweep, args.run_dir, args.out, workers=args.workers, progress=args.progress)
    worst = min(rows, key=lambda r: r["accuracy"])
    print(f"{len(rows)} points; accuracy {worst['accuracy']:.4f} (worst) to "
          f"{max(r['accuracy'] for r in rows):.4f}, exact {rows[0]['exact_accuracy']:.4f}; "
          f"results in {args.out / 'results.csv'}")
    return 0
