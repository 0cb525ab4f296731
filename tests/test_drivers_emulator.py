"""The drivers against the SCPI/TSP bench emulator, over real TCP with pyvisa-py.

The emulator runs ``;``-joined commands in order and answers the queries of a message on
one line joined by ``;``, as the instruments do: this exercises the drivers' joined
messages (measurement + compliance flag, switching + error count, pulse trains) end to
end, with the physics of ``devices/hil/emulator``. ``opc()`` is called before looking at
``emu.bench``: a write returns before the emulator has run it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import pyvisa
import torch

pytest.importorskip("pyvisa_py")
from small_bench import MINUS, PLUS, V_READ, WORD, all_but, write_wiring  # noqa: E402

from devices.hil.emulator import Emulator  # noqa: E402
from devices.hil.wiring import crosspoint, load_wiring  # noqa: E402
from drivers import (  # noqa: E402
    ComplianceError,
    Instrument,
    InstrumentError,
    Keithley707B,
    Keithley2450,
    KeysightB2900,
)

COMPLIANCE_A = 1e-3


@contextmanager
def bench(rm: pyvisa.ResourceManager, tmp_path: Path, model: str = "b2900",
          **kw: Any) -> Iterator[tuple[Emulator, dict[str, Any]]]:
    """An emulator on free ports and the drivers on it: ``drive``, ``sense`` (B2900
    channels 1 and 2, or two 2450s), ``matrix``, and ``smu`` (the B2900 itself)."""
    emu = Emulator(load_wiring(write_wiring(tmp_path, model)), preset="ideal", seed=3, **kw)
    opened: list[Instrument] = []
    with emu:
        try:
            matrix = Keithley707B(emu.resources["matrix"], resource_manager=rm, timeout_s=2.0)
            opened.append(matrix)
            d: dict[str, Any] = {"matrix": matrix}
            if model == "b2900":
                smu = KeysightB2900(emu.resources["smu"], resource_manager=rm, timeout_s=2.0)
                opened.append(smu)
                d.update(smu=smu, drive=smu.channel(1), sense=smu.channel(2))
            else:
                for name, key in (("drive", "smu"), ("sense", "smu_sense")):
                    d[name] = Keithley2450(emu.resources[key], resource_manager=rm, timeout_s=2.0)
                    opened.append(d[name])
            yield emu, d
        finally:
            for inst in opened:
                inst.disconnect()


def spy(inst: Instrument) -> list[str]:
    """Every message sent from now on (pyvisa's ``query`` writes through ``write``)."""
    sent: list[str] = []
    write = inst.resource.write
    inst.resource.write = lambda m: sent.append(m) or write(m)  # type: ignore[method-assign]
    return sent


def scramble(emu: Emulator) -> torch.Tensor:
    """Give every device a distinct conductance; return the true G, shape (2, rows, cols)."""
    gen = torch.Generator().manual_seed(7)
    arr = emu.bench.arrays[0]
    arr.pulse_devices(torch.randperm(12, generator=gen).reshape(2, 3, 2) * 40 + 1)
    return arr.conductances()


def setup(d: dict[str, Any], drive_pins: list[int], sense_pins: list[int]) -> None:
    """Both terminals configured at 0 V, outputs on, exactly these pins switched."""
    for t in (d["drive"], d["sense"]):
        t.configure(COMPLIANCE_A, nplc=1)
        t.set_voltage(0.0)
        t.output(True)
    d["matrix"].open_all()
    d["matrix"].switch(close_channels=[crosspoint("A", p) for p in drive_pins] +
                       [crosspoint("B", p) for p in sense_pins])


def read(d: dict[str, Any], v: float = V_READ) -> float:
    d["drive"].set_voltage(v)
    return float(d["sense"].measure_current())


# -- Keysight B2900 + 707B ----------------------------------------------------------------------

def test_b2900_measurement_is_one_query_and_matches_the_conductances(rm, tmp_path):
    with bench(rm, tmp_path) as (emu, d):
        g = scramble(emu)
        setup(d, [WORD[1]], [PLUS[0]])
        assert d["sense"].measure_current() == 0.0  # drive at 0 V
        d["drive"].set_voltage(V_READ)
        sent = spy(d["smu"])
        i_sense = d["sense"].measure_current()
        assert sent == [":MEAS:CURR? (@2);:SENS2:CURR:PROT:TRIP?"]
        # current into the sense HI reads negative for a positive drive
        assert i_sense == pytest.approx(-V_READ * float(g[0, 1, 0]), rel=2e-6)
        assert d["drive"].measure_current() == pytest.approx(V_READ * float(g[0, 1, 0]), rel=2e-6)
        assert read(d, -0.1) == pytest.approx(0.1 * float(g[0, 1, 0]), rel=2e-6)


def test_707b_switch_is_one_message_and_moves_the_selection(rm, tmp_path):
    with bench(rm, tmp_path) as (emu, d):
        g = scramble(emu)
        setup(d, [WORD[0], WORD[2]], [MINUS[1]])
        assert read(d) == pytest.approx(-V_READ * float(g[1, 0, 1] + g[1, 2, 1]), rel=2e-6)
        mx = d["matrix"]
        sent = spy(mx)
        mx.switch(open_channels=[crosspoint("A", WORD[2]), crosspoint("B", MINUS[1])],
                  close_channels=[crosspoint("B", PLUS[1])])
        assert sent == ['channel.open("1A03,1B07"); channel.close("1B05"); waitcomplete(); '
                        "print(errorqueue.count)"]
        assert mx.closed() == emu.bench.closed_names() == ["1A01", "1B05"]
        assert read(d) == pytest.approx(-V_READ * float(g[0, 0, 1]), rel=2e-6)
        mx.close([crosspoint("A", WORD[1])])
        mx.open(crosspoint("A", WORD[0]))
        assert mx.closed() == ["1A02", "1B05"]
        mx.open_all()
        assert mx.closed() == [] and read(d) == 0.0


def test_707b_errors_queued_before_a_switch_are_raised_by_it(rm, tmp_path):
    with bench(rm, tmp_path) as (emu, d):
        mx = d["matrix"]
        mx.write("channel.frobnicate()")  # not a TSP statement the matrix knows: -285
        with pytest.raises(InstrumentError) as e:
            mx.switch(close_channels=["1A01"])
        assert e.value.code == -285 and "TSP Syntax error" in e.value.message
        assert e.value.command == 'channel.close("1A01"); waitcomplete(); print(errorqueue.count)'
        mx.check_errors()  # drained
        with pytest.raises(ValueError, match="refused"):
            mx.switch(close_channels=["1A13"])  # validated before anything is sent
        mx.opc()
        assert emu.bench.closed_names() == ["1A01"]


def test_b2900_pulse_moves_only_the_selected_device_and_ends_safe(rm, tmp_path):
    with bench(rm, tmp_path) as (emu, d):
        arr = emu.bench.arrays[0]
        setup(d, [WORD[1]], [MINUS[0]])
        drive, smu = d["drive"], d["smu"]
        drive.output(False)
        g0 = arr.conductances()
        sent = spy(smu)
        drive.pulse(1.2, 1e-3, count=7)
        assert len(sent) == 4  # one settings write, three queries
        smu.opc()
        g1 = arr.conductances()
        step = arr.model.dw_min
        assert float(g1[1, 1, 0] - g0[1, 1, 0]) == pytest.approx(7 * step, rel=1e-3)
        others = all_but(g0, (1, 1, 0))
        assert torch.equal(g1[others], g0[others])
        t = emu.bench.drive
        assert (t.output, t.shape, t.level_v, t.peak_v, t.count) == (False, "DC", 0.0, 1.2, 7)
        sent.clear()
        drive.pulse(1.2, 1e-3, count=7)  # cached settings: the shape only
        assert sent[0] == ":SOUR1:FUNC:SHAP PULS"
        drive.pulse(-1.0, 1e-3, count=3)
        smu.opc()
        g2 = arr.conductances()
        assert float(g2[1, 1, 0] - g0[1, 1, 0]) == pytest.approx((14 - 3) * step, rel=1e-3)
        assert torch.equal(g2[others], g0[others])
        assert emu.log.pulses_per_device() == {(0, 1, 1, 0): 17}
        assert not emu.bench.drive.output and emu.bench.drive.shape == "DC"


def test_b2900_compliance_trips_through_the_joined_replies(rm, tmp_path):
    with bench(rm, tmp_path) as (emu, d):
        setup(d, [WORD[0]], [PLUS[0]])
        d["sense"].configure(1e-9)
        d["drive"].set_voltage(V_READ)
        with pytest.raises(ComplianceError, match="channel 2: current compliance reached") as e:
            d["sense"].measure_current()
        assert e.value.command == ":MEAS:CURR? (@2);:SENS2:CURR:PROT:TRIP?"
        assert "(-1e-09 A)" in str(e.value)  # clamped at the compliance
        d["sense"].configure(COMPLIANCE_A)
        assert read(d) < 0
        d["drive"].output(False)
        d["drive"].configure(1e-9)
        with pytest.raises(ComplianceError, match="channel 1: current compliance reached during a") as e:
            d["drive"].pulse(1.2, 1e-3, count=2)
        assert e.value.command == ":OUTP1 ON;:INIT (@1);*OPC?"
        d["smu"].opc()
        assert not emu.bench.drive.output and emu.bench.drive.shape == "DC"
        assert d["smu"].cached_pulse_settings(1) == {}


def test_b2900_errors_are_raised_and_nothing_fires_after_one(rm, tmp_path):
    with bench(rm, tmp_path) as (emu, d):
        smu, drive = d["smu"], d["drive"]
        setup(d, [WORD[0]], [PLUS[0]])
        records = len(emu.log)
        with pytest.raises(ValueError, match="voltage = 300.0 V refused"):
            drive.set_voltage(300.0)  # refused by the driver: nothing sent
        with pytest.raises(ValueError, match="pulse width"):
            drive.pulse(1.2, 1e-6)
        smu.opc()
        assert len(emu.log) == records + 1  # the *OPC? only
        smu.write(":SOUR1:VOLT 300")  # around the driver: the instrument refuses it
        with pytest.raises(InstrumentError) as e:
            smu.check_errors()
        assert (e.value.code, e.value.message) == (-222, "Data out of range")
        assert e.value.command == ":SOUR1:VOLT 300"
        g0 = emu.bench.arrays[0].conductances()
        drive.output(False)
        smu.write(":FOO:BAR")  # an error queued before the pulse: checked before the trigger
        with pytest.raises(InstrumentError, match="Undefined header") as e:
            drive.pulse(1.2, 1e-3, count=5)
        assert e.value.code == -113
        smu.opc()
        assert not any(r["command"].startswith(":INIT") for r in emu.log.records)
        assert torch.equal(emu.bench.arrays[0].conductances(), g0)
        assert not emu.bench.drive.output and emu.bench.drive.shape == "DC"


def test_b2900_shutdown_leaves_the_bench_safe(rm, tmp_path):
    with bench(rm, tmp_path) as (emu, d):
        setup(d, [WORD[0], WORD[1]], [PLUS[0]])
        d["drive"].set_voltage(0.5)
        d["drive"].pulse(1.2, 1e-3)
        d["drive"].output(True)
        assert not emu.log.final_state_safe()
        d["smu"].shutdown(raise_errors=True)
        d["matrix"].shutdown(raise_errors=True)
        d["smu"].opc()
        d["matrix"].opc()
        assert emu.log.final_state_safe()
        assert all(t.level_v == 0.0 and t.shape == "DC" for t in emu.bench.terminals.values())
        assert d["smu"].cached_pulse_settings(1) == {}


# -- two Keithley 2450s + 707B ------------------------------------------------------------------

def test_2450_pair_measure_pulse_compliance_and_shutdown(rm, tmp_path):
    with bench(rm, tmp_path, model="2450") as (emu, d):
        arr = emu.bench.arrays[0]
        g = scramble(emu)
        drive, sense = d["drive"], d["sense"]
        setup(d, [WORD[2]], [PLUS[1]])
        drive.set_voltage(V_READ)
        sent = spy(sense)
        assert sense.measure_current() == pytest.approx(-V_READ * float(g[0, 2, 1]), rel=2e-6)
        assert sent == [":MEAS:CURR?;:SOUR:VOLT:ILIM:TRIP?"]
        assert drive.measure_current() == pytest.approx(V_READ * float(g[0, 2, 1]), rel=2e-6)
        drive.output(False)
        drive.set_voltage(0.0)
        sent = spy(drive)
        drive.pulse(1.0, 2e-3, count=2)
        assert sent == [":SOUR:VOLT 1.0;:OUTP ON", ":SOUR:VOLT 0.0", ":SOUR:VOLT 1.0",
                        ":OUTP OFF;:SOUR:VOLT 0.0;:SOUR:VOLT:ILIM:TRIP?;:SYST:ERR:COUN?"]
        drive.opc()
        g1 = arr.conductances()
        assert float(g1[0, 2, 1] - g[0, 2, 1]) == pytest.approx(2 * arr.model.dw_min, rel=1e-3)
        others = all_but(g, (0, 2, 1))
        # (SimulatedCrossbar.pulse_devices can move an untouched float32 device by ~1e-12 S)
        assert torch.allclose(g1[others], g[others], rtol=0.0, atol=1e-10)
        assert emu.log.pulses_per_device() == {(0, 0, 2, 1): 2}
        assert (emu.bench.drive.output, emu.bench.drive.level_v) == (False, 0.0)
        sense.configure(1e-9)
        drive.set_voltage(V_READ)
        drive.output(True)
        with pytest.raises(ComplianceError, match="current limit reached during the measurement") as e:
            sense.measure_current()
        assert e.value.command == ":MEAS:CURR?;:SOUR:VOLT:ILIM:TRIP?"
        drive.write(":SOUR:VOLT:ILIM 5")  # around the driver: out of range for the 2450
        with pytest.raises(InstrumentError) as e:
            drive.check_errors()
        assert (e.value.code, e.value.message) == (-222, "Data out of range")
        assert not emu.log.final_state_safe()
        for inst in (drive, sense, d["matrix"]):
            inst.shutdown(raise_errors=True)
            inst.opc()
        assert emu.log.final_state_safe()
