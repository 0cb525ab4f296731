"""Energy of binary networks on binary crossbars (J): BOLD's Boolean MLP (``bold``), BoolNet
(``boolnet``) and its Bi-Real-style baseline (``bireal``), per inference; BOLD also per training
sample. Constants: :class:`sims.energy.EnergyConstants` (sources in ``docs/energy.md``); what is
counted, and why, in ``docs/energy.md`` ("Binary networks")::

    from sims.binary_energy import binary_inference_energy
    binary_inference_energy(summary, constants)["total_j"]

Every binary layer is a crossbar of differential pairs read with 1-bit bipolar row drivers
(XNOR-popcount reads: two device reads per weight per output position). A Boolean output
(a hidden neuron, a feature-map bit) is one sense-amplifier decision against its folded
threshold; a multi-slice output is ``k`` of them; a real output (class scores, Bi-Real's
feature maps) one 8-bit ADC conversion.
"""

from __future__ import annotations

from typing import Any

from sims.energy import EnergyConstants

BINARY_RULES = frozenset({"bold", "boolnet", "bireal"})
FEATURE_MAP_BITS = {"boolnet": 1, "bireal": 32}
"""Bits per feature-map element written to and read from on-chip SRAM between layers."""


def _facts(summary: dict[str, Any]) -> list[tuple[int, int, int]]:
    try:
        return [(int(f["rows"]), int(f["cols"]), int(f["positions"])) for f in summary["layer_facts"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"summary.json: layer_facts missing or malformed ({type(exc).__name__}: "
                         f"{exc})") from exc


def _reads(layers: list[tuple[int, int, int]], k: EnergyConstants) -> tuple[dict[str, float], dict[str, int]]:
    cells = sum(2 * r * c * p for r, c, p in layers)
    rows = sum(r * p for r, _, p in layers)
    return ({"array reads": cells * k.cell_read_j, "1-bit row drivers": rows * k.read_driver_j},
            {"array reads": cells, "1-bit row drivers": rows})


def _system(name: str, components: dict[str, float], counts: dict[str, int], **extra: Any) -> dict[str, Any]:
    return {"name": name, "components_j": components, "total_j": sum(components.values()), "counts": counts,
            **extra}


def bold_inference(summary: dict[str, Any], k: EnergyConstants) -> dict[str, Any]:
    """BOLD MLP: input comparators, popcount reads, a comparator per hidden neuron, an ADC per class."""
    layers = _facts(summary)
    energy, counts = _reads(layers, k)
    inputs, classes = layers[0][0], layers[-1][1]
    hidden = sum(c * p for _, c, p in layers[:-1])
    price = {"input comparators": (inputs, k.comparator_8b_j), "neuron comparators": (hidden, k.sense_amp_j),
             "output ADCs": (classes, k.adc_j), "argmax": (classes - 1, k.argmax_compare_j)}
    for name, (n, joules) in price.items():
        counts[name], energy[name] = n, n * joules
    return _system("Boolean MLP on binary crossbars", energy, counts)


def binary_net_inference(summary: dict[str, Any], k: EnergyConstants) -> dict[str, Any]:
    """BoolNet or Bi-Real (``summary["binary_net"]``): reads, comparators or ADCs, shortcuts,
    pooling, feature-map traffic."""
    layers = _facts(summary)
    try:
        net = summary["binary_net"]
        kind, slices, blocks = str(net["kind"]), int(net["slices"]), list(net["blocks"])
        pixels = 1
        for d in net["input_shape"]:
            pixels *= int(d)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"summary.json: binary_net block missing or malformed ({type(exc).__name__}: "
                         f"{exc})") from exc
    if kind not in FEATURE_MAP_BITS or len(layers) != 2 + 2 * len(blocks):
        raise ValueError(f"summary.json: binary_net of kind {kind!r} with {len(blocks)} blocks does not "
                         f"match its {len(layers)} layers")
    energy, counts = _reads(layers, k)
    stem = layers[0][1] * layers[0][2]
    block_out = [int(b["channels"]) * int(b["positions"]) for b in blocks]
    classes = layers[-1][1]
    # 2x2 pools after the stem and every block but the last
    pooled = (stem + sum(block_out[:-1])) // 4 if blocks else 0
    n: dict[str, tuple[int, float]] = {"input slices (comparators)": (slices * pixels, k.comparator_8b_j)}
    if kind == "boolnet":
        n["comparators"] = (stem + sum((slices + 1) * e for e in block_out), k.sense_amp_j)
        n["XNOR shortcuts"] = (slices * sum(block_out), k.xor_gate_j)
        n["OR shortcuts"] = (sum(block_out), k.gate_j)
        n["AND pooling"] = (3 * pooled, k.gate_j)
        maps = stem + sum((slices + 1) * e for e in block_out)
    else:
        n["ADCs (real feature maps)"] = (stem + 2 * sum(block_out), k.adc_j)
        n["batch norms (fp32 mult + add)"] = (stem + 2 * sum(block_out), k.fp32_mult_j + k.fp32_add_j)
        n["32-bit shortcut adds"] = (2 * sum(block_out), k.fp32_add_j)
        n["max pooling (fp32 compares)"] = (3 * pooled, k.fp32_add_j)
        maps = stem + 2 * sum(block_out)
    n["feature-map SRAM traffic (bits)"] = (2 * FEATURE_MAP_BITS[kind] * maps, k.sram_read_64b_j / 64)
    n["output ADCs"] = (classes, k.adc_j)
    n["argmax"] = (classes - 1, k.argmax_compare_j)
    for name, (count, joules) in n.items():
        counts[name], energy[name] = count, count * joules
    label = ("BoolNet (binary maps, Boolean shortcuts)" if kind == "boolnet"
             else "Bi-Real (32-bit maps and shortcuts)")
    return _system(f"{label} on binary crossbars", energy, counts, slices=slices)


def binary_inference_energy(summary: dict[str, Any], k: EnergyConstants) -> dict[str, Any]:
    """One inference of a ``bold``, ``boolnet`` or ``bireal`` run's network."""
    rule = summary.get("config", {}).get("rule")
    if rule == "bold":
        return bold_inference(summary, k)
    if rule in ("boolnet", "bireal"):
        return binary_net_inference(summary, k)
    raise ValueError(f"rule {rule!r}: binary energy covers {sorted(BINARY_RULES)}")


def binary_digital_energy(summary: dict[str, Any], k: EnergyConstants) -> dict[str, Any]:
    """The same layers as fp32 MACs on digital CMOS, each with a 32-bit weight read from SRAM
    (the reference of ``bsl energy``; activations, shortcuts and pooling left out, which favours it)."""
    layers = _facts(summary)
    macs = sum(r * c * p for r, c, p in layers)
    classes = layers[-1][1]
    energy = {"MACs": macs * (k.fp32_mult_j + k.fp32_add_j),
              "SRAM weight reads": macs * k.sram_read_64b_j / 2, "argmax": (classes - 1) * k.argmax_compare_j}
    counts = {"MACs": macs, "SRAM weight reads": macs, "argmax": classes - 1}
    return _system("digital CMOS (fp32)", energy, counts, mode="deterministic", passes=1, macs=macs)


ACCUMULATOR_OP_BITS = 2
"""An accumulator update ``m <- beta m + eta q`` costs two ``ACCUMULATOR_BITS`` additions
(a shift-and-add multiply by ``beta`` taken as one addition, then the addition of ``eta q``)."""


def bold_training_energy(summary: dict[str, Any], k: EnergyConstants) -> dict[str, Any]:
    """BOLD's training per sample: forward and transposed reads (the run's own counters), the
    variation ``q = X^T Z`` (one accumulator-width addition per weight per sample: X is +-1),
    accumulator updates and SRAM traffic per weight per update, the weight read before each
    update, and the flips' SET/RESET pulses."""
    try:
        bold, layers = summary["bold"], _facts(summary)
        samples = int(summary["dataset"]["train"]) * len(summary["epochs"])
        steps = int(summary["steps"])
        bits = int(bold["accumulator_bits"])
        pulses = summary["pulses"]
        counters = summary["device_counters"]
        cell_reads = sum(int(c["cell_reads"]) for c in counters)
        vector_reads = sum(2 * int(f["rows"]) * int(f["cols"]) * (int(f["reads"]["forward"]) +
                           int(f["reads"]["transposed"])) for f in summary["layer_facts"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"summary.json: a bold run's counters missing or malformed ({type(exc).__name__}: "
                         f"{exc})") from exc
    weights = sum(r * c for r, c, _ in layers)
    bit_add = k.popcount_bit_j  # one full adder
    n: dict[str, tuple[float, float]] = {
        "array reads (forward + transposed)": (vector_reads, k.cell_read_j),
        "variation q = X^T Z": (weights * samples * bits, bit_add),
        "accumulator updates": (weights * steps * ACCUMULATOR_OP_BITS * bits, bit_add),
        "accumulator SRAM read + write": (weights * steps * 2 * bits, k.sram_read_64b_j / 64),
        "weight reads for flips": (cell_reads, k.cell_read_j),
        "SET pulses": (sum(int(p["set"]) for p in pulses), k.set_pulse_j),
        "RESET pulses": (sum(int(p["reset"]) for p in pulses), k.reset_pulse_j),
    }
    energy = {name: count * joules / samples for name, (count, joules) in n.items()}
    counts = {name: int(round(count / samples)) for name, (count, _) in n.items()}
    return _system("BOLD training on binary crossbars, per sample", energy, counts, samples=samples,
                   steps=steps, accumulator_bits=bits)
