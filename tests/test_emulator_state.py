"""The emulator's state file: a restarted emulator continues the same devices (conductances,
per-device variation, stuck cells); a file of another wiring or model is refused."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import pyvisa
import torch

pytest.importorskip("pyvisa_py")
from small_bench import MINUS, PLUS, V_READ, WORD, write_wiring  # noqa: E402

from bsl.cli import main  # noqa: E402
from devices.hil.emulator import Emulator  # noqa: E402
from devices.hil.emulator.state import default_state_path  # noqa: E402
from devices.hil.wiring import crosspoint  # noqa: E402

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "hil"


def _pulse_some(emu: Emulator) -> None:
    with emu.bench.lock:
        gen = torch.Generator().manual_seed(5)
        for a in emu.bench.arrays:
            a.pulse_devices(torch.randint(-20, 21, (2, a.rows, a.cols), generator=gen))
        emu.bench.version += 1


def _same_devices(a: Emulator, b: Emulator) -> None:
    for x, y in zip(a.bench.arrays, b.bench.arrays, strict=True):
        assert torch.equal(x.conductances(), y.conductances())
        for name in ("g_lo", "g_hi", "dp_up", "dp_down", "stuck_off", "stuck_on"):
            assert torch.equal(getattr(x, name), getattr(y, name)), name
        assert x.counters == y.counters


def test_restart_reloads_the_devices(tmp_path: Path) -> None:
    state = tmp_path / "bench.state.npz"
    first = Emulator(EXAMPLES / "wiring.toml", preset="rram", seed=3, init_spread=0.3, state=state)
    assert first.state_note.startswith("state: new file")
    with first:
        _pulse_some(first)
    again = Emulator(EXAMPLES / "wiring.toml", preset="rram", seed=99, init_spread=0.0, state=state)
    assert again.state_note.startswith(f"state: reloaded {state} (17x8, 9x4, preset 'rram', ")
    _same_devices(first, again)  # the file wins over --seed / --init-spread: the same physical devices
    fresh = Emulator(EXAMPLES / "wiring.toml", preset="rram", seed=3, init_spread=0.3, state=state,
                     fresh=True)
    assert "discarded (--fresh)" in fresh.state_note
    assert not torch.equal(fresh.bench.arrays[0].conductances(), first.bench.arrays[0].conductances())


def test_saves_follow_pulses_without_a_clean_stop(tmp_path: Path) -> None:
    """What a SIGKILL leaves: the background saves alone (no stop()) hold the last pulses."""
    state = tmp_path / "s.npz"
    emu = Emulator(write_wiring(tmp_path), preset="rram", seed=1, state=state, save_interval_s=0.05)
    emu.start()
    try:
        _pulse_some(emu)
        deadline = time.monotonic() + 5
        while emu.state_keeper is not None and emu.state_keeper._saved != emu.bench.version:
            assert time.monotonic() < deadline, "no background save"
            time.sleep(0.02)
        other = Emulator(write_wiring(tmp_path), preset="rram", seed=1, state=state)
        _same_devices(emu, other)
    finally:
        emu.stop()


def test_state_of_another_wiring_or_model_is_refused(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    state = tmp_path / "s.npz"
    with Emulator(EXAMPLES / "wiring.toml", preset="rram", state=state):
        pass
    with pytest.raises(ValueError, match=r"holds 17x8, 9x4, written for another wiring: this wiring has "
                       r"arrays \(3x2\); give another --state file, or --fresh"):
        Emulator(write_wiring(tmp_path), preset="rram", state=state)
    with pytest.raises(ValueError, match=r"preset 'rram'\) does not fit these devices \(--preset ideal\)"):
        Emulator(EXAMPLES / "wiring.toml", preset="ideal", state=state)
    args = ["emulator", "--wiring", str(write_wiring(tmp_path)), "--state", str(state), "--duration", "0.1"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "written for another wiring" in err
    assert main([*args, "--fresh", "--port", str(_free_port())]) == 0
    assert "discarded (--fresh)" in capsys.readouterr().err


def test_default_state_file_is_beside_the_wiring(tmp_path: Path) -> None:
    assert default_state_path(tmp_path / "bench.toml") == tmp_path / "bench.state.npz"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _read_all(rm: pyvisa.ResourceManager, port: int) -> list[float]:
    """Every device's conductance (S) through the instruments (ideal devices: no read noise)."""
    smu = rm.open_resource(f"TCPIP::127.0.0.1::{port}::SOCKET", read_termination="\n", write_termination="\n",
                           timeout=2000)
    mx = rm.open_resource(f"TCPIP::127.0.0.1::{port + 1}::SOCKET", read_termination="\n",
                          write_termination="\n", timeout=2000)
    out = []
    try:
        smu.write(f":SOUR1:VOLT {V_READ!r};:SOUR2:VOLT 0.0;:OUTP1 ON;:OUTP2 ON")
        for w in WORD:
            for b in (*PLUS, *MINUS):
                mx.write('channel.open("allslots")')
                mx.write(f'channel.close("{crosspoint("A", w)},{crosspoint("B", b)}")')
                assert mx.query("*OPC?") == "1"
                out.append(-float(smu.query(":MEAS:CURR? (@2)")) / V_READ)
        smu.write(":OUTP1 OFF;:OUTP2 OFF")
        mx.write('channel.open("allslots")')
        assert smu.query("*OPC?") == "1" and mx.query("*OPC?") == "1"
    finally:
        smu.close()
        mx.close()
    return out


def _pulse_word_line(rm: pyvisa.ResourceManager, port: int) -> None:
    smu = rm.open_resource(f"TCPIP::127.0.0.1::{port}::SOCKET", read_termination="\n", write_termination="\n",
                           timeout=2000)
    mx = rm.open_resource(f"TCPIP::127.0.0.1::{port + 1}::SOCKET", read_termination="\n",
                          write_termination="\n", timeout=2000)
    try:
        names = [crosspoint("A", WORD[1]), crosspoint("B", PLUS[0]), crosspoint("B", MINUS[1])]
        mx.write(f'channel.close("{",".join(names)}")')
        assert mx.query("*OPC?") == "1"
        smu.write(":SOUR1:FUNC:SHAP PULS;:SOUR1:VOLT 0.0;:SOUR1:VOLT:TRIG 1.2;:SOUR1:PULS:WIDT 0.0001;"
                  ":TRIG1:COUN 40")
        smu.write(":OUTP1 ON;:OUTP2 ON;:INIT (@1)")
        assert smu.query("*OPC?") == "1"
        smu.write(":OUTP1 OFF;:OUTP2 OFF;:SOUR1:FUNC:SHAP DC")
        mx.write('channel.open("allslots")')
        assert mx.query("*OPC?") == "1" and smu.query("*OPC?") == "1"
    finally:
        smu.close()
        mx.close()


def _start(wiring: Path, port: int, *extra: str) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "bsl", "emulator", "--port", str(port), "--wiring", str(wiring),
               "--preset", "ideal", "--seed", "4", *extra]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert proc.stdout is not None
    for _ in range(2):  # smu, matrix
        assert "TCPIP::" in proc.stdout.readline()
    return proc


@pytest.mark.slow
def test_sigkill_keeps_the_pulsed_devices(rm: pyvisa.ResourceManager, tmp_path: Path) -> None:
    """``bsl emulator`` killed with SIGKILL 0.5 s after a pulse train, restarted with the
    same (default) state file: every device reads as before the kill."""
    wiring, port = write_wiring(tmp_path), _free_port()
    proc = _start(wiring, port)
    try:
        before = _read_all(rm, port)
        _pulse_word_line(rm, port)
        pulsed = _read_all(rm, port)
        assert pulsed != before
        time.sleep(0.5)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    assert default_state_path(wiring).is_file()
    proc = _start(wiring, port)
    try:
        assert _read_all(rm, port) == pulsed
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=10)
    assert f"state: reloaded {default_state_path(wiring)}" in err
    assert "state saved to" in err
