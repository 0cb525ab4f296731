"""``bsl fit``: fit a device step model to a pulse-response CSV trace; optionally write a preset.

Example::

    bsl fit trace.csv --model exponential --write-preset fitted.toml
    bsl device-response --preset fitted.toml --pulses 128 --cycles 2 --out check.csv

The trace layout is that of :mod:`devices.fitting.characterize` (``bsl device-response`` writes it;
lab measurements in the same layout work too). The method is in :mod:`devices.fitting`.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    """Add the ``fit`` sub-command."""
    from devices import STEP_MODELS

    p = subparsers.add_parser(
        "fit",
        help="fit a device step model to a potentiation/depression CSV trace",
        description=(
            "Fit g_min, g_max, the SET/RESET steps (and, for the exponential model, the "
            "nonlinearities) to a tidy CSV trace (device,cycle,pulse,polarity,conductance_S) by "
            "least squares; estimate cycle-to-cycle and read noise from the one-step residuals "
            "and, with several devices, the device-to-device spreads. Optionally write the "
            "result as a preset file usable by every --preset option."
        ),
    )
    p.add_argument("file", type=Path, metavar="FILE.csv", help="trace to fit")
    p.add_argument(
        "--model", choices=STEP_MODELS, default="exponential", help="step model to fit (default: exponential)"
    )
    p.add_argument(
        "--write-preset", type=Path, default=None, metavar="OUT.toml",
        help="write the fitted device as a preset TOML file",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Read, fit, print the summary, write the preset."""
    from devices.fitting import fit_trace
    from devices.fitting.characterize import read_trace_csv
    from devices.sim.presets import save_preset_file

    out: Path | None = args.write_preset
    if out is not None:
        if out.suffix != ".toml":
            raise ValueError(f"--write-preset {out}: the file name must end in .toml (so --preset finds it)")
        if out.parent and not out.parent.exists():
            raise FileNotFoundError(f"--write-preset {out}: directory {out.parent} does not exist")
    trace = read_trace_csv(args.file)
    result = fit_trace(trace, args.model)
    print(result.summary())
    if out is not None:
        meta = {"source_file": str(args.file), **result.meta()}
        save_preset_file(result.to_device_model(), out, meta=meta)
        print(f"wrote preset {out} (use it as --preset {out})")
    return 0
