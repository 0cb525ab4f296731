"""Energy per inference (``sims.inference_energy``) and its part of ``bsl energy``: hand-counted
logic and crossbar networks, the CLI on fabricated run folders, constants and docs."""

from __future__ import annotations

import copy
import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import pytest

from bsl.cli import main
from bsl.logic.gates import GATE_NAMES
from sims.energy import EnergyConstants, load_constants
from sims.inference_energy import (
    crossbar_inference_energy,
    digital_inference_energy,
    inference_energy,
    logic_inference_energy,
)

ROOT = Path(__file__).resolve().parents[1]
# Distinct round numbers, so that every component can be written out by hand.
UNIT = EnergyConstants(cell_read_j=1.0, read_driver_j=10.0, dac_j=100.0, sense_amp_j=1e3, adc_j=1e4,
                       random_number_j=1e5, fp32_mult_j=3.0, fp32_add_j=5.0, sram_read_64b_j=64.0,
                       gate_j=11.0, xor_gate_j=13.0, inverter_j=17.0, comparator_8b_j=19.0,
                       popcount_bit_j=23.0, argmax_compare_j=29.0)


def gate_counts(**named: int) -> list[int]:
    return [named.get(name, 0) for name in GATE_NAMES]


# 2 AND, 1 XOR, 1 NOT_A (an inverter), 1 A (a wire): 3 operations, 1 inverter.
LOGIC: dict[str, Any] = {
    "gates": 5, "gate_counts": gate_counts(AND=2, XOR=1, NOT_A=1, A=1), "operations": 3, "inverters": 1,
    "depth": 2, "live_gates": 4, "popcount_inputs": 4, "classes": 2, "input_bits": 8, "features": 4,
    "encoding": "fixed", "thresholds": [0.5, 0.25],
}
LOGIC_SUMMARY: dict[str, Any] = {
    "config": {"rule": "difflogic", "epochs": 1},
    "dataset": {"name": "fake", "train": 10, "test": 5, "input_shape": [4], "classes": 2},
    "steps": 3,
    "layers": ["logic 8->5"],
    "layer_facts": [{"kind": "logic", "inputs": 8, "gates": 5}],
    "device_counters": [{}],
    "logic": LOGIC,
}


def reads(forward: int, transposed: int) -> dict[str, Any]:
    return {"forward": forward, "transposed": transposed, "evaluation": {"deterministic": 45}}


# Two dense layers, 3->2 and 2->2: 4x2 and 3x2 crossbars with the bias row (14 weights).
CROSSBAR_SUMMARY: dict[str, Any] = {
    "config": {"rule": "bsl", "epochs": 2, "inference": "deterministic", "eval_samples": 3},
    "dataset": {"name": "fake", "train": 10, "test": 5, "input_shape": [3], "classes": 2},
    "steps": 5,
    "layers": ["dense 3->2", "dense 2->2"],
    "layer_facts": [
        {"kind": "dense", "describe": "dense 3->2", "rows": 4, "cols": 2, "positions": 1, "inputs": 3,
         "outputs": 2, "store_kind": "crossbar", "arrays": 1, "reads": reads(20, 0)},
        {"kind": "dense", "describe": "dense 2->2", "rows": 3, "cols": 2, "positions": 1, "inputs": 2,
         "outputs": 2, "store_kind": "crossbar", "arrays": 1, "reads": reads(20, 18)},
    ],
    "device_counters": [
        {"vector_reads": 65, "macs": 65 * 8, "cell_reads": 0, "set_pulses": 30, "reset_pulses": 20},
        {"vector_reads": 83, "macs": 83 * 6, "cell_reads": 0, "set_pulses": 7, "reset_pulses": 3},
    ],
}


def test_logic_hand_counted() -> None:
    s = logic_inference_energy(LOGIC, UNIT)
    assert s["components_j"] == {"input comparators": 8 * 19.0, "AND/OR-class gates": 2 * 11.0,
                                 "XOR/XNOR gates": 13.0, "inverters": 17.0, "popcount": 4 * 23.0,
                                 "argmax": 1 * 29.0}
    assert s["total_j"] == 152 + 22 + 13 + 17 + 92 + 29 == 325
    assert s["counts"] == {"input comparators": 8, "AND/OR-class gates": 2, "XOR/XNOR gates": 1,
                           "inverters": 1, "popcount": 4, "argmax": 1}
    assert (s["gates"], s["constants_and_wires"], s["live_gates"]) == (5, 1, 4)
    live = logic_inference_energy(LOGIC, UNIT, live_only=True)
    assert live["total_j"] == pytest.approx(152 + 0.8 * (22 + 13 + 17) + 92 + 29)


def test_logic_with_the_default_constants() -> None:
    g = 0.03e-12 / 56  # Horowitz's 8-bit add over 8 full adders of 7 gate units
    s = logic_inference_energy(LOGIC, EnergyConstants())
    want = 8 * 0.03e-12 + 2 * g + 2 * g + 2 / 3 * g + 4 * 0.03e-12 / 8 + 0.05e-12
    assert s["total_j"] == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("change, message", [
    (dict(gates=6), "sum to 5, gates = 6"),
    (dict(operations=4), "operations = 4"),
    (dict(inverters=0), "inverters = 0"),
    (dict(gate_counts=[1] * 15), "wants 16 counts"),
    (dict(classes=0), "out of range"),
    (dict(input_bits=None), "missing or malformed"),
])
def test_inconsistent_logic_blocks_are_refused(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        logic_inference_energy({**LOGIC, **change}, UNIT)
    bad = {**LOGIC_SUMMARY}
    del bad["logic"]
    with pytest.raises(ValueError, match="no logic block"):
        inference_energy(bad, UNIT)


def test_crossbar_deterministic_hand_counted() -> None:
    # 14 MACs: 28 device reads; 7 rows driven by DACs, 4 columns converted; argmax of 2 classes.
    s = crossbar_inference_energy(CROSSBAR_SUMMARY, UNIT)
    assert (s["mode"], s["passes"], s["macs"]) == ("deterministic", 1, 14)
    assert s["components_j"] == {"array reads": 28.0, "DACs": 700.0, "ADCs": 4e4, "argmax": 29.0}
    assert s["total_j"] == 40757.0
    d = digital_inference_energy(CROSSBAR_SUMMARY, UNIT)
    assert d["components_j"] == {"MACs": 14 * 8.0, "SRAM weight reads": 14 * 32.0, "argmax": 29.0}
    r = inference_energy(CROSSBAR_SUMMARY, UNIT)
    assert r["kind"] == "crossbar" and r["ratio"] == pytest.approx(589 / 40757)


def test_crossbar_stochastic_hand_counted() -> None:
    # K = 3 passes of: 28 device reads, 7 1-bit drivers, 2 hidden sense amps, 3 + 2 random numbers,
    # 2 output ADCs and 2 x 8 full adders summing their codes; one argmax.
    summary = copy.deepcopy(CROSSBAR_SUMMARY)
    summary["config"]["inference"] = "stochastic"
    s = crossbar_inference_energy(summary, UNIT)
    assert (s["mode"], s["passes"]) == ("stochastic", 3)
    assert s["components_j"] == {"array reads": 84.0, "1-bit drivers": 210.0, "sense amps": 6e3,
                                 "random numbers": 15e5, "output ADCs": 6e4, "output accumulation": 48 * 23.0,
                                 "argmax": 29.0}
    assert crossbar_inference_energy(CROSSBAR_SUMMARY, UNIT, mode="stochastic") == s


def test_conv_layers_are_read_once_per_output_position() -> None:
    summary = copy.deepcopy(CROSSBAR_SUMMARY)
    summary["config"]["rule"] = "sgd"
    summary["device_counters"] = [{}, {}]
    summary["layer_facts"][0].update(kind="conv", positions=4, store_kind="float", arrays=0)
    summary["layer_facts"][1]["store_kind"] = "float"
    s = crossbar_inference_energy(summary, UNIT)
    assert s["macs"] == 4 * 8 + 6
    assert s["components_j"]["DACs"] == (4 * 4 + 3) * 100.0 and s["components_j"]["ADCs"] == (4 * 2 + 2) * 1e4
    assert "float weights" in s["notes"][0]


def write_run(folder: Path, summary: dict[str, Any]) -> Path:
    folder.mkdir()
    (folder / "summary.json").write_text(json.dumps(summary))
    (folder / "config.toml").write_text(f'[train]\nrule = "{summary["config"]["rule"]}"\n')
    return folder


def test_cli_logic_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = write_run(tmp_path / "logic", LOGIC_SUMMARY)
    assert main(["energy", str(run)]) == 0
    text = capsys.readouterr().out
    for line in ("energy per inference of", "logic gates (CMOS)", "input comparators", "XOR/XNOR gates",
                 "popcount", "argmax", "pJ/inference",
                 "training energy (on a GPU/CPU) is outside this model"):
        assert line in text
    assert "pJ/MAC" not in text
    assert main(["energy", str(run), "--json", "--live-only"]) == 0
    data = json.loads(capsys.readouterr().out)
    logic = data["inference"]["systems"]["logic"]
    assert data["inference"]["kind"] == "logic" and logic["live_only"]
    assert logic["total_j"] == pytest.approx(logic_inference_energy(LOGIC, EnergyConstants(),
                                                                    live_only=True)["total_j"])
    bad = copy.deepcopy(LOGIC_SUMMARY)
    bad["logic"]["gates"] = 7
    assert main(["energy", str(write_run(tmp_path / "bad", bad))]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("bsl energy: error: summary.json: logic gate_counts") and "\n" not in err


def test_cli_crossbar_run_adds_the_inference_lines(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    run = write_run(tmp_path / "bsl", CROSSBAR_SUMMARY)
    assert main(["energy", str(run)]) == 0
    text = capsys.readouterr().out
    for line in ("(a) BSL on crossbar", "ratio over (a)", "energy per inference", "crossbar, deterministic",
                 "digital CMOS (fp32), deterministic", "ratio digital / crossbar per inference"):
        assert line in text
    assert main(["energy", str(run), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data["systems"]) == {"bsl", "high_precision", "digital"}
    assert set(data["inference"]["systems"]) == {"crossbar", "digital"}
    assert data["inference"]["systems"]["crossbar"]["total_j"] == pytest.approx(
        crossbar_inference_energy(CROSSBAR_SUMMARY, EnergyConstants())["total_j"])


def test_constants_file_dataclass_and_docs_agree() -> None:
    defaults = dataclasses.asdict(EnergyConstants())
    from_file = dataclasses.asdict(load_constants(ROOT / "sims" / "energy_constants.toml"))
    assert all(math.isclose(from_file[k], defaults[k], rel_tol=1e-12) for k in defaults)
    docs = (ROOT / "docs" / "energy.md").read_text()
    assert all(f"`{name}`" in docs for name in defaults)
    assert defaults["xor_gate_j"] == pytest.approx(2 * defaults["gate_j"])
    assert defaults["popcount_bit_j"] * 8 == pytest.approx(0.03e-12)
