"""Energy per inference of BoolNet and Bi-Real runs, against counts made by hand for a tiny
network (digits 8x8, ``--layers 2,4``, 2 slices)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bsl.config import TrainConfig
from bsl.train import train
from sims.energy import EnergyConstants
from sims.inference_energy import format_inference, inference_energy

pytestmark = pytest.mark.usefixtures("single_thread")

K = EnergyConstants()


def tiny_summary(tmp_path: Path, rule: str) -> dict[str, Any]:
    config = TrainConfig(rule=rule, layers="2,4", slices=2, epochs=1, batch_size=64, progress=False,
                         trace=False, out=str(tmp_path / rule))
    return train(config).summary


# By hand: stem 2x9 = 18 rows x 2 cols at 64 positions (8x8), 2x2 pool to 4x4, block conv1
# 18 x 4 at 16 positions, conv2 (BoolNet: 2 slices x 4 channels x 9 = 72 rows; Bi-Real: 36)
# x 4 at 16, classifier 64 (4 x 4 x 4) x 10 once.
BOOLNET = {
    "array reads": 2 * (18 * 2 * 64 + 18 * 4 * 16 + 72 * 4 * 16 + 64 * 10),  # 17,408
    "1-bit row drivers": 18 * 64 + 18 * 16 + 72 * 16 + 64,  # 2,656
    "input slices (comparators)": 2 * 64,
    "comparators": 2 * 64 + 2 * 4 * 16 + 4 * 16,  # stem signs, conv1's 2 slices, conv2's signs
    "XNOR shortcuts": 2 * 4 * 16,
    "OR shortcuts": 4 * 16,
    "AND pooling": 3 * 2 * 16,
    "feature-map SRAM traffic (bits)": 2 * (2 * 64 + 2 * 4 * 16 + 4 * 16),  # written + read, 1 bit each
    "output ADCs": 10,
    "argmax": 9,
}
BIREAL = {
    "array reads": 2 * (18 * 2 * 64 + 18 * 4 * 16 + 36 * 4 * 16 + 64 * 10),  # 12,800
    "1-bit row drivers": 18 * 64 + 18 * 16 + 36 * 16 + 64,
    "input slices (comparators)": 2 * 64,
    "ADCs (real feature maps)": 2 * 64 + 2 * 4 * 16,
    "batch norms (fp32 mult + add)": 2 * 64 + 2 * 4 * 16,
    "32-bit shortcut adds": 2 * 4 * 16,
    "max pooling (fp32 compares)": 3 * 2 * 16,
    "feature-map SRAM traffic (bits)": 2 * 32 * (2 * 64 + 2 * 4 * 16),
    "output ADCs": 10,
    "argmax": 9,
}
PRICE = {
    "array reads": K.cell_read_j, "1-bit row drivers": K.read_driver_j,
    "input slices (comparators)": K.comparator_8b_j, "comparators": K.sense_amp_j,
    "XNOR shortcuts": K.xor_gate_j, "OR shortcuts": K.gate_j, "AND pooling": K.gate_j,
    "feature-map SRAM traffic (bits)": K.sram_read_64b_j / 64, "output ADCs": K.adc_j,
    "argmax": K.argmax_compare_j, "ADCs (real feature maps)": K.adc_j,
    "batch norms (fp32 mult + add)": K.fp32_mult_j + K.fp32_add_j, "32-bit shortcut adds": K.fp32_add_j,
    "max pooling (fp32 compares)": K.fp32_add_j,
}


@pytest.mark.parametrize(("rule", "want"), [("boolnet", BOOLNET), ("bireal", BIREAL)])
def test_a_tiny_binary_net_costs_what_its_hand_counted_operations_cost(tmp_path: Path, rule: str,
                                                                       want: dict[str, int]) -> None:
    report = inference_energy(tiny_summary(tmp_path, rule), K)
    assert report["kind"] == "binary" and report["rule"] == rule
    system = report["systems"]["binary"]
    assert system["counts"] == want
    total = sum(n * PRICE[name] for name, n in want.items())
    assert system["total_j"] == pytest.approx(total, rel=1e-12)
    digital = report["systems"]["digital"]
    assert digital["counts"]["MACs"] == want["array reads"] // 2  # one MAC per weight per position
    assert report["ratio"] == pytest.approx(digital["total_j"] / system["total_j"])
    assert "pJ/inference" in format_inference(report, "run")


def test_bireal_costs_more_than_boolnet_of_the_same_channels(tmp_path: Path) -> None:
    boolnet = inference_energy(tiny_summary(tmp_path, "boolnet"), K)["systems"]["binary"]["total_j"]
    bireal = inference_energy(tiny_summary(tmp_path, "bireal"), K)["systems"]["binary"]["total_j"]
    assert bireal > 2 * boolnet  # its ADCs, fp32 batch norms and 32-bit maps outweigh BoolNet's slices


def test_a_malformed_binary_summary_is_refused_in_one_line(tmp_path: Path) -> None:
    summary = tiny_summary(tmp_path, "boolnet")
    del summary["binary_net"]
    with pytest.raises(ValueError, match="binary_net block missing"):
        inference_energy(summary, K)
