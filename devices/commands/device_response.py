"""``bsl device-response``: simulate the potentiation/depression experiment to a CSV trace.

Example::

    bsl device-response --preset rram --pulses 128 --cycles 10 --devices 4 --out trace.csv
    bsl fit trace.csv --write-preset fitted.toml

The CSV layout (``device,cycle,pulse,polarity,conductance_S``) is described in
:mod:`devices.fitting.characterize`; measured lab data in the same layout can be fitted the same way.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    """Add the ``device-response`` sub-command."""
    from devices import DEFAULT_PRESET

    p = subparsers.add_parser(
        "device-response",
        help="simulate the potentiation/depression pulse response of a device preset (CSV trace)",
        description=(
            "Simulate the standard potentiation/depression experiment: every device starts at "
            "g_min; each cycle applies N SET pulses then N RESET pulses, reading the conductance "
            "before each branch and after every pulse. Writes a tidy CSV trace "
            "(device,cycle,pulse,polarity,conductance_S; conductances in S) that `bsl fit` reads."
        ),
    )
    p.add_argument(
        "--preset", default=DEFAULT_PRESET, metavar="NAME_OR_FILE",
        help=f"device preset name or preset .toml file (default: {DEFAULT_PRESET})",
    )
    p.add_argument("--pulses", type=int, required=True, metavar="N",
                   help="pulses per branch (>= 1; the trace has devices x cycles x 2 x (pulses + 1) rows, "
                   "at most 10 million)")
    p.add_argument("--cycles", type=int, required=True, metavar="C", help="SET/RESET cycles (>= 1)")
    p.add_argument("--devices", type=int, default=1, metavar="D", help="devices measured (>= 1; default 1)")
    p.add_argument(
        "--seed", type=int, default=0, metavar="S", help="seed of the simulated devices and noise (default 0)"
    )
    p.add_argument("--out", type=Path, required=True, metavar="FILE.csv", help="output CSV file")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Simulate, write the trace, print a one-line summary."""
    from devices import available_memory, size_text
    from devices.fitting.characterize import (
        MAX_TRACE_ROWS,
        TRACE_ROW_BYTES,
        potentiation_depression,
        trace_rows,
    )

    for flag, value in (("--pulses", args.pulses), ("--cycles", args.cycles), ("--devices", args.devices)):
        if value < 1:
            raise ValueError(f"{flag} = {value}: must be an integer >= 1")
    rows = trace_rows(args.pulses, args.cycles, args.devices)
    size = f"{args.devices} device(s) x {args.cycles} cycle(s) x 2 branches x {args.pulses + 1} reads"
    fewer = "use fewer --pulses, --cycles or --devices"
    if rows > MAX_TRACE_ROWS:
        raise ValueError(f"{size} = {rows:,} rows, more than the limit of {MAX_TRACE_ROWS:,}; {fewer}")
    free, need = available_memory(), rows * TRACE_ROW_BYTES
    if free is not None and need > free:
        raise ValueError(f"{size} = {rows:,} rows need about {size_text(need)} of memory but "
                         f"{size_text(free)} are available; {fewer}")
    if args.seed < 0:
        raise ValueError(f"--seed = {args.seed}: must be >= 0")
    out: Path = args.out
    if out.parent and not out.parent.exists():
        raise FileNotFoundError(f"--out {out}: directory {out.parent} does not exist")
    if out.is_dir():
        raise ValueError(f"--out {out} is a directory; give a file name such as trace.csv")
    trace = potentiation_depression(
        args.preset, pulses=args.pulses, cycles=args.cycles, devices=args.devices, seed=args.seed,
        progress=not args.no_progress,
    )
    trace.to_csv(out, progress=not args.no_progress)
    g = trace.conductance_S
    print(
        f"wrote {len(trace)} rows ({args.devices} device(s) x {args.cycles} cycle(s) x 2 branches x "
        f"{args.pulses + 1} reads) to {out}; preset {args.preset}, seed {args.seed}; "
        f"G from {g.min() * 1e6:.4g} to {g.max() * 1e6:.4g} uS"
    )
    return 0
