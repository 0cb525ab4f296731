"""``bsl energy RUN_DIR``: training energy of a finished run on three systems.

Example::

    bsl train --out runs/demo
    bsl energy runs/demo
    bsl energy runs/demo --constants my_constants.toml --json

(a) BSL on the crossbar (the run's own counters), (b) high-precision training on the same
crossbar (DACs, ADCs, write-verify updates), (c) digital CMOS (fp32 MACs, SRAM weight reads).
Also the energy per inference (one sample classified, :mod:`sims.inference_energy`): on the
crossbar and as fp32 MACs on digital CMOS; for logic-gate runs (difflogic, lilogic,
compactlogic: no crossbar counters) only that, for the gates in CMOS logic.
The model and its sources are in :mod:`sims.energy` and ``docs/energy.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any

LABELS = {"bsl": "(a)", "high_precision": "(b)", "digital": "(c)"}
LOGIC_NOTE = ("logic-gate network: training energy (on a GPU/CPU) is outside this model; "
              "the table is the trained gates' inference in CMOS logic")


def register(subparsers: Any) -> None:
    """Add the ``energy`` sub-command."""
    p = subparsers.add_parser(
        "energy",
        help="estimate a run's training energy: BSL vs high-precision crossbar vs digital CMOS",
        description=(
            "Turn a finished run's operation counters (summary.json) into joules for (a) BSL on the "
            "crossbar, (b) high-precision training on the same crossbar and (c) digital CMOS; print "
            "each component in pJ per MAC and nJ per training sample, and the ratios (b)/(a), (c)/(a). "
            "Also print the energy per inference (one sample classified) on the crossbar and in digital "
            "CMOS; for logic-gate runs (difflogic, lilogic, compactlogic) only the energy per inference "
            "of the gates in CMOS logic. Constants, sources and assumptions: docs/energy.md."
        ),
    )
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a run folder written by bsl train")
    p.add_argument("--constants", type=Path, default=None, metavar="FILE.toml",
                   help="override energy constants: an [energy] table of NAME_j = joules")
    p.add_argument("--verify-iterations", type=int, default=10, metavar="N",
                   help="(b): pulse-and-verify iterations of one analog-precision weight update (default 10)")
    p.add_argument("--dram", action="store_true", help="(c): read and write each weight in DRAM per step")
    p.add_argument("--live-only", action="store_true",
                   help="logic runs: price only the live gates (gate energy x live_gates / gates)")
    p.add_argument("--json", action="store_true", help="print the report as JSON (joules)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Estimate and print."""
    from sims.energy import counts_from_summary, estimate, load_constants
    from sims.inference_energy import format_inference, inference_energy, is_logic_run, load_summary

    constants = load_constants(args.constants)
    summary = load_summary(args.run_dir)
    per_inference = inference_energy(summary, constants, live_only=args.live_only)
    if per_inference["kind"] == "binary":
        return _binary(args, summary, constants, per_inference)
    if is_logic_run(summary):
        if args.json:
            print(json.dumps({"constants_j": dataclasses.asdict(constants), "inference": per_inference,
                              "notes": [LOGIC_NOTE]}, indent=2))
        else:
            print(format_inference(per_inference, str(args.run_dir)) + f"\nnote: {LOGIC_NOTE}")
        return 0
    counts = counts_from_summary(summary)
    report = estimate(counts, constants, verify_iterations=args.verify_iterations, dram=args.dram)
    if args.json:
        print(json.dumps({**as_dict(report, constants), "inference": per_inference}, indent=2))
    else:
        print(format_report(report, str(args.run_dir)))
        print(f"energy per inference (one sample classified; see docs/energy.md)\n"
              f"{format_inference(per_inference)}")
    return 0


def as_dict(report: Any, constants: Any) -> dict[str, Any]:
    """The report as plain JSON-able data (energies in J)."""
    counts = dataclasses.asdict(report.counts)
    counts["macs"] = report.counts.macs
    systems = {key: {"name": s.name, "components_j": s.components, "mac_components": list(s.mac_components),
                     "total_j": s.total_j, "per_mac_j": s.per_mac_j, "per_sample_j": s.per_sample_j}
               for key, s in report.systems.items()}
    ratios = {f"{key}/bsl": {"per_mac": report.ratio(key), "per_sample": report.ratio(key, "sample")}
              for key in ("high_precision", "digital")}
    return {"counts": counts, "constants_j": dataclasses.asdict(constants), "systems": systems,
            "ratios": ratios, "notes": list(report.notes)}


def format_report(report: Any, where: str) -> str:
    """The table ``bsl energy`` prints."""
    c = report.counts
    lines = [f"energy of {where} (rule {c.rule}; model, constants and sources: docs/energy.md)",
             f"  training: {c.samples:,} samples, {c.steps:,} weight updates, {c.macs:,} MACs"
             + (f" (evaluation reads left out: {c.eval_macs:,} MACs)" if c.eval_macs else ""),
             f"{'':36}{'pJ/MAC':>10}{'nJ/sample':>12}"]
    for key, s in report.systems.items():
        lines.append(f"{LABELS[key]} {s.name}")
        for name, joules in s.components.items():
            mark = "" if name in s.mac_components else " *"
            per_mac, per_sample = joules / c.macs * 1e12, joules / c.samples * 1e9
            lines.append(f"    {name + mark:<32}{per_mac:>10.4g}{per_sample:>12.4g}")
        lines.append(f"    {'total':<32}{s.total_j / c.macs * 1e12:>10.4g}{s.per_sample_j * 1e9:>12.4g}")
        lines.append(f"    {'MAC operations (no *)':<32}{s.per_mac_j * 1e12:>10.4g}")
    lines.append(f"{'ratio over (a)':36}{'per MAC':>10}{'per sample':>12}")
    for key in ("high_precision", "digital"):
        lines.append(f"    {LABELS[key] + ' ' + report.systems[key].name:<32}"
                     f"{report.ratio(key):>10.4g}{report.ratio(key, 'sample'):>12.4g}")
    lines.append("* not part of the MAC operations (updates, gradients, verify reads); per MAC: amortized")
    lines += [f"note: {note}" for note in report.notes]
    return "\n".join(lines)


def _binary(args: argparse.Namespace, summary: dict[str, Any], constants: Any,
            per_inference: dict[str, Any]) -> int:
    """bold, boolnet, bireal: the energy per inference; for bold also its training per sample."""
    from sims.binary_energy import bold_training_energy
    from sims.inference_energy import format_inference

    training = bold_training_energy(summary, constants) if per_inference["rule"] == "bold" else None
    note = None if training else (f"{per_inference['rule']}: trained in software (latent float weights); "
                                  "the table is the deployed network's inference on binary crossbars")
    if args.json:
        print(json.dumps({"constants_j": dataclasses.asdict(constants), "inference": per_inference,
                          "training_per_sample": training, "notes": [note] if note else []}, indent=2))
        return 0
    print(format_inference(per_inference, str(args.run_dir)))
    if training:
        print(f"  {training['name']} ({training['samples']:,} samples, {training['steps']:,} updates, "
              f"{training['accumulator_bits']}-bit accumulators)")
        print(f"    {'':36}{'count/sample':>14}{'nJ/sample':>12}")
        for name, joules in training["components_j"].items():
            print(f"    {name:<36}{training['counts'][name]:>14,}{joules * 1e9:>12.4g}")
        print(f"    {'total':<36}{'':>14}{training['total_j'] * 1e9:>12.4g}")
    if note:
        print(f"note: {note}")
    return 0

