"""The crossbar behind bench instruments: an SMU with two terminals and a switch matrix.

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
  operations. Every operation is journaled (:mod:`devices.journal`).
"""

from __future__ import annotations

import atexit
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor

from .hil_settings import HilSettings
from .interface import Crossbar, OpCounters, Scheme
from .journal import Journal
from .physics import DeviceModel
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


class InstrumentCrossbar(Crossbar):
    """Crossbar ``index`` of the bench's wiring, behind the instruments.

    ``model`` supplies the nominal device figures the learning engine needs (``g_min``,
    ``g_max``, step sizes), e.g. a preset fitted with ``bsl fit`` to this array."""

    def __init__(self, bench: HilBench, index: int, model: DeviceModel, *,
                 scheme: Scheme = "push_pull") -> None:
        self.bench, self.index, self.model, self.scheme = bench, index, model, scheme
        self.array = bench.wiring.arrays[index]
        self.rows, self.cols = self.array.rows, self.array.cols
        self.device, self.dtype = torch.device("cpu"), torch.float32  # measured in float64, returned in this
        self.counters, self.journal = OpCounters(), Journal(index)
        bench.attach()
        self._open = True
        op = bench.settings.operation
        self._v_read, self._t_read = op.read_voltage_v, op.read_time_s
        self._bits = [(j, 0, p) for j, p in enumerate(self.array.plus_pins)] + \
            [(j, 1, p) for j, p in enumerate(self.array.minus_pins)]  # (column, device, pin) per bit line

    @property
    def g_bounds(self) -> tuple[float, float]:
        return self.model.g_min, self.model.g_max

    @property
    def nominal_steps(self) -> tuple[float, float]:
        return self.model.dw_up, self.model.dw_down

    @property
    def v_read(self) -> float:
        return self._v_read

    @property
    def max_pulses_per_update(self) -> int:
        return self.bench.settings.limits.max_pulses_per_cell

    def description(self) -> dict[str, Any]:
        s = self.bench.settings
        return {**super().description(), "instruments": self.bench.identities, "array": self.index,
                "pins": {"word": list(self.array.word_line_pins), "plus": list(self.array.plus_pins),
                         "minus": list(self.array.minus_pins)},
                "limits": vars(s.limits), "operation": vars(s.operation), "model": self.model.to_dict()}

    # -- reads --------------------------------------------------------------------
    def read_forward(self, voltages: Tensor) -> Tensor:
        v = self._within_limits(self._check_voltages(voltages, self.rows, "row"))
        out = torch.zeros((v.shape[0], self.cols), dtype=torch.float64)
        a, outputs = self.array, self._bits
        with self.bench.operation():  # on any error: safe state, then the error
            for b in range(v.shape[0]):
                for level, sign, lines in _levels(v[b]):
                    currents = self._measure_lines([a.word_line_pins[i] for i in lines], outputs, level)
                    for (j, device, _), current in zip(outputs, currents, strict=True):
                        out[b, j] += sign * (current if device == 0 else -current)
            self.bench.idle()
        self._count_reads(v)
        return out.to(self.dtype)

    def read_backward(self, voltages: Tensor) -> Tensor:
        v = self._within_limits(self._check_voltages(voltages, self.cols, "column"))
        out = torch.zeros((v.shape[0], self.rows), dtype=torch.float64)
        a = self.array
        outputs = [(i, -1, a.word_line_pins[i]) for i in range(self.rows)]
        with self.bench.operation():
            for b in range(v.shape[0]):
                for level, sign, lines in _levels(v[b]):
                    for device, pins in ((0, a.plus_pins), (1, a.minus_pins)):
                        currents = self._measure_lines([pins[j] for j in lines], outputs, level)
                        for (i, _, _), current in zip(outputs, currents, strict=True):
                            out[b, i] += sign * (current if device == 0 else -current)
            self.bench.idle()
        self._count_reads(v)
        return out.to(self.dtype)

    def read_conductances(self, rows: Sequence[int] | None = None) -> Tensor:
        """Every device, S; with ``rows``, only the devices of those word lines (others NaN)."""
        lines = sorted(set(range(self.rows) if rows is None else map(int, rows)))
        if lines and not 0 <= lines[0] <= lines[-1] < self.rows:
            raise ValueError(f"rows {lines}: the word lines of this array are 0..{self.rows - 1}")
        g = torch.full((2, self.rows, self.cols), torch.nan, dtype=torch.float64)
        a, outputs = self.array, self._bits
        with self.bench.operation():
            for i in lines:
                currents = self._measure_lines([a.word_line_pins[i]], outputs, self._v_read, row=i)
                for (j, device, _), current in zip(outputs, currents, strict=True):
                    g[device, i, j] = current / self._v_read
            self.bench.idle()
        self.counters.cell_reads += 2 * len(lines) * self.cols
        return g.to(self.dtype)

    def _measure_lines(self, drive_pins: list[int], outputs: list[tuple[int, int, int]], level: float,
                       row: int = -1) -> list[float]:
        """Drive ``drive_pins`` at ``level``; measure each output pin in turn on sense (inside
        the caller's :meth:`HilBench.operation`; lines switch under the read voltage)."""
        currents = []
        bench = self.bench
        for index, device, pin in outputs:
            bench.connect(drive_pins, [pin])
            current = bench.measure(level)
            currents.append(current)
            col = index if device >= 0 else -1
            r = row if device >= 0 else index
            self.journal.record(b"read", row=r, col=col, device=device, voltage=level,
                                width=self._t_read, current=current)
        return currents

    def _within_limits(self, v: Tensor) -> Tensor:
        """The voltages in float64, refused before anything is sent if any exceeds the limit."""
        v = v.to(torch.float64)
        limit = self.bench.settings.limits.max_voltage_v
        peak = float(v.abs().max()) if v.numel() else 0.0
        if not peak <= limit:  # also refuses NaN
            raise ValueError(f"read voltage {peak} V exceeds the limit max_voltage_v = {limit} V: "
                             "nothing was sent")
        return v

    def _count_reads(self, v: Tensor) -> None:
        self.counters.vector_reads += int(v.shape[0])
        self.counters.macs += int(v.shape[0]) * self.rows * self.cols

    # -- pulses -------------------------------------------------------------------
    def pulse_devices(self, counts: Tensor) -> None:
        counts = self._check_counts(counts, (2, self.rows, self.cols))
        limit = self.max_pulses_per_update
        worst = int(counts.abs().max()) if counts.numel() else 0
        if worst > limit:
            raise ValueError(f"{worst} pulses requested for one device; the limits file allows "
                             f"{limit} (max_pulses_per_cell): nothing was sent")
        op = self.bench.settings.operation
        a = self.array
        bench = self.bench
        with bench.operation():  # on any error: safe state, then the error
            for i in range(self.rows):
                groups: dict[int, list[tuple[int, int]]] = {}
                for device in (0, 1):
                    for j in torch.nonzero(counts[device, i]).flatten().tolist():
                        groups.setdefault(int(counts[device, i, j]), []).append((device, j))
                for n, cells in sorted(groups.items()):
                    v, width = (op.set_voltage_v, op.set_width_s) if n > 0 else \
                        (-op.reset_voltage_v, op.reset_width_s)
                    bits = [(a.plus_pins if d == 0 else a.minus_pins)[j] for d, j in cells]
                    bench.connect([a.word_line_pins[i]], bits)
                    bench.pulse(v, width, abs(n))
                    for d, j in cells:
                        self.journal.record(b"pulse", row=i, col=j, device=d, voltage=v, width=width,
                                            count=abs(n))
                    self._count(n, len(cells))
            bench.idle()

    def _count(self, n: int, devices: int) -> None:
        """Count pulses as they are sent (a failure midway leaves true counters)."""
        if n > 0:
            self.counters.set_pulses += n * devices
        else:
            self.counters.reset_pulses += -n * devices

    def drain_operations(self) -> np.ndarray:
        return self.journal.drain()

    def close(self) -> None:
        if self._open:
            self._open = False
            self.bench.release()


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


def _levels(v: Tensor) -> list[tuple[float, float, list[int]]]:
    """``(|level|, sign, lines)`` groups of the non-zero entries of ``v`` (superposition)."""
    groups: dict[tuple[float, float], list[int]] = {}
    for index in torch.nonzero(v).flatten().tolist():
        value = float(v[index])
        groups.setdefault((abs(value), 1.0 if value > 0 else -1.0), []).append(index)
    return [(level, sign, lines) for (level, sign), lines in sorted(groups.items())]


def _quietly(action: Any) -> None:
    try:
        action()
    except Exception:  # noqa: BLE001 - the safe state must try everything
        pass
