"""The SCPI/TSP bench emulator, exercised through real TCP with pyvisa-py."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import pyvisa
import torch

pytest.importorskip("pyvisa_py")

from small_bench import MINUS, PLUS, V_READ, WORD, all_but, write_wiring  # noqa: E402

from bsl.cli import main  # noqa: E402
from devices.hil.emulator import Emulator, Faults  # noqa: E402
from devices.hil.wiring import crosspoint  # noqa: E402


@contextmanager
def bench(rm: pyvisa.ResourceManager, tmp_path: Path, preset: str = "ideal", timeout_ms: int = 2000,
          model: str = "b2900", **kw: Any) -> Iterator[tuple[Emulator, dict[str, Any]]]:
    emu = Emulator(write_wiring(tmp_path, model), preset=preset, seed=3, **kw)
    sessions: dict[str, Any] = {}
    with emu:
        try:
            for name, res in emu.resources.items():
                sessions[name] = rm.open_resource(res, read_termination="\n", write_termination="\n",
                                                  timeout=timeout_ms)
            yield emu, sessions
        finally:
            for s in sessions.values():
                s.close()


def scramble(emu: Emulator) -> torch.Tensor:
    """Give every device a distinct conductance (seeded SET pulses); return the true G, S."""
    gen = torch.Generator().manual_seed(7)
    arr = emu.bench.arrays[0]
    arr.pulse_devices(torch.randperm(12, generator=gen).reshape(2, 3, 2) * 40 + 1)
    return arr.conductances()


def select(mx, drive: list[int], sense: list[int]) -> None:
    mx.write('channel.open("allslots")')
    names = [crosspoint("A", p) for p in drive] + [crosspoint("B", p) for p in sense]
    mx.write(f'channel.close("{",".join(names)}")')
    sync(mx)


def sync(session) -> None:
    """Wait until the instrument has run everything written before (writes do not wait)."""
    assert session.query("*OPC?") == "1"


def read(smu, v: float = V_READ) -> float:
    """Current into the array, A: the sense reading negated (current into its HI reads < 0)."""
    smu.write(f":SOUR1:VOLT {v!r};:SOUR2:VOLT 0.0;:OUTP1 ON;:OUTP2 ON")
    return -float(smu.query(":MEAS:CURR? (@2)"))


def pulse(smu, peak: float, count: int, width: float = 1e-3) -> None:
    smu.write(f":SOUR1:FUNC:SHAP PULS;:SOUR1:VOLT 0.0;:SOUR1:VOLT:TRIG {peak!r};"
              f":SOUR1:PULS:WIDT {width!r};:TRIG1:COUN {count}")
    smu.write(":OUTP1 ON;:OUTP2 ON;:INIT (@1)")
    assert smu.query("*OPC?") == "1"


def test_identity(rm, tmp_path):
    with bench(rm, tmp_path) as (_, s):
        assert s["smu"].query("*IDN?").startswith("Keysight Technologies,B2912A,")
        assert "Model 707B" in s["matrix"].query("*IDN?")
        assert s["smu"].query("*OPC?") == "1" and s["matrix"].query("*OPC?") == "1"


def test_set_query_round_trips_short_and_long_forms(rm, tmp_path):
    with bench(rm, tmp_path) as (_, s):
        smu = s["smu"]
        smu.write(":SOURce1:VOLTage 0.35")
        assert smu.query(":SOUR1:VOLT?") == "+3.500000E-01"
        smu.write(":sour2:volt:trig -1.25")
        assert smu.query(":SOURCE2:VOLTAGE:TRIGGERED?") == "-1.250000E+00"
        smu.write(":SOUR1:PULS:WIDT 5e-4;:SENS2:CURR:PROT 1e-3;:TRIG1:COUN 12;:SOUR1:FUNC:SHAP PULSE")
        assert smu.query(":SOUR1:PULS:WIDT?") == "+5.000000E-04"
        assert smu.query(":SENS2:CURR:PROT?") == "+1.000000E-03"
        assert smu.query(":TRIG1:COUN?") == "+12"
        assert smu.query(":SOUR1:FUNC:SHAP?") == "PULS"
        assert smu.query(":OUTP2?") == "0"
        smu.write(":OUTP2 ON")
        assert smu.query(":OUTPut2:STATe?") == "1"
        smu.write("*RST")
        assert smu.query(":OUTP2?;:SOUR1:VOLT?") == "0;+0.000000E+00"


def test_single_cell_read_is_v_times_g(rm, tmp_path):
    with bench(rm, tmp_path) as (emu, s):
        g = scramble(emu)
        select(s["matrix"], [WORD[1]], [PLUS[0]])
        assert read(s["smu"]) == pytest.approx(V_READ * float(g[0, 1, 0]), rel=2e-6)
        assert read(s["smu"], -0.1) == pytest.approx(-0.1 * float(g[0, 1, 0]), rel=2e-6)
        i_drive, i_sense = (float(x) for x in s["smu"].query(":MEAS:CURR? (@1,2)").split(","))
        assert i_drive == -i_sense == pytest.approx(-0.1 * float(g[0, 1, 0]), rel=2e-6)


def test_every_device_is_addressed_by_its_own_lines(rm, tmp_path):
    with bench(rm, tmp_path) as (emu, s):
        g = scramble(emu)
        for side, bits in enumerate((PLUS, MINUS)):
            for i, w in enumerate(WORD):
                for j, b in enumerate(bits):
                    select(s["matrix"], [w], [b])
                    assert read(s["smu"]) == pytest.approx(V_READ * float(g[side, i, j]), rel=2e-6)
        select(s["matrix"], [PLUS[0]], [WORD[2]])  # reversed orientation: same device
        assert read(s["smu"]) == pytest.approx(V_READ * float(g[0, 2, 0]), rel=2e-6)


def test_multi_row_read_is_the_sum_and_floating_lines_carry_nothing(rm, tmp_path):
    with bench(rm, tmp_path) as (emu, s):
        g = scramble(emu)
        select(s["matrix"], [WORD[0], WORD[2]], [MINUS[1]])
        assert read(s["smu"]) == pytest.approx(V_READ * float(g[1, 0, 1] + g[1, 2, 1]), rel=2e-6)
        select(s["matrix"], [WORD[0]], [])
        assert read(s["smu"]) == 0.0
        select(s["matrix"], [WORD[0]], [PLUS[0]])
        s["smu"].write(":OUTP2 OFF")
        assert float(s["smu"].query(":MEAS:CURR? (@2)")) == 0.0


def test_rram_read_noise_is_unbiased_and_non_destructive(rm, tmp_path):
    with bench(rm, tmp_path, preset="rram") as (emu, s):
        g0 = emu.bench.arrays[0].conductances()
        select(s["matrix"], [WORD[2]], [PLUS[1]])
        reads = torch.tensor([read(s["smu"]) for _ in range(60)], dtype=torch.float64)
        expect = V_READ * float(g0[0, 2, 1])
        sigma = emu.bench.arrays[0].model.read_noise_std * expect
        assert abs(float(reads.mean()) - expect) < 4 * sigma / 60**0.5
        assert 0.5 * sigma < float(reads.std()) < 1.5 * sigma
        assert torch.equal(emu.bench.arrays[0].conductances(), g0)


def test_set_and_reset_trains_move_only_the_selected_device(rm, tmp_path):
    with bench(rm, tmp_path) as (emu, s):
        arr = emu.bench.arrays[0]
        g0 = arr.conductances()
        select(s["matrix"], [WORD[1]], [MINUS[0]])
        pulse(s["smu"], 1.2, 7)
        g1 = arr.conductances()
        step = arr.model.dw_min
        assert float(g1[1, 1, 0] - g0[1, 1, 0]) == pytest.approx(7 * step, rel=1e-3)
        others = all_but(g0, (1, 1, 0))
        assert torch.equal(g1[others], g0[others])
        pulse(s["smu"], -1.0, 3)
        g2 = arr.conductances()
        assert float(g2[1, 1, 0] - g1[1, 1, 0]) == pytest.approx(-3 * step, rel=1e-3)
        assert torch.equal(g2[others], g0[others])
        assert emu.log.pulses_per_device() == {(0, 1, 1, 0): 10}


def test_sub_threshold_pulses_and_reads_change_nothing(rm, tmp_path):
    with bench(rm, tmp_path) as (emu, s):
        g0 = emu.bench.arrays[0].conductances()
        select(s["matrix"], list(WORD), list(PLUS + MINUS))
        pulse(s["smu"], 0.79, 50)
        pulse(s["smu"], -0.79, 50)
        read(s["smu"], 0.5)
        assert torch.equal(emu.bench.arrays[0].conductances(), g0)
        pulses = [p for r in emu.log.records for p in r.get("pulses", ())]
        assert [p["kind"] for p in pulses] == ["none", "none"] and len(pulses[0]["devices"]) == 12
        assert emu.log.total_pulses() == 0


def test_compliance_clamps_and_trips(rm, tmp_path):
    with bench(rm, tmp_path) as (emu, s):
        smu = s["smu"]
        select(s["matrix"], [WORD[0]], [PLUS[0]])
        smu.write(":SENS2:CURR:PROT 1e-6")
        assert read(smu) == pytest.approx(1e-6)
        assert smu.query(":SENS2:CURR:PROT:TRIP?") == "1"
        assert smu.query(":SENS1:CURR:PROT:TRIP?") == "0"
        smu.write(":SENS2:CURR:PROT 1e-3")
        g = float(emu.bench.arrays[0].conductances()[0, 0, 0])
        assert read(smu) == pytest.approx(V_READ * g, rel=2e-6)
        assert smu.query(":SENS2:CURR:PROT:TRIP?") == "0"


def test_error_queue_unknown_command_and_out_of_range(rm, tmp_path):
    with bench(rm, tmp_path) as (_, s):
        smu = s["smu"]
        smu.write(":SOUR1:VOLT 0.5")
        smu.write(":FOO:BAR 1")
        smu.write(":SOUR1:VOLT 300")
        smu.write(":SENS1:CURR:PROT 10")
        smu.write(":SOUR1:PULS:WIDT 1e-6")
        smu.write(":SOUR3:VOLT 1")
        smu.write(":SOUR1:VOLT abc")
        assert smu.query(":SYST:ERR:COUN?") == "+6"
        errors = [smu.query(":SYST:ERR:NEXT?") for _ in range(7)]
        assert errors == ['-113,"Undefined header"'] + ['-222,"Data out of range"'] * 3 + [
            '-114,"Header suffix out of range"', '-104,"Data type error"', '+0,"No error"']
        assert smu.query(":SOUR1:VOLT?") == "+5.000000E-01"
        smu.write(":FOO;*CLS")
        assert smu.query(":SYST:ERR?") == '+0,"No error"'


def test_semicolon_joined_messages_and_relative_headers(rm, tmp_path):
    with bench(rm, tmp_path) as (_, s):
        smu = s["smu"]
        assert smu.query(":SOUR1:VOLT 0.1;:SOUR1:VOLT?;:OUTP1?") == "+1.000000E-01;0"
        smu.write(":SOUR2:VOLT 0.3;VOLT:TRIG 1.1;:OUTP2 ON")
        assert smu.query(":SOUR2:VOLT?;VOLT:TRIG?;:OUTP2?") == "+3.000000E-01;+1.100000E+00;1"
        mx = s["matrix"]
        assert mx.query('channel.close("1A01,1B04"); print(channel.getclose("allslots"))') == "1A01;1B04"


def test_matrix_round_trip_and_bad_channel_names(rm, tmp_path):
    with bench(rm, tmp_path) as (emu, s):
        mx = s["matrix"]
        q = 'print(channel.getclose("allslots"))'
        assert mx.query(q) == "nil"
        mx.write("channel.close('1A01,2C12,1B04')")
        assert mx.query(q) == "1A01;1B04;2C12"
        assert emu.bench.closed == {("A", 0), ("B", 3), ("C", 23)}
        mx.write('channel.open("2C12")')
        assert mx.query(q) == "1A01;1B04"
        assert mx.query('print(channel.getclose("1B04,1B05"))') == "1B04"
        for bad in ("1Z01", "7A01", "1A13", "1A00", "A01", ""):
            mx.write(f'channel.close("1A02,{bad}")')
        mx.write("channel.frobnicate()")
        assert mx.query(q) == "1A01;1B04"
        assert mx.query("print(errorqueue.count)") == "7"
        code, message, severity, node = mx.query("print(errorqueue.next())").split("\t")
        assert (code, severity, node) == ("-286", "20", "1") and "1Z01" in message
        mx.write("errorqueue.clear()")
        assert mx.query("print(errorqueue.next())") == "0\tQueue Is Empty\t0\t1"
        mx.write("reset()")
        assert mx.query(q) == "nil"


def test_drive_sense_short_is_a_fault(rm, tmp_path):
    with bench(rm, tmp_path) as (emu, s):
        s["matrix"].write('channel.close("1A03,1B03")')
        sync(s["matrix"])
        assert s["smu"].query(":SENS1:CURR:PROT:TRIP?;:SENS2:CURR:PROT:TRIP?") == "1;1"
        assert any("shorted" in f for r in emu.log.records for f in r.get("faults", ()))
        assert read(s["smu"]) == pytest.approx(1e-4)  # clamped at the default compliance


def test_2450_pair_software_pulse(rm, tmp_path):
    with bench(rm, tmp_path, model="2450") as (emu, s):
        drive, sense, mx = s["smu"], s["smu_sense"], s["matrix"]
        assert drive.query("*IDN?").startswith("KEITHLEY INSTRUMENTS,MODEL 2450,")
        assert drive.query("*IDN?") != sense.query("*IDN?")
        drive.write(":SOUR:FUNC VOLT;:SENS:FUNC \"CURR\";:SENS:CURR:NPLC 1;:SOUR:VOLT:ILIM 1e-3")
        assert drive.query(":SOUR:VOLT:ILIM?") == "+1.000000E-03"
        drive.write(":SOUR:VOLT 300")
        assert drive.query(":SYST:ERR:NEXT?") == '-222,"Data out of range;1;0 0"'
        assert drive.query(":SYST:ERR:NEXT?") == '0,"No error;0;0 0"'
        arr = emu.bench.arrays[0]
        g0 = arr.conductances()
        select(mx, [WORD[2]], [PLUS[1]])
        sense.write(":SOUR:VOLT 0;:OUTP ON")
        drive.write(":SOUR:VOLT 0.2;:OUTP ON")
        sync(drive)
        assert float(sense.query(":MEAS:CURR?")) == pytest.approx(-0.2 * float(g0[0, 2, 1]), rel=2e-6)
        assert float(drive.query(":MEAS:CURR?")) == pytest.approx(0.2 * float(g0[0, 2, 1]), rel=2e-6)
        drive.write(":SOUR:VOLT 1.0;:OUTP ON")
        sync(drive)
        time.sleep(0.02)
        drive.write(":SOUR:VOLT 0;:OUTP OFF")
        sense.write(":OUTP OFF")
        sync(drive)
        sync(sense)
        g1 = arr.conductances()
        assert float(g1[0, 2, 1] - g0[0, 2, 1]) == pytest.approx(arr.model.dw_min, rel=1e-3)
        assert int((g1 != g0).sum()) == 1
        assert emu.log.pulses_per_device() == {(0, 0, 2, 1): 1}
        assert 0.02 <= emu.log.max_pulse_width() < 1.0


def test_log_safety_summary_and_jsonl(rm, tmp_path):
    log_path = tmp_path / "ops.jsonl"
    with bench(rm, tmp_path, log_path=log_path) as (emu, s):
        select(s["matrix"], [WORD[0]], [PLUS[0], PLUS[1]])
        read(s["smu"])
        mark = emu.log.mark()
        pulse(s["smu"], 1.5, 4, width=2e-3)
        assert not emu.log.final_state_safe()
        s["smu"].write(":OUTP1 OFF;:OUTP2 OFF")
        sync(s["smu"])
        assert not emu.log.final_state_safe()
        s["matrix"].write('channel.open("allslots")')
        sync(s["matrix"])
        assert emu.log.final_state_safe()
        assert emu.log.max_abs_voltage() == pytest.approx(1.5)
        assert emu.log.max_pulse_width() == pytest.approx(2e-3)
        assert emu.log.pulses_per_device(since=mark) == {(0, 0, 0, 0): 4, (0, 0, 0, 1): 4}
        assert emu.log.pulses_per_device(array=1) == {}
    lines = [json.loads(x) for x in log_path.read_text(encoding="utf-8").splitlines()]
    assert len(lines) == len(emu.log) == len(emu.log.records)
    init = next(r for r in lines if r["command"] == ":INIT (@1)")
    assert init["pulses"][0]["peak_v"] == 1.5 and init["pulses"][0]["count"] == 4
    assert init["outputs"] == {"drive": True, "sense": True} and init["closed"] == ["1A01", "1B04", "1B05"]


def test_latency_fault(rm, tmp_path):
    with bench(rm, tmp_path, faults=Faults(latency_s=0.15, target="smu")) as (_, s):
        t0 = time.perf_counter()
        s["smu"].query("*IDN?")
        slow = time.perf_counter() - t0
        t0 = time.perf_counter()
        s["matrix"].query("*IDN?")
        fast = time.perf_counter() - t0
        assert slow >= 0.15 and fast < 0.1


def test_timeout_fault_keeps_processing_writes(rm, tmp_path):
    with bench(rm, tmp_path, timeout_ms=300, faults=Faults(timeout_after=1)) as (emu, s):
        assert s["smu"].query("*IDN?").startswith("Keysight")
        s["smu"].write(":SOUR1:VOLT 0.25")
        deadline = time.monotonic() + 2
        while emu.bench.drive.level_v != 0.25 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert emu.bench.drive.level_v == 0.25
        with pytest.raises(pyvisa.errors.VisaIOError):
            s["smu"].query(":SOUR1:VOLT?")


def test_garble_fault(rm, tmp_path):
    with bench(rm, tmp_path, faults=Faults(garble_after=1, target="matrix")) as (_, s):
        assert "707B" in s["matrix"].query("*IDN?")
        s["matrix"].write("*IDN?")
        raw = s["matrix"].read_raw()
        assert raw.endswith(b"\n") and all(b >= 0x80 for b in raw[:-1])
        assert s["smu"].query("*IDN?").startswith("Keysight")


def test_drop_fault(rm, tmp_path):
    with bench(rm, tmp_path, timeout_ms=500, faults=Faults(drop_after=1)) as (emu, s):
        assert s["smu"].query("*IDN?").startswith("Keysight")
        with pytest.raises(pyvisa.errors.VisaIOError):
            s["smu"].query(":SOUR1:VOLT 1;:SOUR1:VOLT?")
        assert emu.bench.drive.level_v == 0.0
        assert any("drop" in f for r in emu.log.records for f in r.get("faults", ()))


def test_hang_fault(rm, tmp_path):
    with bench(rm, tmp_path, timeout_ms=300, faults=Faults(hang_after=0)) as (emu, s):
        s["smu"].write(":SOUR1:VOLT 1")
        with pytest.raises(pyvisa.errors.VisaIOError):
            s["smu"].query("*IDN?")
        assert emu.bench.drive.level_v == 0.0


def test_faults_validation_and_toml(tmp_path):
    for bad in ({"latency_s": -1.0}, {"latency_s": float("nan")}, {"drop_after": -2},
                {"hang_after": 1.5}, {"target": "dmm"}):
        with pytest.raises(ValueError):
            Faults(**bad)  # type: ignore[arg-type]
    path = tmp_path / "faults.toml"
    path.write_text('[faults]\nlatency_s = 0.01\ntimeout_after = 5\ntarget = "matrix"\n', encoding="utf-8")
    f = Faults.from_toml(path)
    assert (f.latency_s, f.timeout_after) == (0.01, 5)
    assert f.applies_to("matrix") and not f.applies_to("smu") and not f.applies_to("smu_sense")
    path.write_text("[faults]\nlatncy_s = 0.01\n", encoding="utf-8")
    with pytest.raises(ValueError, match="unknown key"):
        Faults.from_toml(path)


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "example.org"])
def test_non_loopback_host_is_refused(tmp_path, host):
    with pytest.raises(ValueError, match="loopback"):
        Emulator(write_wiring(tmp_path), host=host)


@pytest.mark.parametrize("port", ["0", "65535", "-3"])
def test_cli_refuses_bad_port(tmp_path, capsys, port):
    assert main(["emulator", "--port", port, "--wiring", str(write_wiring(tmp_path))]) == 2
    assert "--port" in capsys.readouterr().err


def test_cli_serves_until_stopped(rm, tmp_path, capsys):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    faults = tmp_path / "f.toml"
    faults.write_text("[faults]\nlatency_s = 0.0\n", encoding="utf-8")
    args = ["emulator", "--port", str(port), "--wiring", str(write_wiring(tmp_path)), "--preset", "ideal",
            "--faults", str(faults), "--log", str(tmp_path / "ops.jsonl"), "--duration", "1.0"]
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(main(args)))
    thread.start()
    deadline = time.monotonic() + 10  # the command line loads its plugins first: wait until it listens
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.02)
    smu = rm.open_resource(f"TCPIP::127.0.0.1::{port}::SOCKET", read_termination="\n",
                           write_termination="\n", timeout=2000)
    assert smu.query("*IDN?").startswith("Keysight")
    smu.close()
    thread.join(timeout=5)
    assert result == [0]
    out = capsys.readouterr()
    assert f"smu    TCPIP::127.0.0.1::{port}::SOCKET" in out.out
    assert f"matrix TCPIP::127.0.0.1::{port + 1}::SOCKET" in out.out
    assert (tmp_path / "ops.jsonl").read_text(encoding="utf-8").count("\n") == 1
