"""The energy model (``sims.energy``) and ``bsl energy``: hand-computed breakdowns, which
components each constant drives, constants files, and real short runs."""

from __future__ import annotations

import copy
import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import h5py
import pytest

from bsl.cli import main
from bsl.config import TrainConfig
from bsl.train import train
from sims.energy import (
    EnergyConstants,
    counts_from_summary,
    estimate,
    layer_shape,
    legacy_counts,
    load_constants,
    run_energy,
)

TEMPLATE = Path(__file__).resolve().parents[1] / "sims" / "energy_constants.toml"

# Two dense layers (4x2 and 3x2 crossbars with the bias row), 10 training digits x 2 epochs,
# 5 test digits; evaluation passes: 5 x (2 epochs x 1 + final 1 + 4 stochastic) + 10 train = 45.
# Layer 0: 20 training + 45 evaluation reads; layer 1: 20 + 45 + 18 transposed reads.
SUMMARY: dict[str, Any] = {
    "layers": ["dense 3->2", "dense 2->2"],
    "steps": 5,
    "dataset": {"name": "fake", "train": 10, "test": 5, "input_shape": [3], "classes": 2},
    "config": {"rule": "bsl", "epochs": 2, "eval_samples": 4, "inference": "deterministic", "device": "sim",
               "carry_period": 0, "batch_size": 4},
    "device_counters": [
        {"vector_reads": 65, "macs": 65 * 8, "cell_reads": 0, "set_pulses": 30, "reset_pulses": 20,
         "verify_iterations": 0},
        {"vector_reads": 83, "macs": 83 * 6, "cell_reads": 11, "set_pulses": 7, "reset_pulses": 3,
         "verify_iterations": 2},
    ],
}
# Distinct round numbers, so that every component can be written out by hand.
UNIT = dict(cell_read_j=1.0, read_driver_j=10.0, dac_j=100.0, sense_amp_j=1e3, adc_j=1e4, random_number_j=1e5,
            accumulator_add_j=31.0,
            set_pulse_j=1e6, reset_pulse_j=2e6, fp32_mult_j=3.0, fp32_add_j=5.0, sram_read_64b_j=64.0,
            dram_64b_j=7.0, gate_j=11.0, xor_gate_j=13.0, inverter_j=17.0, comparator_8b_j=19.0,
            popcount_bit_j=23.0, argmax_compare_j=29.0)


def fake_report(**changes: float) -> Any:
    """The fabricated summary priced with :data:`UNIT` (plus ``changes``), DRAM included."""
    return estimate(counts_from_summary(SUMMARY), EnergyConstants(**{**UNIT, **changes}), dram=True)


def test_counts_of_the_fabricated_summary() -> None:
    c = counts_from_summary(SUMMARY)
    assert [(x.rows, x.cols, x.forward, x.backward) for x in c.layers] == [(4, 2, 20, 0), (3, 2, 20, 18)]
    assert (c.samples, c.steps, c.input_size, c.macs, c.eval_macs) == (20, 5, 3, 160 + 228, 45 * 8 + 45 * 6)
    assert (c.set_pulses, c.reset_pulses, c.cell_reads, c.measured) == (37, 23, 11, True)


def test_hand_computed_breakdown() -> None:
    r = fake_report()
    # 388 training MACs; inputs driven 20*4 + (20*3 + 18*2) = 176; outputs sensed 20*2 + (20*2 + 18*3) = 134;
    # random numbers: 20 samples x 3 inputs + 2 x 40 hidden units = 140; 14 weights updated in 5 steps.
    assert r.systems["bsl"].components == {
        "array reads": 2 * 388 * 1.0, "1-bit drivers": 176 * 10.0, "sense amps": 134 * 1e3,
        "random numbers": 140 * 1e5, "pulses": 37 * 1e6 + 23 * 2e6, "verify reads": 11 * (1.0 + 1e4)}
    assert r.systems["high_precision"].components == {
        "array reads": 776.0, "DACs": 176 * 100.0, "ADCs": 134 * 1e4,
        "updates": 5 * 14 * 10 * ((1e6 + 2e6) / 2 + 1.0 + 1e4)}
    assert r.systems["digital"].components == {
        "MACs": 388 * 8.0, "SRAM weight reads": 388 * 32.0, "gradient MACs": 20 * 14 * (8.0 + 32.0),
        "updates": 70 * (8.0 + 64.0), "DRAM": 70 * 7.0}
    a = r.systems["bsl"]
    assert a.per_mac_j == pytest.approx((776 + 1760 + 134e3 + 140e5) / 388)
    assert a.per_sample_j == pytest.approx(sum(a.components.values()) / 20)
    b = r.systems["high_precision"]
    assert r.ratio("high_precision") == pytest.approx((776 + 17600 + 134e4) / 388 / a.per_mac_j)
    assert r.ratio("digital", "sample") == pytest.approx(r.systems["digital"].total_j / a.total_j)
    assert r.ratio("high_precision", "sample") == pytest.approx(b.total_j / a.total_j)
    assert r.notes == ()


USES = {
    "cell_read_j": {("bsl", "array reads"), ("bsl", "verify reads"), ("high_precision", "array reads"),
                    ("high_precision", "updates")},
    "read_driver_j": {("bsl", "1-bit drivers")},
    "dac_j": {("high_precision", "DACs")},
    "sense_amp_j": {("bsl", "sense amps")},
    "adc_j": {("bsl", "verify reads"), ("high_precision", "ADCs"), ("high_precision", "updates")},
    "random_number_j": {("bsl", "random numbers")},
    "accumulator_add_j": set(),  # only runs with --update accumulate: test_accumulators_by_hand
    "set_pulse_j": {("bsl", "pulses"), ("high_precision", "updates")},
    "reset_pulse_j": {("bsl", "pulses"), ("high_precision", "updates")},
    "fp32_mult_j": {("digital", "MACs"), ("digital", "gradient MACs"), ("digital", "updates")},
    "fp32_add_j": {("digital", "MACs"), ("digital", "gradient MACs"), ("digital", "updates")},
    "sram_read_64b_j": {("digital", "SRAM weight reads"), ("digital", "gradient MACs"),
                        ("digital", "updates")},
    "dram_64b_j": {("digital", "DRAM")},
    # per-inference constants (sims.inference_energy): no part of the training energy
    **dict.fromkeys(("gate_j", "xor_gate_j", "inverter_j", "comparator_8b_j", "popcount_bit_j",
                     "argmax_compare_j"), set()),
}


@pytest.mark.parametrize("name", [f.name for f in dataclasses.fields(EnergyConstants)])
def test_override_changes_exactly_the_components_that_use_it(name: str) -> None:
    base, changed = fake_report(), fake_report(**{name: UNIT[name] * 3})
    moved = {(key, part) for key, s in base.systems.items() for part, joules in s.components.items()
             if changed.systems[key].components[part] != joules}
    assert moved == USES[name]
    for key, part in moved:
        assert changed.systems[key].components[part] > base.systems[key].components[part]


def test_accumulators_by_hand() -> None:
    summary = copy.deepcopy(SUMMARY)
    summary["config"]["update"] = "accumulate"
    counts = counts_from_summary(summary)
    assert counts.accumulator_cells == 8 + 6  # the 4x2 and 3x2 crossbars
    r = estimate(counts, EnergyConstants(**UNIT))
    # 14 synapses: 20 samples x one 8-bit add each, 5 updates x one threshold comparison each.
    assert r.systems["bsl"].components["accumulators"] == 14 * (20 * 31.0 + 5 * 19.0)
    assert "accumulators" not in fake_report().systems["bsl"].components  # probabilistic pulses: none


def test_ratio_moves_the_right_way() -> None:
    reports = [fake_report(adc_j=adc) for adc in (1e3, 1e4, 1e5)]
    for per in ("mac", "sample"):
        hp = [r.ratio("high_precision", per) for r in reports]
        assert hp[0] < hp[1] < hp[2]
    assert len({r.ratio("digital") for r in reports}) == 1  # BSL's MACs use no ADC
    sense = [fake_report(sense_amp_j=s).ratio("high_precision") for s in (1e2, 1e3, 1e4)]
    assert sense[0] > sense[1] > sense[2]


def test_defaults_are_positive_and_template_file_matches() -> None:
    defaults = dataclasses.asdict(EnergyConstants())
    assert all(name.endswith("_j") and value > 0 for name, value in defaults.items())
    from_file = dataclasses.asdict(load_constants(TEMPLATE))
    assert all(math.isclose(from_file[k], defaults[k], rel_tol=1e-12) for k in defaults)
    assert defaults["cell_read_j"] == pytest.approx(0.2**2 * 55e-6 * 10e-9)


def test_constants_file_then_keywords(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[energy]\nadc_j = 5e-12\nsense_amp_j = 1e-13\n")
    k = load_constants(path, sense_amp_j=2e-13)
    assert (k.adc_j, k.sense_amp_j, k.dac_j) == (5e-12, 2e-13, EnergyConstants().dac_j)


@pytest.mark.parametrize("text, message", [
    ("[energy]\nadc_pj = 1.0\n", "unknown energy constant adc_pj"),
    ("[energy]\nadc_j = -1e-12\n", "adc_j = -1e-12"),
    ("[energy]\nadc_j = 0\n", "adc_j = 0"),
    ("[energy]\nadc_j = nan\n", "adc_j = nan"),
    ("[energy]\nadc_j = inf\n", "adc_j = inf"),
    ("[energy]\nadc_j = \"2 pJ\"\n", "adc_j = '2 pJ'"),
    ("[energy]\nadc_j = true\n", "adc_j = True"),
    ("adc_j = 1e-12\n", "wants only an [energy] table"),
    ("[energy]\nadc_j = 1e-12\n[other]\nx = 1\n", "wants only an [energy] table"),
    ("[energy\nadc_j = 1e-12\n", "not valid TOML"),
])
def test_bad_constants_files_are_refused(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match=None) as info:
        load_constants(path)
    assert message in str(info.value)


def test_bad_keywords_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown energy constant adc"):
        load_constants(adc=1e-12)
    with pytest.raises(ValueError, match="must be a finite number of joules > 0"):
        EnergyConstants(dac_j=-1.0)
    with pytest.raises(FileNotFoundError):
        load_constants(tmp_path / "missing.toml")


def test_inconsistent_or_incomplete_summaries_are_refused() -> None:
    bad = copy.deepcopy(SUMMARY)
    bad["device_counters"][0]["vector_reads"] += 1  # a transposed read on the first layer
    bad["device_counters"][0]["macs"] += 8
    with pytest.raises(ValueError, match="do not match the run's configuration"):
        counts_from_summary(bad)
    bad = copy.deepcopy(SUMMARY)
    del bad["steps"]
    with pytest.raises(ValueError, match="missing or malformed field"):
        counts_from_summary(bad)
    with pytest.raises(ValueError, match="verify_iterations"):
        estimate(counts_from_summary(SUMMARY), verify_iterations=0)


def test_layer_shapes() -> None:
    assert layer_shape("dense 64->128") == (65, 128, 1)
    assert layer_shape("conv 4x6x6 k3 s2 -> 8x2x2") == (37, 8, 4)
    with pytest.raises(ValueError, match="not a dense or conv"):
        layer_shape("lstm 3->4")


RUNS: dict[str, dict[str, Any]] = {
    "bsl": dict(rule="bsl"),
    "bsl-stochastic-eval": dict(rule="bsl", inference="stochastic", eval_samples=3),
    "bsl-conv": dict(rule="bsl", layers="c4k3s1,c4k3s2"),
    "bsl-carry": dict(rule="bsl", carry_period=5),
    "manhattan": dict(rule="manhattan"),
    "sgd": dict(rule="sgd"),
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Short real runs: 200 digits, one epoch."""
    out = {}
    for name, changes in RUNS.items():
        base = dict(dataset="digits", train_limit=200, test_limit=50, layers="16", epochs=1, progress=False,
                    out=str(tmp_path_factory.mktemp("runs") / name))
        config = TrainConfig(**{**base, **changes})
        out[name] = train(config).run_dir
    return out


@pytest.mark.usefixtures("single_thread")
@pytest.mark.parametrize("name", list(RUNS))
def test_real_run_counts_add_up(runs: dict[str, Path], name: str) -> None:
    summary = json.loads((runs[name] / "summary.json").read_text())
    r = run_energy(runs[name])
    c = r.counts
    assert c.samples == 200 and c.steps == summary["steps"] == 25
    if name == "sgd":
        assert not c.measured and c.eval_macs == 0 and c.set_pulses == 0
        assert c.macs == 200 * (65 * 16 + 2 * 17 * 10)  # forward of both layers, transposed read of the top
        assert "no device counters" in r.notes[0]
        return
    total = sum(k["macs"] for k in summary["device_counters"])
    assert c.macs * c.arrays + c.eval_macs == total
    assert c.set_pulses == sum(k["set_pulses"] for k in summary["device_counters"]) > 0
    assert c.arrays == (2 if name == "bsl-carry" else 1) and (c.cell_reads > 0) == (name == "bsl-carry")
    assert r.ratio("digital") > r.ratio("high_precision") > 1
    assert bool(r.notes) == (name == "manhattan")


@pytest.mark.usefixtures("single_thread")
def test_cli_prints_the_table(runs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["energy", str(runs["bsl"])]) == 0
    text = capsys.readouterr().out
    for line in ("(a) BSL on crossbar", "(b) high precision on crossbar", "(c) digital CMOS (fp32)",
                 "pJ/MAC", "nJ/sample", "ratio over (a)", "evaluation reads left out"):
        assert line in text
    assert main(["energy", str(runs["bsl"]), "--json", "--dram", "--verify-iterations", "3"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data["systems"]) == {"bsl", "high_precision", "digital"}
    assert "DRAM" in data["systems"]["digital"]["components_j"]
    assert data["ratios"]["digital/bsl"]["per_mac"] == pytest.approx(run_energy(runs["bsl"]).ratio("digital"))
    assert data["constants_j"] == dataclasses.asdict(EnergyConstants())


@pytest.mark.usefixtures("single_thread")
def test_cli_sgd_run_and_constants_file(runs: dict[str, Path], tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["energy", str(runs["sgd"])]) == 0
    assert "no device counters" in capsys.readouterr().out
    path = tmp_path / "c.toml"
    path.write_text("[energy]\nadc_j = 1e-10\n")
    assert main(["energy", str(runs["sgd"]), "--constants", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["constants_j"]["adc_j"] == 1e-10
    path.write_text("[energy]\nadc = 1e-10\n")
    assert main(["energy", str(runs["sgd"]), "--constants", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("bsl energy: error: unknown energy constant adc") and "\n" not in err


def test_cli_folder_without_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["energy", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "no summary.json" in err and "\n" not in err


@pytest.mark.usefixtures("single_thread")
@pytest.mark.parametrize("name", list(RUNS))
def test_recorded_facts_give_what_the_old_derivation_gave(runs: dict[str, Path], name: str) -> None:
    """The counts read from ``layer_facts`` equal those re-derived (regular expressions on the
    layer descriptions, evaluation reads from the configuration) on the same run, and so do
    the energies; a summary without the facts is read the old way."""
    summary = json.loads((runs[name] / "summary.json").read_text())
    assert {"layer_facts", "evaluations"} <= set(summary)
    old = {k: v for k, v in summary.items() if k not in ("layer_facts", "evaluations")}
    assert counts_from_summary(summary) == legacy_counts(summary) == counts_from_summary(old)
    assert estimate(counts_from_summary(summary)) == estimate(legacy_counts(summary))
    assert run_energy(runs[name]) == estimate(legacy_counts(summary))


def test_inconsistent_or_incomplete_facts_are_refused(runs: dict[str, Path]) -> None:
    summary = json.loads((runs["bsl"] / "summary.json").read_text())
    bad = copy.deepcopy(summary)
    bad["layer_facts"][1]["reads"]["transposed"] += 1
    with pytest.raises(ValueError, match="do not match its recorded reads"):
        counts_from_summary(bad)
    bad = copy.deepcopy(summary)
    del bad["layer_facts"][0]["positions"]
    with pytest.raises(ValueError, match="missing or malformed field .*positions"):
        counts_from_summary(bad)


@pytest.mark.usefixtures("single_thread")
def test_summary_and_trace_carry_the_layer_facts_of_a_conv_dense_network(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert main(["train", "--dataset", "digits", "--layers", "c8k5s2,16", "--epochs", "1", "--train-limit",
                 "100", "--test-limit", "30", "--eval-samples", "2", "--progress", "false",
                 "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    facts = summary["layer_facts"]
    static = [{k: v for k, v in f.items() if k != "reads"} for f in facts]
    assert static == [
        {"kind": "conv", "describe": "conv 1x8x8 k5 s2 -> 8x2x2", "rows": 26, "cols": 8, "positions": 4,
         "input_shape": [1, 8, 8], "kernel": 5, "stride": 2, "output_shape": [8, 2, 2],
         "store_kind": "crossbar", "arrays": 1},
        {"kind": "dense", "describe": "dense 32->16", "rows": 33, "cols": 16, "positions": 1, "inputs": 32,
         "outputs": 16, "store_kind": "crossbar", "arrays": 1},
        {"kind": "dense", "describe": "dense 16->10", "rows": 17, "cols": 10, "positions": 1, "inputs": 16,
         "outputs": 10, "store_kind": "crossbar", "arrays": 1},
    ]
    assert summary["evaluations"] == {"per_epoch_test": "deterministic", "final_train": "deterministic",
                                      "final_test": ["deterministic", "stochastic"]}
    for i, (f, k) in enumerate(zip(facts, summary["device_counters"], strict=True)):
        r, pos = f["reads"], f["positions"]
        # deterministic: the epoch's test, the final test, the training set; stochastic: 2 passes of the test
        assert r["evaluation"] == {"deterministic": (30 + 30 + 100) * pos, "stochastic": 2 * 30 * pos}
        assert r["forward"] == 100 * pos
        assert r["transposed"] == 0 if i == 0 else 0 < r["transposed"] <= 100
        assert k["vector_reads"] == r["forward"] + r["transposed"] + sum(r["evaluation"].values())
    with h5py.File(out / "traces.h5", "r") as f:
        for i, want in enumerate(facts):
            attrs = dict(f[f"layers/layer{i}"].attrs)
            got = {k: json.loads(v) if k in ("reads", "store", "input_shape", "output_shape") else v
                   for k, v in attrs.items()}
            assert {k: got[k] for k in want} == want
            assert got["store"]["store"] == "crossbar"
    c = counts_from_summary(summary)
    assert [(x.rows, x.cols, x.positions, x.forward) for x in c.layers] == [(26, 8, 4, 400), (33, 16, 1, 100),
                                                                             (17, 10, 1, 100)]
    assert c == legacy_counts(summary)
