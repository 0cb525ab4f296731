"""BOLD through the instruments: ``bsl train --rule bold --device visa`` on the bench emulator
(real drivers, pyvisa-py, TCP) makes the decisions of the simulated run on ideal binary devices."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bsl.cli import main
from bsl.seeds import Seeds
from devices.hil.emulator import Emulator

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("single_thread")]

LIMITS = Path(__file__).resolve().parent.parent / "examples" / "hil" / "limits.toml"
WIRING = """
[instruments]
smu = "{smu}"
smu_model = "b2900"
matrix = "{matrix}"

[terminals]
drive_row = "A"
sense_row = "B"
drive_channel = 1
sense_channel = 2

[[arrays]]
rows = 16
cols = 8
first_pin = 0

[[arrays]]
rows = 8
cols = 4
first_pin = 32
"""
SMALL = ["--rule", "bold", "--preset", "binary_ideal", "--dataset", "digits4", "--layers", "8",
         "--epochs", "1", "--train-limit", "48", "--test-limit", "40", "--batch-size", "16",
         "--variation-lr", "0.3", "--progress", "false", "--seed", "0", "--eval-samples", "1"]


def test_bold_through_the_emulated_bench_flips_what_the_simulator_flips(tmp_path: Path) -> None:
    placeholder = tmp_path / "placeholder.toml"
    placeholder.write_text(WIRING.format(smu="TCPIP::127.0.0.1::1::SOCKET",
                                         matrix="TCPIP::127.0.0.1::2::SOCKET"))
    with Emulator(placeholder, preset="binary_ideal", seed=Seeds(0).devices(0), init_spread=0.3) as emu:
        wiring = tmp_path / "wiring.toml"
        wiring.write_text(WIRING.format(smu=emu.resources["smu"], matrix=emu.resources["matrix"]))
        assert main(["train", *SMALL, "--device", "visa", "--wiring", str(wiring), "--limits", str(LIMITS),
                     "--visa-library", "@py", "--out", str(tmp_path / "hil")]) == 0
        assert emu.log.final_state_safe()
        moved = emu.log.total_pulses()
    assert main(["train", *SMALL, "--out", str(tmp_path / "sim")]) == 0
    hil, sim = (json.loads((tmp_path / name / "summary.json").read_text()) for name in ("hil", "sim"))
    # Every read and flip decision is the same: instrument replies differ from the simulator's
    # currents only in their last digits, far from any threshold of a Boolean read.
    assert hil["bold"]["flips"] == sim["bold"]["flips"] and sum(sim["bold"]["flips"]) > 0
    assert hil["pulses"] == sim["pulses"]
    assert moved == sum(p["set"] + p["reset"] for p in hil["pulses"])
    assert hil["test_accuracy"] == sim["test_accuracy"]
