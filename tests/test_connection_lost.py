"""A closed connection reads "connection lost", a silent instrument "timeout"; the safe
state that cannot be confirmed is ONE log line per instrument. Real drivers, pyvisa-py and
the emulator on loopback TCP, with its ``drop_after`` (closes) and ``hang_after`` (silent)
faults."""

from __future__ import annotations

import logging
import socket
import time
from pathlib import Path

import pytest
import pyvisa
from pyvisa import constants
from pyvisa.errors import VisaIOError

pytest.importorskip("pyvisa_py")
from small_bench import write_wiring  # noqa: E402

from bsl.cli import _one_line  # noqa: E402
from devices.hil.emulator import Emulator, Faults  # noqa: E402
from drivers import ConnectionLost, InstrumentError, Keithley707B, KeysightB2900  # noqa: E402

TIMEOUT_S = 0.5


def _smu(rm: pyvisa.ResourceManager, emu: Emulator) -> KeysightB2900:
    return KeysightB2900(emu.resources["smu"], resource_manager=rm, timeout_s=TIMEOUT_S)


def test_dropped_connection_is_connection_lost(rm: pyvisa.ResourceManager, tmp_path: Path) -> None:
    """After the emulator closes the socket, a query raises ConnectionLost (also a
    ConnectionError and an InstrumentError), and the next message fails at once."""
    with Emulator(write_wiring(tmp_path), preset="ideal", faults=Faults(drop_after=2, target="smu")) as emu:
        smu = _smu(rm, emu)  # *IDN? is message 1
        try:
            assert smu.query(":SOUR1:VOLT?") is not None  # message 2
            with pytest.raises(ConnectionLost, match=r"connection lost \(closed by the instrument\)") as e:
                smu.query(":SOUR1:VOLT?")
            assert isinstance(e.value, ConnectionError) and isinstance(e.value, InstrumentError)
            assert "connection lost" in _one_line(e.value) and "timeout" not in _one_line(e.value).lower()
            t0 = time.monotonic()
            with pytest.raises(ConnectionLost):
                smu.write(":OUTP1 OFF")  # found closed before sending: no wait, no silent success
            assert time.monotonic() - t0 < TIMEOUT_S / 2
        finally:
            smu.disconnect()


def test_silent_instrument_is_a_timeout(rm: pyvisa.ResourceManager, tmp_path: Path) -> None:
    faults = Faults(hang_after=1, target="matrix")
    with Emulator(write_wiring(tmp_path), preset="ideal", faults=faults) as emu:
        matrix = Keithley707B(emu.resources["matrix"], resource_manager=rm, timeout_s=TIMEOUT_S)
        try:
            with pytest.raises(VisaIOError) as e:
                matrix.open_all()
            assert e.value.error_code == constants.StatusCode.error_timeout
            assert not isinstance(e.value, ConnectionError)
            text = _one_line(e.value)
            assert text.startswith("instrument timeout") and "connection lost" not in text
        finally:
            matrix.disconnect()


def test_shutdown_after_a_drop_is_one_line(rm: pyvisa.ResourceManager, tmp_path: Path,
                                            caplog: pytest.LogCaptureFixture) -> None:
    with Emulator(write_wiring(tmp_path), preset="ideal", faults=Faults(drop_after=1, target="smu")) as emu:
        smu = _smu(rm, emu)
        try:
            with pytest.raises(ConnectionLost):
                smu.query(":OUTP1?")
            caplog.clear()
            with caplog.at_level(logging.WARNING, logger="drivers"):
                smu.shutdown()
        finally:
            smu.disconnect()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1, lines
    assert lines[0] == (f"KeysightB2900 {emu.resources['smu']}: safe state not confirmed (connection lost): "
                        "output off ch1, DC shape ch1, 0 V ch1, output off ch2, DC shape ch2, 0 V ch2, "
                        "error queue")


def test_nothing_listening_is_connection_refused(rm: pyvisa.ResourceManager) -> None:
    with socket.socket() as probe:  # a port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises((ConnectionLost, VisaIOError)) as e:
        KeysightB2900(f"TCPIP::127.0.0.1::{port}::SOCKET", resource_manager=rm, timeout_s=TIMEOUT_S)
    if isinstance(e.value, ConnectionLost):  # pyvisa-py opens the session; *IDN? finds it refused
        assert "connection refused (nothing listens at that address" in _one_line(e.value)
