"""``bsl emulator``: serve a simulated bench (SMU + switch matrix) on loopback TCP.

Example::

    bsl emulator --port 5025 --wiring bench.toml --preset rram --log ops.jsonl
    # smu    TCPIP::127.0.0.1::5025::SOCKET
    # matrix TCPIP::127.0.0.1::5026::SOCKET
    # state: new file bench.state.npz: seeded devices      (stderr; next start: "reloaded")

It answers the instrument commands of ``docs/hil_protocol.md`` until Ctrl-C; see
:mod:`devices.hil.emulator`.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

FAULT_FLAGS = (
    ("latency", "latency_s", float, "S", "delay added before each reply, s"),
    ("timeout-after", "timeout_after", int, "N", "after N messages, queries get no reply"),
    ("garble-after", "garble_after", int, "N", "after N messages, replies are garbled bytes"),
    ("drop-after", "drop_after", int, "N", "after N messages, the connection is closed"),
    ("hang-after", "hang_after", int, "N", "after N messages, nothing is answered or done"),
)


def register(subparsers: Any) -> None:
    """Add the ``emulator`` sub-command."""
    p = subparsers.add_parser(
        "emulator",
        help="serve a simulated SMU + switch-matrix bench on 127.0.0.1 (SCPI/TSP over TCP)",
        description=(
            "Start an emulated Keysight B2912A (or two Keithley 2450s) and Keithley 707B on "
            "127.0.0.1, wired to simulated crossbars as the wiring file says: SMU on PORT, "
            "matrix on PORT+1, second 2450 on PORT+2. Prints the VISA resource strings and "
            "runs until Ctrl-C."
        ),
    )
    p.add_argument("--port", type=int, default=5025, help="SMU port (default: 5025)")
    p.add_argument("--wiring", type=Path, required=True, metavar="W.toml", help="bench wiring file")
    p.add_argument("--preset", default="rram", help="device preset name or file (default: rram)")
    p.add_argument("--seed", type=int, default=0, help="array k is seeded SEED + k (default: 0)")
    p.add_argument("--init-spread", type=float, default=0.3, metavar="F",
                   help="devices start within mid-range +- F/2 of their range, as bsl train's simulated "
                   "arrays (default: 0.3)")
    p.add_argument("--faults", type=Path, default=None, metavar="F.toml",
                   help="TOML file with a [faults] table")
    p.add_argument("--log", type=Path, default=None, metavar="LOG.jsonl", help="write every operation here")
    p.add_argument("--state", type=Path, default=None, metavar="FILE.npz",
                   help="the arrays' state (conductances, per-device variation, stuck cells), reloaded on "
                   "start and saved after pulses (at most 0.1 s later) and on exit, so that a restarted "
                   "emulator continues the same devices (default: W.state.npz beside the wiring file W)")
    p.add_argument("--fresh", action="store_true",
                   help="start from seeded devices even if the state file exists (it is overwritten)")
    p.add_argument("--no-state", action="store_true",
                   help="keep no state file: the arrays start seeded at every start")
    p.add_argument("--set-threshold", type=float, default=0.8, metavar="V",
                   help="device voltage from which a pulse SETs, V (default: 0.8)")
    p.add_argument("--reset-threshold", type=float, default=0.8, metavar="V",
                   help="device voltage magnitude from which a negative pulse RESETs, V (default: 0.8)")
    for flag, field, kind, metavar, text in FAULT_FLAGS:
        p.add_argument(f"--{flag}", dest=field, type=kind, default=None, metavar=metavar,
                       help=f"fault: {text}")
    p.add_argument("--fault-target", choices=("smu", "matrix", "all"), default=None,
                   help="instrument the faults apply to (default: all)")
    p.add_argument("--duration", type=float, default=None, metavar="S",
                   help="stop after S seconds (default: run until Ctrl-C)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Validate, start, print resources, wait, stop."""
    from devices.hil.emulator import Emulator, Faults
    from devices.hil.emulator.state import default_state_path

    if not 1 <= args.port <= 65534:
        raise ValueError(f"--port {args.port}: must lie in 1..65534 (the matrix listens on PORT+1)")
    if not 0 <= args.init_spread <= 1:
        raise ValueError(f"--init-spread {args.init_spread}: must lie in [0, 1]")
    if args.duration is not None and not args.duration > 0:
        raise ValueError(f"--duration {args.duration}: must be > 0 s")
    if args.log is not None and not args.log.parent.is_dir():
        raise FileNotFoundError(f"--log {args.log}: directory {args.log.parent} does not exist")
    faults = Faults.from_toml(args.faults) if args.faults is not None else Faults()
    changes: dict[str, Any] = {f: getattr(args, f) for _flag, f, *_ in FAULT_FLAGS
                               if getattr(args, f) is not None}
    if args.fault_target is not None:
        changes["target"] = "" if args.fault_target == "all" else args.fault_target
    faults = replace(faults, **changes)
    if args.no_state and (args.state is not None or args.fresh):
        raise ValueError("--no-state keeps no state file: drop --state/--fresh")
    state = None if args.no_state else args.state or default_state_path(args.wiring)
    if state is not None and not state.parent.is_dir():
        raise FileNotFoundError(f"--state {state}: directory {state.parent} does not exist")
    emu = Emulator(args.wiring, preset=args.preset, seed=args.seed, faults=faults, log_path=args.log,
                   set_threshold_v=args.set_threshold, reset_threshold_v=args.reset_threshold,
                   init_spread=args.init_spread, max_records=100_000, state=state, fresh=args.fresh)
    resources = emu.start(args.port)
    if emu.state_note:
        print(emu.state_note, file=sys.stderr, flush=True)
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _interrupt) if in_main else None
    try:
        for name, resource in resources.items():
            print(f"{name:<6} {resource}", flush=True)
        wired = {"smu": emu.wiring.smu, "matrix": emu.wiring.matrix, "smu_sense": emu.wiring.smu_sense}
        for name, resource in resources.items():
            if wired[name] != resource:
                print(f"note: the wiring file names {name} {wired[name]!r}", file=sys.stderr)
        deadline = None if args.duration is None else time.monotonic() + args.duration
        while deadline is None or time.monotonic() < deadline:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        emu.stop()
        if in_main:
            signal.signal(signal.SIGTERM, previous)
    log, keeper = emu.log, emu.state_keeper
    print(f"stopped after {len(log)} operations: max |V| {log.max_abs_voltage():.3g} V, "
          f"{log.total_pulses()} device pulses, final state "
          f"{'safe' if log.final_state_safe() else 'NOT safe (output on or crosspoint closed)'}"
          + (f"; {keeper.summary()}" if keeper is not None else ""), file=sys.stderr)
    if keeper is not None and keeper.error is not None:
        print(f"warning: a state save failed: {keeper.error}", file=sys.stderr)
    return 0


def _interrupt(_signum: int, _frame: Any) -> None:
    """SIGTERM stops the emulator as cleanly as Ctrl-C."""
    raise KeyboardInterrupt
