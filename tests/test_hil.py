"""Hardware in the loop, end to end: ``bsl train --device visa`` through the real drivers,
pyvisa-py and the TCP bench emulator; faults, safety, journaling and resume."""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import torch

from bsl.cli import main
from bsl.seeds import Seeds
from devices import HilBench, InstrumentCrossbar
from devices.hil.emulator import Emulator, Faults
from devices.hil.settings import load_hil_settings
from devices.hil.wiring import load_wiring
from devices.sim.presets import get_preset

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("single_thread")]

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "hil"
LIMITS = load_hil_settings(EXAMPLES / "limits.toml").limits
RUN = ["--config", str(EXAMPLES / "run.toml"), "--limits", str(EXAMPLES / "limits.toml"),
       "--progress", "false", "--eval-samples", "2"]


@pytest.fixture
def emulator(request: pytest.FixtureRequest) -> Iterator[Emulator]:
    faults = getattr(request, "param", None) or Faults()
    with Emulator(EXAMPLES / "wiring.toml", preset="rram", seed=3, faults=faults, init_spread=0.3) as emu:
        yield emu


def wiring_for(emu: Emulator, tmp_path: Path) -> Path:
    """The example wiring with the emulator's actual ports."""
    text = (EXAMPLES / "wiring.toml").read_text()
    text = text.replace("TCPIP::127.0.0.1::5025::SOCKET", emu.resources["smu"])
    text = text.replace("TCPIP::127.0.0.1::5026::SOCKET", emu.resources["matrix"])
    path = tmp_path / "wiring.toml"
    path.write_text(text)
    return path


def summary(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "summary.json").read_text())


def energized(emu: Emulator) -> bool:
    """Whether the bench's last logged state leaves a device under voltage: an output on
    while a crosspoint is closed."""
    last = emu.log.records[-1]
    return any(last["outputs"].values()) and bool(last["closed"])


def test_training_through_the_emulator_matches_the_simulator(tmp_path: Path) -> None:
    """With noise-free devices seeded as ``bsl train`` seeds its simulated arrays (array
    ``k`` of run seed ``s`` is seeded ``Seeds(s).devices(k)``), a run through the
    instruments makes the same decisions as the simulated run: currents differ only by the
    instruments' 7-digit replies. Stated tolerance: 0.05 in accuracy, 2 % in pulse counts."""
    small = ["--epochs", "2", "--train-limit", "160", "--test-limit", "60", "--preset", "ideal",
             "--seed", "0"]
    seeds = Seeds(0)  # the emulator seeds its array k with seed + k
    assert [seeds.devices(k) for k in range(3)] == [seeds.devices(0) + k for k in range(3)]
    with Emulator(EXAMPLES / "wiring.toml", preset="ideal", seed=seeds.devices(0), init_spread=0.3) as emu:
        assert main(["train", *RUN, *small, "--wiring", str(wiring_for(emu, tmp_path)),
                     "--out", str(tmp_path / "hil")]) == 0
        assert emu.log.max_abs_voltage() <= LIMITS.max_voltage_v
        assert emu.log.max_pulse_width() <= LIMITS.max_pulse_width_s
        assert emu.log.final_state_safe()
        moved = emu.log.total_pulses()
    assert main(["train", *RUN, *small, "--device", "sim", "--out", str(tmp_path / "sim")]) == 0
    hil, sim = summary(tmp_path / "hil"), summary(tmp_path / "sim")
    assert abs(hil["test_accuracy"] - sim["test_accuracy"]) <= 0.05, (hil, sim)
    assert abs(hil["train_accuracy"] - sim["train_accuracy"]) <= 0.05
    for a, b in zip(hil["pulses"], sim["pulses"], strict=True):
        assert abs(a["set"] - b["set"]) <= 0.02 * b["set"] and b["set"] > 0
    # Every pulse the run counted is in the trace's operation journal and was executed.
    with h5py.File(tmp_path / "hil" / "traces.h5", "r") as f:
        ops = f["operations"][:]
        steps = f["steps"][:]
        info = json.loads(f.attrs["device"])[0]["crossbar"]
    pulses = ops[ops["op"] == b"pulse"]
    counted = sum(p["set"] + p["reset"] for p in hil["pulses"])
    assert int(pulses["count"].sum()) == counted == moved
    assert int(steps["set_pulses"].sum() + steps["reset_pulses"].sum()) == counted
    assert (np.abs(pulses["voltage"]) <= LIMITS.max_voltage_v).all() and (pulses["width"] > 0).all()
    reads = ops[ops["op"] == b"read"]
    assert len(reads) > 1000 and np.isfinite(reads["current"]).all()
    assert info["kind"] == "InstrumentCrossbar" and "B2912A" in info["instruments"]["smu"]


@pytest.mark.parametrize(
    ("emulator", "expect"),
    [
        (Faults(timeout_after=3000, target="smu"), "timeout"),
        (Faults(garble_after=3000, target="smu"), "decode"),
        (Faults(drop_after=3000, target="matrix"), "connection lost (closed by the instrument)"),
        (Faults(drop_after=3000, target="smu"), "connection lost"),
        (Faults(hang_after=3000, target="matrix"), "timeout"),
    ],
    indirect=["emulator"],
    ids=["timeout", "garbled", "dropped", "dropped-smu", "hang"],
)
def test_faults_stop_the_run_cleanly(emulator: Emulator, expect: str, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str],
                                     caplog: pytest.LogCaptureFixture) -> None:
    run_dir = tmp_path / "run"
    with caplog.at_level(logging.WARNING, logger="drivers"):
        code = main(["train", *RUN, "--epochs", "1", "--train-limit", "80", "--test-limit", "20",
                     "--wiring", str(wiring_for(emulator, tmp_path)), "--out", str(run_dir)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("bsl train: error:"), err
    assert expect in err.lower(), err
    assert ("timeout" in err.lower()) == (expect == "timeout"), err  # a lost connection is not a timeout
    unconfirmed = [r.getMessage() for r in caplog.records if "safe state not confirmed" in r.getMessage()]
    assert not any("shutdown step" in r.getMessage() for r in caplog.records)
    if expect.startswith("connection lost"):
        assert len(unconfirmed) == 1, unconfirmed  # one line for the instrument that is gone
        assert unconfirmed[0].split(": ", 1)[1].startswith("safe state not confirmed (connection lost): ")
    assert not energized(emulator)  # outputs off, or nothing connected (what could be reached)
    with h5py.File(run_dir / "traces.h5", "r") as f:
        ops = f["operations"][:]
        kinds = [k.decode() for k in f["events"]["kind"]]
    assert kinds[-1] == "error"
    # Every pulse that completed is journaled; at most the one in flight is missing.
    journaled = int(ops[ops["op"] == b"pulse"]["count"].sum())
    assert len(ops) > 0
    assert journaled <= emulator.log.total_pulses() + 0  # nothing journaled that did not happen
    assert emulator.log.total_pulses() - journaled <= LIMITS.max_pulses_per_cell * 16


@pytest.mark.parametrize("emulator", [Faults(latency_s=0.002)], indirect=True, ids=["latency"])
def test_latency_only_slows_the_run(emulator: Emulator, tmp_path: Path) -> None:
    assert main(["train", *RUN, "--epochs", "1", "--train-limit", "8", "--test-limit", "4",
                 "--batch-size", "8", "--wiring", str(wiring_for(emulator, tmp_path)),
                 "--out", str(tmp_path / "run")]) == 0
    assert emulator.log.final_state_safe()


def test_interrupted_hardware_run_resumes(emulator: Emulator, tmp_path: Path) -> None:
    from bsl.config import TrainConfig, load_config_file
    from bsl.train import resume, train

    values = {**load_config_file(EXAMPLES / "run.toml"), "wiring": str(wiring_for(emulator, tmp_path)),
              "limits": str(EXAMPLES / "limits.toml"), "out": str(tmp_path / "run"), "progress": False,
              "epochs": 2, "train_limit": 64, "test_limit": 16, "eval_samples": 1, "checkpoint_every": 4}

    def crash(step: int, epoch: int, stats: object) -> None:
        if step == 10:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(TrainConfig(**values), on_step=crash)
    assert emulator.log.final_state_safe()
    result = resume(tmp_path / "run")
    assert result.summary["resumes"] == 1 and result.summary["steps"] == 16
    with h5py.File(tmp_path / "run" / "traces.h5", "r") as f:
        kinds = [k.decode() for k in f["events"]["kind"]]
        assert kinds.count("interrupted") == 1 and kinds.count("resume") == 1
        assert f["operations"].shape[0] > 0
    assert emulator.log.final_state_safe()


def _settled_log_length(emulator: Emulator, bench: HilBench) -> int:
    """The emulator's log length once every message sent so far has been executed."""
    if bench.connected:  # *OPC? is answered after everything sent before it
        bench.matrix.opc()  # type: ignore[attr-defined]
        getattr(bench.drive, "instrument", bench.drive).opc()
    return len(emulator.log)


def test_randomized_operations_never_exceed_the_limits(emulator: Emulator) -> None:
    """Safety property: whatever is asked (including requests beyond the limits, which
    are refused), the instruments never see more than the limits file allows, and every
    operation ends with outputs off and switches open."""
    wiring = load_wiring(EXAMPLES / "wiring.toml", smu=emulator.resources["smu"])
    wiring = type(wiring)(**{**wiring.__dict__, "matrix": emulator.resources["matrix"]})
    settings = load_hil_settings(EXAMPLES / "limits.toml")
    bench = HilBench.open(wiring, settings, "@py")
    arrays = [InstrumentCrossbar(bench, k, get_preset("rram")) for k in range(2)]
    rng = random.Random(7)
    gen = torch.Generator().manual_seed(7)
    refused = done = 0
    try:
        for _ in range(60):
            x = rng.choice(arrays)
            kind = rng.choice(["forward", "backward", "pulse", "pulse", "cells"])
            too_much = rng.random() < 0.3
            before = _settled_log_length(emulator, bench)
            try:
                if kind == "forward":
                    v = torch.randint(-1, 2, (2, x.rows), generator=gen).double() * x.v_read
                    x.read_forward(v * (20.0 if too_much else 1.0))
                elif kind == "backward":
                    v = torch.randint(-1, 2, (1, x.cols), generator=gen).double() * x.v_read
                    x.read_backward(v * (20.0 if too_much else 1.0))
                elif kind == "pulse":
                    top = LIMITS.max_pulses_per_cell * (3 if too_much else 1)
                    counts = torch.randint(-top, top + 1, (x.rows, x.cols), generator=gen)
                    counts[torch.rand(x.rows, x.cols, generator=gen) < 0.7] = 0
                    x.apply_pulses(counts)
                else:
                    x.read_conductances()
                done += 1
            except ValueError as exc:
                assert too_much, exc
                assert "nothing was sent" in str(exc), exc
                assert len(emulator.log) == before, "a refused request reached an instrument"
                refused += 1
            state = emulator.log.records[-1]
            assert not any(state["outputs"].values()) and not state["closed"], state
    finally:
        for x in arrays:
            x.close()
    assert refused >= 5 and done >= 30
    assert emulator.log.max_abs_voltage() <= LIMITS.max_voltage_v
    assert emulator.log.max_pulse_width() <= LIMITS.max_pulse_width_s
    assert emulator.log.final_state_safe()


def test_program_and_verify_beyond_the_pulse_limit_is_refused_before_any_read(emulator: Emulator) -> None:
    """A per-iteration pulse budget above the limits file's ``max_pulses_per_cell`` is
    refused up front: not even the first read reaches an instrument."""
    wiring = load_wiring(EXAMPLES / "wiring.toml", smu=emulator.resources["smu"])
    wiring = type(wiring)(**{**wiring.__dict__, "matrix": emulator.resources["matrix"]})
    bench = HilBench.open(wiring, load_hil_settings(EXAMPLES / "limits.toml"), "@py")
    x = InstrumentCrossbar(bench, 1, get_preset("rram"))
    try:
        assert x.max_pulses_per_update == LIMITS.max_pulses_per_cell
        targets = torch.full((2, x.rows, x.cols), sum(x.g_bounds) / 2, dtype=torch.float64)
        before = _settled_log_length(emulator, bench)
        too_many = LIMITS.max_pulses_per_cell + 1
        with pytest.raises(ValueError, match="nothing was sent"):
            x.program_and_verify(targets, tolerance=1e-6, max_pulses_per_iteration=too_many)
        assert len(emulator.log) == before and x.counters.cell_reads == 0
    finally:
        x.close()
