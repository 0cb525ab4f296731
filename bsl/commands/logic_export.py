"""``bsl export-logic RUN_DIR``: a trained logic-gate network as C (and Verilog) source.

Example::

    bsl train --rule lilogic --layers 2000,1000 --out runs/lilogic
    bsl export-logic runs/lilogic --c lilogic.c --verilog lilogic.v --name digits_net

The C file defines ``void NAME(const uint64_t *in, uint64_t *out)`` (64 samples per word:
``in`` holds one word per input bit, ``out`` one per last-layer output) and
``void NAME_scores(const uint64_t *in, int n_samples, int32_t *scores)``; the input bits
are the run's encoder applied to the features (``bsl.logic.discrete.Encoder``, whose
thresholds the header comment lists). The Verilog module is combinational, ``x`` to ``y``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    """Add the ``export-logic`` sub-command."""
    p = subparsers.add_parser(
        "export-logic", help="write a trained logic-gate network as C and/or Verilog",
        description="Read RUN_DIR/logic_net.npz (written by a difflogic, lilogic or compactlogic run) or a "
        ".npz file and write its discretised circuit as a C99 function and/or a Verilog module.")
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a logic run folder or a .npz file")
    p.add_argument("--c", type=Path, default=None, metavar="FILE.c", help="write the C source here")
    p.add_argument("--verilog", type=Path, default=None, metavar="FILE.v", help="write the Verilog here")
    p.add_argument("--name", default="logic_net", help="function / module name (a C identifier)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Write the requested files; print what was written."""
    from bsl.logic.discrete import NET_FILE, DiscreteNet
    from bsl.logic.export import to_c, to_verilog
    from bsl.logic.packed import circuit_stats

    if args.c is None and args.verilog is None:
        raise ValueError("nothing to write: give --c FILE.c and/or --verilog FILE.v")
    path = args.run_dir / NET_FILE if args.run_dir.is_dir() else args.run_dir
    if not path.is_file():
        raise ValueError(f"{path} not found: export-logic reads the {NET_FILE} of a finished logic run")
    net = DiscreteNet.load(path)
    sources = [(args.c, to_c), (args.verilog, to_verilog)]
    texts = [(out, make(net, args.name)) for out, make in sources if out is not None]  # made before writing
    for out, text in texts:
        out.write_text(text)
        print(f"wrote {out} ({len(text.splitlines())} lines)")
    stats = circuit_stats(net)
    print(f"{stats['gates']} gates ({stats['live_gates']} live), {stats['operations']} two-input operations, "
          f"depth {stats['depth']}, {net.encoder.bits} input bits, {net.classes} classes")
    return 0
