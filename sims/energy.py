"""Training energy of a run (J) from its operation counters (``summary.json``): (a) BSL on a
crossbar, (b) high-precision training on the same crossbar, (c) digital CMOS. Per-operation
constants: :class:`EnergyConstants`; sources, formulas, assumptions: ``docs/energy.md``::

    from sims.energy import load_constants, run_energy
    report = run_energy("runs/bsl-digits-...", load_constants(adc_j=5e-12))
    report.ratio("high_precision"), report.ratio("digital", per="sample")
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devices.toml_io import check_keys, read_toml


@dataclass(frozen=True)
class EnergyConstants:
    """Energy per operation, J. Sources in full: ``docs/energy.md``."""

    cell_read_j: float = 0.2**2 * 55e-6 * 10e-9
    """One device read: V_read^2 G t = (0.2 V)^2 x 55 uS (mid-range of preset rram) x 10 ns."""
    read_driver_j: float = 0.39e-12
    """1-bit input driver per input per read: ISAAC's 1-bit DAC, 4 mW / (1024 x 10 MHz) (Shafiee 2016)."""
    dac_j: float = 8 * 0.39e-12
    """8-bit input DAC per input per read: eight 1-bit driver slices (estimate, after Shafiee 2016)."""
    sense_amp_j: float = 2.6e-12 / 8
    """1-bit sense amplifier / comparator per output: one bit cycle of the SAR ADC below (upper bound)."""
    adc_j: float = 2.6e-12
    """8-bit ADC per conversion: SAR, 3.1 mW at 1.2 GS/s (Kull et al., JSSC 2013; Murmann's ADC survey)."""
    random_number_j: float = 0.03e-12
    """One random number (8-bit LFSR word) for a stochastic binarization: as an 8-bit add (Horowitz 2014)."""
    accumulator_add_j: float = 0.03e-12
    """One step of a synapse's 8-bit accumulator (``bsl --update accumulate``): an 8-bit add
    (Horowitz 2014)."""
    set_pulse_j: float = 1.2 * 100e-6 * 10e-9
    """SET pulse: V I t = 1.2 V x 100 uA x 10 ns (RRAM: ~pJ per pulse; Yu, Proc. IEEE 2018)."""
    reset_pulse_j: float = 1.5 * 100e-6 * 10e-9
    """RESET pulse: V I t = 1.5 V x 100 uA x 10 ns (as above)."""
    fp32_mult_j: float = 3.7e-12
    """32-bit float multiply, 45 nm (Horowitz 2014)."""
    fp32_add_j: float = 0.9e-12
    """32-bit float add, 45 nm (Horowitz 2014)."""
    sram_read_64b_j: float = 10e-12
    """64-bit read of an 8 kB SRAM, 45 nm (Horowitz 2014); a write is taken as equal."""
    dram_64b_j: float = 1.3e-9
    """64-bit DRAM access (Horowitz 2014: 1.3-2.6 nJ; the low end, which favours digital)."""
    # Per-inference digital logic (sims.inference_energy), 45 nm, derived from Horowitz 2014's
    # 8-bit add (0.03 pJ = 8 full adders; a full adder = 2 XOR2 + 3 AND/OR-class gates = 7 gate units).
    gate_j: float = 0.03e-12 / 8 / 7
    """One AND/OR/NAND/NOR-class two-input gate evaluation: 1/7 of a full adder (Horowitz 2014 8-bit add)."""
    xor_gate_j: float = 2 * 0.03e-12 / 8 / 7
    """One XOR/XNOR evaluation: two gate units (an XOR2 cell is about 2 NAND2 equivalents)."""
    inverter_j: float = 2 / 3 * 0.03e-12 / 8 / 7
    """One inverter: 2/3 of a gate unit (an inverter is about 0.67 NAND2 equivalents)."""
    comparator_8b_j: float = 0.03e-12
    """8-bit comparison of an input with a threshold: as an 8-bit add (its carry chain; Horowitz 2014)."""
    popcount_bit_j: float = 0.03e-12 / 8
    """One full adder: one input bit of a popcount adder tree (Horowitz 2014 8-bit add / 8)."""
    argmax_compare_j: float = 0.1e-12 / 2
    """One 16-bit comparison of class scores in the argmax: half a 32-bit add (Horowitz 2014)."""

    def __post_init__(self) -> None:
        for name, v in dataclasses.asdict(self).items():
            if isinstance(v, bool) or not isinstance(v, int | float) or not (math.isfinite(v) and v > 0):
                raise ValueError(f"energy constant {name} = {v!r}: must be a finite number of joules > 0")


def load_constants(path: str | Path | None = None, **overrides: float) -> EnergyConstants:
    """The defaults, then the ``[energy]`` table of a TOML file, then ``overrides`` (J)."""
    values: dict[str, Any] = {}
    where = f" (in {path})" if path is not None else ""
    if path is not None:
        data = read_toml(path, "energy constants file")
        if set(data) != {"energy"} or not isinstance(data["energy"], dict):
            raise ValueError(f"constants file {path}: wants only an [energy] table, has {sorted(data)}")
        values.update(data["energy"])
    values.update(overrides)
    known = [f.name for f in dataclasses.fields(EnergyConstants)]
    check_keys(values, known, where,
               message="unknown energy constant {unknown_list}{where}; known: {known_list}")
    try:
        return EnergyConstants(**values)
    except ValueError as exc:
        raise ValueError(f"{exc}{where}") from None


@dataclass(frozen=True)
class LayerCounts:
    """Training reads of one layer's ``rows x cols`` crossbar (evaluation reads excluded):
    ``forward`` reads (samples x ``positions``, the output positions of a convolution, 1 for
    dense) drive the rows and sense the columns, ``backward`` (transposed) reads the reverse."""

    rows: int
    cols: int
    positions: int
    forward: int
    backward: int

    @property
    def macs(self) -> int:
        return (self.forward + self.backward) * self.rows * self.cols

    @property
    def inputs(self) -> int:
        return self.forward * self.rows + self.backward * self.cols

    @property
    def outputs(self) -> int:
        return self.forward * self.cols + self.backward * self.rows


@dataclass(frozen=True)
class RunCounts:
    """What the energy model needs from a run: ``samples`` trained (training set x epochs),
    ``steps`` (weight updates), ``input_size`` (elements per sample), device pulses and
    single-cell reads, ``arrays`` per layer (2 with periodic carry, both read every time),
    ``measured`` (False: float run, reads from the layer shapes), ``eval_macs`` (left out)."""

    rule: str
    layers: tuple[LayerCounts, ...]
    samples: int
    steps: int
    input_size: int
    set_pulses: int = 0
    reset_pulses: int = 0
    cell_reads: int = 0
    arrays: int = 1
    measured: bool = True
    eval_macs: int = 0
    accumulator_cells: int = 0
    """Synapses with an accumulator (``bsl --update accumulate``; 0 = none)."""

    @property
    def macs(self) -> int:
        return sum(layer.macs for layer in self.layers)


def counts_from_summary(s: dict[str, Any]) -> RunCounts:
    """Training operation counts of a finished run's summary (method: ``docs/energy.md``): from
    the facts it records per layer (``layer_facts``: shape, store, reads per phase); summaries
    written before those facts existed are read by re-deriving them (:func:`legacy_counts`)."""
    if "layer_facts" not in s:
        return _with_accumulators(legacy_counts(s), s.get("config", {}))
    try:
        c, d, facts, counters = s["config"], s["dataset"], s["layer_facts"], s["device_counters"]
        if len(facts) != len(counters):
            raise ValueError(f"summary: {len(facts)} layers but {len(counters)} sets of device counters")
        kinds = {f["store_kind"] for f in facts}
        measured, arrays = "float" not in kinds, (2 if "carry" in kinds else 1)
        layers, totals, eval_macs = [], dict.fromkeys(("set_pulses", "reset_pulses", "cell_reads"), 0), 0
        for i, (f, k) in enumerate(zip(facts, counters, strict=True)):
            rows, cols, reads = int(f["rows"]), int(f["cols"]), f["reads"]
            forward, backward = int(reads["forward"]), int(reads["transposed"])
            ev = sum(int(n) for n in reads["evaluation"].values())
            if measured and (k["vector_reads"] != arrays * (forward + backward + ev)
                             or k["macs"] != k["vector_reads"] * rows * cols):
                raise ValueError(f"layer {i} ({f['describe']}): counters {k} do not match its recorded "
                                 f"reads {reads} on {arrays} array(s) of {rows}x{cols}")
            layers.append(LayerCounts(rows, cols, int(f["positions"]), forward, backward))
            eval_macs += ev * rows * cols * arrays if measured else 0
            totals = {name: n + int(k.get(name, 0)) for name, n in totals.items()}
        return _with_accumulators(RunCounts(
            str(c["rule"]), tuple(layers), d["train"] * c["epochs"], int(s["steps"]),
            math.prod(d["input_shape"]), arrays=arrays, measured=measured, eval_macs=eval_macs, **totals), c)
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"summary.json: missing or malformed field ({type(exc).__name__}: {exc})") from exc


def _with_accumulators(counts: RunCounts, config: dict[str, Any]) -> RunCounts:
    """``counts`` with the synapses' accumulators of a ``bsl --update accumulate`` run."""
    if config.get("rule") == "bsl" and config.get("update") == "accumulate":
        return dataclasses.replace(counts, accumulator_cells=sum(x.rows * x.cols for x in counts.layers))
    return counts


# Summaries without ``layer_facts`` (written before they were recorded): layer shapes parsed
# from the descriptions, reads per phase re-derived from the configuration.
_DENSE = re.compile(r"^dense (\d+)->(\d+)$")
_CONV = re.compile(r"^conv (\d+)x\d+x\d+ k(\d+) s\d+ -> (\d+)x(\d+)x(\d+)$")


def layer_shape(describe: str) -> tuple[int, int, int]:
    """``(rows, cols, positions)`` of a layer description such as ``dense 64->128``."""
    if m := _DENSE.match(describe):
        return int(m[1]) + 1, int(m[2]), 1
    if m := _CONV.match(describe):
        return int(m[1]) * int(m[2]) ** 2 + 1, int(m[3]), int(m[4]) * int(m[5])
    raise ValueError(f"layer {describe!r}: not a dense or conv layer description")


def legacy_counts(s: dict[str, Any]) -> RunCounts:
    """:func:`counts_from_summary` for a summary without ``layer_facts``: shapes from the
    layer descriptions, evaluation reads from the configuration, transposed reads the rest."""
    from bsl.evaluation import final_test_modes

    try:
        c, d, descs, counters = s["config"], s["dataset"], s["layers"], s["device_counters"]
        samples, passes = d["train"] * c["epochs"], {"deterministic": 1, "stochastic": c["eval_samples"]}
        modes = final_test_modes(c["device"], c["inference"])
        evals = (d["test"] * (c["epochs"] * passes[c["inference"]] + sum(passes[m] for m in modes))
                 + d["train"] * passes[c["inference"]])  # per-epoch tests, final tests, train accuracy
        arrays, measured = (2 if c.get("carry_period", 0) else 1), any(counters)
        if len(descs) != len(counters):
            raise ValueError(f"summary: {len(descs)} layers but {len(counters)} sets of device counters")
        layers, totals, eval_macs = [], dict.fromkeys(("set_pulses", "reset_pulses", "cell_reads"), 0), 0
        for i, (text, k) in enumerate(zip(descs, counters, strict=True)):
            rows, cols, pos = layer_shape(text)
            forward, ev = samples * pos, evals * pos
            backward = k["vector_reads"] // arrays - forward - ev if measured else (forward if i else 0)
            if measured and (k["macs"] != k["vector_reads"] * rows * cols or k["vector_reads"] % arrays
                             or not 0 <= backward <= (forward if i else 0)):
                raise ValueError(f"layer {i} ({text}): counters {k} do not match the run's configuration "
                                 f"({forward} training and {ev} evaluation reads per array expected)")
            layers.append(LayerCounts(rows, cols, pos, forward, backward))
            eval_macs += ev * rows * cols * arrays if measured else 0
            totals = {name: n + int(k.get(name, 0)) for name, n in totals.items()}
        return RunCounts(str(c["rule"]), tuple(layers), samples, int(s["steps"]), math.prod(d["input_shape"]),
                         arrays=arrays, measured=measured, eval_macs=eval_macs, **totals)
    except (KeyError, TypeError) as exc:
        raise ValueError(f"summary.json: missing or malformed field ({type(exc).__name__}: {exc}); "
                         "written by an older bsl train?") from exc


@dataclass(frozen=True)
class SystemEnergy:
    """One system's training energy by component, J over the whole run; ``mac_components``
    are those of the multiply-accumulates themselves (the per-MAC figure)."""

    name: str
    components: dict[str, float]
    mac_components: tuple[str, ...]
    macs: int
    samples: int

    @property
    def total_j(self) -> float:
        return sum(self.components.values())

    @property
    def per_mac_j(self) -> float:  # the MAC operations (reads with their periphery) per MAC
        return sum(self.components[k] for k in self.mac_components) / max(self.macs, 1)

    @property
    def per_sample_j(self) -> float:  # all training energy per training sample
        return self.total_j / max(self.samples, 1)


@dataclass(frozen=True)
class EnergyReport:
    """The three systems (``bsl``, ``high_precision``, ``digital``) for one run."""

    counts: RunCounts
    systems: dict[str, SystemEnergy]
    notes: tuple[str, ...]

    def ratio(self, system: str, per: str = "mac") -> float:
        """``system`` over BSL, per MAC (``mac``) or per training sample (``sample``)."""
        attr = {"mac": "per_mac_j", "sample": "per_sample_j"}[per]
        return float(getattr(self.systems[system], attr) / getattr(self.systems["bsl"], attr))


def estimate(counts: RunCounts, k: EnergyConstants | None = None, *, verify_iterations: int = 10,
             dram: bool = False) -> EnergyReport:
    """Price a run's counts for the three systems (formulas: ``docs/energy.md``); ``verify_iterations``:
    pulse-and-read iterations of one analog-precision update in (b); ``dram``: (c) streams weights."""
    k = k or EnergyConstants()
    if verify_iterations < 1:
        raise ValueError(f"verify_iterations = {verify_iterations!r}: must be >= 1")
    n, layers, macs, a = counts.samples, counts.layers, counts.macs, counts.arrays
    updated = counts.steps * sum(x.rows * x.cols for x in layers)  # every weight, every step
    inputs, outputs = sum(x.inputs for x in layers), sum(x.outputs for x in layers)
    hidden = sum(x.forward * x.cols for x in layers[:-1])  # stochastic units: one binarization per read
    bsl = SystemEnergy("BSL on crossbar", {  # array reads: a differential pair, two devices per weight
        "array reads": 2 * a * macs * k.cell_read_j, "1-bit drivers": a * inputs * k.read_driver_j,
        "sense amps": a * outputs * k.sense_amp_j,
        "random numbers": (n * counts.input_size + 2 * hidden) * k.random_number_j,
        "pulses": counts.set_pulses * k.set_pulse_j + counts.reset_pulses * k.reset_pulse_j,
        "verify reads": counts.cell_reads * (k.cell_read_j + k.adc_j),
        **({"accumulators": counts.accumulator_cells * (n * k.accumulator_add_j
                                                         + counts.steps * k.comparator_8b_j)}
           if counts.accumulator_cells else {}),
    }, ("array reads", "1-bit drivers", "sense amps", "random numbers"), macs, n)
    train = verify_iterations * ((k.set_pulse_j + k.reset_pulse_j) / 2 + k.cell_read_j + k.adc_j)
    hp = SystemEnergy("high precision on crossbar", {
        "array reads": 2 * macs * k.cell_read_j, "DACs": inputs * k.dac_j, "ADCs": outputs * k.adc_j,
        "updates": updated * train,
    }, ("array reads", "DACs", "ADCs"), macs, n)
    op, word = k.fp32_mult_j + k.fp32_add_j, k.sram_read_64b_j / 2  # a 32-bit weight: half a 64-bit read
    grad = n * sum(x.positions * x.rows * x.cols for x in layers)
    parts = {"MACs": macs * op, "SRAM weight reads": macs * word, "gradient MACs": grad * (op + word),
             "updates": updated * (op + 2 * word)}
    if dram:
        parts["DRAM"] = updated * k.dram_64b_j  # read + write of 32 bits per step
    dig = SystemEnergy("digital CMOS (fp32)", parts, ("MACs", "SRAM weight reads"), macs, n)
    note = (f"rule {counts.rule} used analog signals: (a) prices its reads with binary periphery"
            if counts.measured else f"rule {counts.rule}: float weights, no device counters; MACs from the "
            "layer shapes (forward reads of all layers, transposed reads above the first); (a) has no pulses")
    notes = () if counts.measured and counts.rule == "bsl" else (note,)
    return EnergyReport(counts, {"bsl": bsl, "high_precision": hp, "digital": dig}, notes)


def run_energy(run_dir: str | Path, k: EnergyConstants | None = None, **options: Any) -> EnergyReport:
    """:func:`estimate` for a run folder's ``summary.json``."""
    path = Path(run_dir) / "summary.json"
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir}: no summary.json (not a finished bsl train run folder)")
    return estimate(counts_from_summary(json.loads(path.read_text())), k, **options)
