"""Energy per inference (J for one input sample classified): a logic-gate network in CMOS
logic, and a crossbar network (``bsl``/``manhattan``/``sgd`` runs) on the crossbar and as fp32
MACs on digital CMOS. Constants: :class:`sims.energy.EnergyConstants`; formulas, sources and
caveats: ``docs/energy.md`` ("Energy per inference")::

    from sims.energy import load_constants
    from sims.inference_energy import inference_energy, load_summary
    report = inference_energy(load_summary("runs/..."), load_constants())
    report["systems"]["crossbar"]["total_j"]
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bsl.logic.gates import CONSTANT_OR_WIRE, GATE_NAMES, N_GATES, TRIVIAL
from sims.binary_energy import BINARY_RULES, binary_digital_energy, binary_inference_energy
from sims.energy import EnergyConstants, counts_from_summary

LOGIC_RULES = frozenset({"difflogic", "lilogic", "compactlogic"})
INVERTERS = TRIVIAL - CONSTANT_OR_WIRE  # NOT A, NOT B
XORS = frozenset(GATE_NAMES.index(name) for name in ("XOR", "XNOR"))
OUTPUT_BITS = 8
"""Bits of an output-layer ADC code, summed over the passes of stochastic inference."""


def load_summary(run_dir: str | Path) -> dict[str, Any]:
    """A finished run folder's ``summary.json``."""
    path = Path(run_dir) / "summary.json"
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir}: no summary.json (not a finished bsl train run folder)")
    data = json.loads(path.read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a JSON object")
    return data


def is_logic_run(summary: dict[str, Any]) -> bool:
    """A logic-gate network's run (rule difflogic/lilogic/compactlogic, or a ``logic`` block)."""
    rule = summary.get("config", {}).get("rule") if isinstance(summary.get("config"), dict) else None
    return rule in LOGIC_RULES or "logic" in summary


def _system(name: str, components: dict[str, float], counts: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"name": name, "components_j": components, "total_j": sum(components.values()), "counts": counts,
            **extra}


def logic_inference_energy(logic: dict[str, Any], k: EnergyConstants, *,
                           live_only: bool = False) -> dict[str, Any]:
    """One inference of a logic-gate network (``summary["logic"]``): input comparators, gates
    by class (constants and wires free), popcount, argmax. ``live_only`` scales the gate energy
    by ``live_gates / gates`` (an approximation: dead gates taken to have the live gates' mix)."""
    try:
        counts = [int(n) for n in logic["gate_counts"]]
        gates, input_bits = int(logic["gates"]), int(logic["input_bits"])
        popcount, classes = int(logic["popcount_inputs"]), int(logic["classes"])
        live = int(logic.get("live_gates", gates))
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"summary.json: logic block missing or malformed ({type(exc).__name__}: "
                         f"{exc})") from exc
    if len(counts) != N_GATES or min(counts) < 0:
        raise ValueError(f"summary.json: logic gate_counts wants {N_GATES} counts >= 0, has {counts}")
    if sum(counts) != gates:
        raise ValueError(f"summary.json: logic gate_counts sum to {sum(counts)}, gates = {gates}")
    if min(input_bits, popcount, live) < 0 or classes < 1 or live > gates:
        raise ValueError(f"summary.json: logic counts out of range (input_bits {input_bits}, popcount_inputs "
                         f"{popcount}, classes {classes}, live_gates {live} of {gates})")
    xor = sum(counts[g] for g in XORS)
    inverters = sum(counts[g] for g in INVERTERS)
    wires = sum(counts[g] for g in CONSTANT_OR_WIRE)
    other = gates - xor - inverters - wires
    for name, want in (("operations", xor + other), ("inverters", inverters)):
        if name in logic and int(logic[name]) != want:
            raise ValueError(f"summary.json: logic {name} = {logic[name]}, gate_counts give {want}")
    scale = live / gates if live_only and gates else 1.0
    components = {
        "input comparators": input_bits * k.comparator_8b_j,
        "AND/OR-class gates": scale * other * k.gate_j,
        "XOR/XNOR gates": scale * xor * k.xor_gate_j,
        "inverters": scale * inverters * k.inverter_j,
        "popcount": popcount * k.popcount_bit_j,
        "argmax": (classes - 1) * k.argmax_compare_j,
    }
    tally = {"input comparators": input_bits, "AND/OR-class gates": other, "XOR/XNOR gates": xor,
             "inverters": inverters, "popcount": popcount, "argmax": classes - 1}
    return _system("logic gates (CMOS)", components, tally, gates=gates, constants_and_wires=wires,
                   live_gates=live, live_only=live_only, gate_scale=scale, depth=logic.get("depth"))


def _layers(summary: dict[str, Any]) -> tuple[Any, ...]:
    """Layer shapes (rows, cols, positions) and array count, through :func:`counts_from_summary`."""
    counts = counts_from_summary(summary)
    if not counts.layers:
        raise ValueError("summary.json: no crossbar layers")
    return counts.layers, counts.arrays, counts.input_size, counts.measured


def crossbar_inference_energy(summary: dict[str, Any], k: EnergyConstants, *,
                              mode: str | None = None) -> dict[str, Any]:
    """One inference of a crossbar run's network, in the run's inference mode (or ``mode``).

    Per layer, per output position: one forward read of its ``rows x cols`` crossbar (two
    devices per weight). ``deterministic``: one pass, an 8-bit DAC per driven row and an
    8-bit ADC per column (analog pixels in, analog sigmoid outputs passed on). ``stochastic``:
    K = ``eval_samples`` passes of 1-bit drivers, sense amps on the hidden columns, random
    numbers for the input and hidden binarizations, ADCs on the output layer and the sum of
    the ADC codes over passes (8 full adders per class per pass). Both: an argmax."""
    layers, arrays, input_size, measured = _layers(summary)
    try:
        config = summary["config"]
        mode = mode or str(config["inference"])
        passes = int(config["eval_samples"]) if mode == "stochastic" else 1
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"summary.json: missing or malformed field ({type(exc).__name__}: {exc})") from exc
    if mode not in ("deterministic", "stochastic") or passes < 1:
        raise ValueError(f"inference mode {mode!r} with {passes} passes: want deterministic, or stochastic "
                         "with eval_samples >= 1")
    macs = sum(x.positions * x.rows * x.cols for x in layers)
    rows = sum(x.positions * x.rows for x in layers)
    classes = layers[-1].cols
    hidden = sum(x.positions * x.cols for x in layers[:-1])
    a = arrays
    if mode == "deterministic":
        cols = sum(x.positions * x.cols for x in layers)
        components = {"array reads": 2 * a * macs * k.cell_read_j, "DACs": a * rows * k.dac_j,
                      "ADCs": a * cols * k.adc_j}
        tally: dict[str, int] = {"array reads": 2 * a * macs, "DACs": a * rows, "ADCs": a * cols}
    else:
        outputs = layers[-1].positions * classes
        tally = {"array reads": 2 * a * macs, "1-bit drivers": a * rows, "sense amps": a * hidden,
                 "random numbers": input_size + hidden, "output ADCs": a * outputs,
                 "output accumulation": OUTPUT_BITS * outputs}
        tally = {name: passes * n for name, n in tally.items()}
        price = {"array reads": k.cell_read_j, "1-bit drivers": k.read_driver_j, "sense amps": k.sense_amp_j,
                 "random numbers": k.random_number_j, "output ADCs": k.adc_j,
                 "output accumulation": k.popcount_bit_j}
        components = {name: n * price[name] for name, n in tally.items()}
    components["argmax"] = (classes - 1) * k.argmax_compare_j
    tally["argmax"] = classes - 1
    notes = [] if measured else ["float weights (sgd): the network priced as if mapped onto crossbars"]
    return _system("crossbar", components, tally, mode=mode, passes=passes, macs=macs, arrays=a, notes=notes)


def digital_inference_energy(summary: dict[str, Any], k: EnergyConstants) -> dict[str, Any]:
    """The same network (bias rows included) as one pass of fp32 MACs on digital CMOS, each
    with a 32-bit weight read from SRAM (half a 64-bit read), and an argmax."""
    layers = _layers(summary)[0]
    macs = sum(x.positions * x.rows * x.cols for x in layers)
    classes = layers[-1].cols
    components = {"MACs": macs * (k.fp32_mult_j + k.fp32_add_j),
                  "SRAM weight reads": macs * k.sram_read_64b_j / 2,
                  "argmax": (classes - 1) * k.argmax_compare_j}
    tally = {"MACs": macs, "SRAM weight reads": macs, "argmax": classes - 1}
    return _system("digital CMOS (fp32)", components, tally, mode="deterministic", passes=1, macs=macs)


def inference_energy(summary: dict[str, Any], k: EnergyConstants | None = None, *, live_only: bool = False,
                     mode: str | None = None) -> dict[str, Any]:
    """Per-inference energy of a run's network: ``{"kind": "logic", "systems": {"logic": ...}}``
    or ``{"kind": "crossbar", "systems": {"crossbar": ..., "digital": ...}, "ratio": digital/crossbar}``."""
    k = k or EnergyConstants()
    if not isinstance(summary, dict):
        raise ValueError("summary.json: not a JSON object")
    rule = summary.get("config", {}).get("rule") if isinstance(summary.get("config"), dict) else None
    if rule in BINARY_RULES:
        binary = binary_inference_energy(summary, k)
        digital = binary_digital_energy(summary, k)
        return {"kind": "binary", "rule": rule, "systems": {"binary": binary, "digital": digital},
                "ratio": digital["total_j"] / binary["total_j"]}
    if is_logic_run(summary):
        if not isinstance(summary.get("logic"), dict):
            raise ValueError(f"summary.json: rule {rule} but no logic block (gate counts)")
        return {"kind": "logic", "rule": rule,
                "systems": {"logic": logic_inference_energy(summary["logic"], k, live_only=live_only)}}
    crossbar, digital = crossbar_inference_energy(summary, k, mode=mode), digital_inference_energy(summary, k)
    return {"kind": "crossbar", "rule": rule, "systems": {"crossbar": crossbar, "digital": digital},
            "ratio": digital["total_j"] / crossbar["total_j"]}


def format_inference(report: dict[str, Any], where: str | None = None) -> str:
    """The per-inference table of ``bsl energy`` (counts and pJ per inference)."""
    lines = []
    if where is not None:
        lines.append(f"energy per inference of {where} (rule {report['rule']}; model, constants and "
                     "sources: docs/energy.md)")
    for key, s in report["systems"].items():
        head = s["name"]
        if "mode" in s:
            head += f", {s['mode']} inference, {s['passes']} pass{'es' if s['passes'] != 1 else ''}"
        if key == "logic":
            head += (f": {s['gates']:,} gates ({s['constants_and_wires']:,} constants/wires, free), "
                     f"depth {s['depth']}" + (", live gates only" if s["live_only"] else ""))
        lines.append(f"  {head}")
        lines.append(f"    {'':30}{'count':>14}{'pJ/inference':>14}")
        for name, joules in s["components_j"].items():
            lines.append(f"    {name:<30}{s['counts'][name]:>14,}{joules * 1e12:>14.4g}")
        lines.append(f"    {'total':<30}{'':>14}{s['total_j'] * 1e12:>14.4g}")
        lines += [f"note: {note}" for note in s.get("notes", [])]
    if "ratio" in report:
        other = "binary crossbars" if report["kind"] == "binary" else "crossbar"
        lines.append(f"  ratio digital / {other} per inference: {report['ratio']:.4g}")
    return "\n".join(lines)
