"""The bench behind the instrument crossbars: an SMU with two terminals and a switch matrix.

Topology and the exact instrument commands are in ``docs/hil_protocol.md``. In short:
the *drive* terminal sources the read or pulse voltage on the lines switched to it, the
*sense* terminal holds 0 V on one line and measures the current through the devices
between them. The array is assumed selector-isolated (1T1R/1S1R): unselected lines float.

* Vector reads use superposition over the distinct |voltage| levels of the input: for
  each level, the lines at +level are switched to drive and each output line in turn to
  sense; lines at -level are measured separately and subtracted. Binary inputs (BSL)
  need one level, so one measurement per output line and sample.
* Pulses: devices of one word line with the same signed count are pulsed together
  (their bit lines on sense at once), SET with ``+set_voltage_v``, RESET with
  ``-reset_voltage_v``.
* Safety: every request is checked against the limits file before anything is sent;
  any exception inside an operation puts the bench in its safe state (outputs off, all
  switches open) before it propagates, as does interpreter exit; one lock serializes
  operations. Every operation is journaled (:mod:`devices.hil.journal`).
"""

from __future__ import annotations

import atexit
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol

from .settings import HilSettings
from .wiring import Wiring, crosspoint


class Terminal(Protocol):
    """One SMU channel as the drivers provide it (volts, amperes, seconds)."""

    def configure(self, compliance_a: float, nplc: float | None = None) -> None: ...
    def set_voltage(self, v: float) -> None: ...
    def output(self, on: bool) -> None: ...
    def measure_current(self) -> float: ...
    def pulse(self, v: float, width_s: float, count: int = 1, base_v: float = 0.0) -> None: ...
    def shutdown(self) -> None: ...


class Matrix(Protocol):
    """A switch matrix as the drivers provide it (707B channel names like ``1A05``)."""

    def switch(self, open_channels: Sequence[str] = (), close_channels: Sequence[str] = ()) -> None: ...
    def open_all(self) -> None: ...
    def shutdown(self) -> None: ...


Instruments = tuple[Terminal, Terminal, Matrix, dict[str, str], list[Any]]
"""drive, sense, matrix, identities (``*IDN?`` replies), things to close at the end."""


class HilBench:
    """The instruments of one bench, shared by every crossbar wired to it.

    Instruments are opened on first use, so that building a network checks every
    layer against the wiring before anything is sent; the bench is released when the
    last crossbar using it is closed."""

    def __init__(self, wiring: Wiring, settings: HilSettings, connect: Callable[[], Instruments]) -> None:
        self.wiring, self.settings = wiring, settings
        self._connect = connect
        self.lock = threading.RLock()
        self._closers: list[Any] = []
        self._closed: set[str] = set()
        self._drive_on = self._sense_on = False
        self._drive_v = 0.0
        self._users = 0
        self._identities: dict[str, str] = {}
        self.connected = False
        self.safe = True

    @classmethod
    def open(cls, wiring: Wiring, settings: HilSettings, visa_library: str = "") -> HilBench:
        """A bench on the instruments the wiring names (``visa_library`` e.g. ``@py``)."""
        return cls(wiring, settings, lambda: _open_instruments(wiring, visa_library))

    @classmethod
    def from_instruments(cls, wiring: Wiring, settings: HilSettings, drive: Terminal, sense: Terminal,
                         matrix: Matrix, identities: dict[str, str] | None = None) -> HilBench:
        """A bench on instruments opened by the caller."""
        return cls(wiring, settings, lambda: (drive, sense, matrix, dict(identities or {}), []))

    @property
    def identities(self) -> dict[str, str]:
        self._ensure()
        return dict(self._identities)

    def _ensure(self) -> None:
        with self.lock:
            if self.connected:
                return
            self.drive, self.sense, self.matrix, self._identities, self._closers = self._connect()
            self.connected = True
            atexit.register(self.safe_state)
            with self.operation():
                self.matrix.open_all()
                for terminal in (self.drive, self.sense):
                    terminal.output(False)
                    terminal.configure(self.settings.limits.compliance_a, self.settings.operation.nplc)
                    terminal.set_voltage(0.0)
                self.safe = True

    def attach(self) -> None:
        """A crossbar starts using the bench."""
        self._users += 1

    def release(self) -> None:
        """A crossbar is done: safe state, and the instruments are closed after the last."""
        self._users -= 1
        if self._users <= 0:
            self.close()
        else:
            self.safe_state()

    # -- safety -------------------------------------------------------------------
    @contextmanager
    def operation(self) -> Iterator[None]:
        """One operation at a time; on any exception, the safe state first."""
        self._ensure()
        with self.lock:
            self.safe = False
            try:
                yield
            except BaseException:
                self.safe_state()
                raise

    def safe_state(self) -> None:
        """Outputs off, voltages 0, all switches open. Never raises; a no-op when nothing was
        done since the bench was last made safe (an unresponsive instrument is not asked twice)."""
        with self.lock:
            if not self.connected or self.safe:
                return
            for unit in dict.fromkeys(getattr(t, "instrument", t) for t in (self.drive, self.sense)):
                _quietly(unit.shutdown)  # once per instrument: one line if its safe state is not confirmed
            _quietly(self.matrix.shutdown)  # all switches open, then its error queue
            self._closed.clear()
            self._drive_on = self._sense_on = False
            self._drive_v = 0.0
            self.safe = True

    def close(self) -> None:
        """Safe state, then release the instruments."""
        self.safe_state()
        for closer in self._closers:
            _quietly(closer.close)
        self._closers.clear()
        if self.connected:
            atexit.unregister(self.safe_state)
        self.connected = False

    # -- primitives (call inside :meth:`operation`) --------------------------------
    def connect(self, drive_pins: Sequence[int], sense_pins: Sequence[int]) -> None:
        """Switch exactly these pins to drive and sense (everything else open)."""
        w = self.wiring
        wanted = {crosspoint(w.drive_row, p) for p in drive_pins}
        wanted |= {crosspoint(w.sense_row, p) for p in sense_pins}
        to_open = sorted(self._closed - wanted)
        to_close = sorted(wanted - self._closed)
        if to_open or to_close:
            self.matrix.switch(to_open, to_close)  # one message: open first, then close
            self._closed = wanted

    def measure(self, v: float) -> float:
        """Source ``v`` (V) on drive, return the current from drive through the devices
        into the sense line (A, positive for positive ``v``)."""
        self._check_voltage(v)
        if v != self._drive_v:
            self.drive.set_voltage(v)
            self._drive_v = v
        if not self._sense_on:
            self.sense.output(True)
            self._sense_on = True
        if not self._drive_on:
            self.drive.output(True)
            self._drive_on = True
        return -self.sense.measure_current()  # current into the sense terminal reads negative

    def pulse(self, v: float, width_s: float, count: int) -> None:
        """A train of ``count`` pulses of ``v`` (V), ``width_s`` (s) each, on drive."""
        self._check_voltage(v)
        lim = self.settings.limits
        if not 0 < width_s <= lim.max_pulse_width_s:
            raise ValueError(f"pulse width {width_s} s outside (0, {lim.max_pulse_width_s}] s (limits file)")
        if not 1 <= count <= lim.max_pulses_per_cell:
            raise ValueError(f"pulse count {count} outside 1..{lim.max_pulses_per_cell} (limits file)")
        if self._drive_on:  # relays and the pulse start from an idle drive
            self.drive.output(False)
            self._drive_on = False
        if not self._sense_on:
            self.sense.output(True)
            self._sense_on = True
        self.drive.pulse(v, width_s, count)  # the driver leaves the drive off, at 0 V
        self._drive_v = 0.0

    def idle(self) -> None:
        """Outputs off and switches open between operations."""
        if self._drive_on:
            self.drive.output(False)
            self._drive_on = False
        if self._sense_on:
            self.sense.output(False)
            self._sense_on = False
        if self._closed:
            self.matrix.open_all()
            self._closed.clear()
        self.safe = True

    def _check_voltage(self, v: float) -> None:
        if not abs(v) <= self.settings.limits.max_voltage_v:  # also refuses NaN
            limit = self.settings.limits.max_voltage_v
            raise ValueError(f"{v} V exceeds the limit max_voltage_v = {limit} V: nothing was sent")


def _open_instruments(wiring: Wiring, visa_library: str) -> Instruments:
    """Open the SMU(s) and the matrix the wiring names."""
    import pyvisa

    from drivers import Keithley707B, Keithley2450, KeysightB2900

    rm = pyvisa.ResourceManager(visa_library) if visa_library else pyvisa.ResourceManager()
    opened: list[Any] = []
    try:
        matrix = Keithley707B(wiring.matrix, resource_manager=rm)
        opened.append(matrix)
        ids = {"matrix": matrix.identity().raw}
        drive: Terminal
        sense: Terminal
        if wiring.smu_model == "b2900":
            smu = KeysightB2900(wiring.smu, resource_manager=rm)
            opened.append(smu)
            drive, sense = smu.channel(wiring.drive_channel), smu.channel(wiring.sense_channel)
            ids["smu"] = smu.identity().raw
        else:
            smu_drive = Keithley2450(wiring.smu, resource_manager=rm)
            opened.append(smu_drive)
            smu_sense = Keithley2450(wiring.smu_sense, resource_manager=rm)
            opened.append(smu_sense)
            ids["smu_drive"], ids["smu_sense"] = smu_drive.identity().raw, smu_sense.identity().raw
            drive, sense = smu_drive, smu_sense
        return drive, sense, matrix, ids, [*opened, rm]
    except BaseException:
        for instrument in reversed(opened):
            _quietly(instrument.shutdown)
            _quietly(instrument.close)
        _quietly(rm.close)
        raise


def _quietly(action: Any) -> None:
    try:
        action()
    except Exception:  # noqa: BLE001 - the safe state must try everything
        pass
