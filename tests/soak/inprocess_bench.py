"""The emulated bench without TCP: the real drivers talk to the emulator's instruments
through :class:`InProcessResource`, a pyvisa-like message resource that hands each message
straight to :meth:`devices.hil.emulator.scpi.Instrument.handle` (what the emulator's server
thread does with every line it receives). Same commands, same bench physics, same
operation log; no sockets, so a soak can run thousands of operations in seconds."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyvisa import constants
from pyvisa.errors import VisaIOError

from devices import HilBench, InstrumentCrossbar
from devices.hil.emulator import Emulator
from devices.hil.emulator.scpi import Instrument as EmulatedInstrument
from devices.hil.settings import HilSettings
from devices.hil.wiring import Wiring
from devices.sim.presets import get_preset
from drivers import Keithley707B, KeysightB2900


def _timeout() -> VisaIOError:
    return VisaIOError(constants.StatusCode.error_timeout)


class InProcessResource:
    """A message resource on one emulated instrument. Replies are queued line by line, as a
    socket delivers them; a query with nothing to read times out as pyvisa does.

    ``fail_query_after(n)`` withholds the reply of the ``n``-th query from now (1 = the
    next one; 0 disarms): the instrument runs the message, its reply is lost and the query
    times out, as with a hung instrument or a dropped link. That is how a soak makes an
    operation fail midway."""

    def __init__(self, instrument: EmulatedInstrument) -> None:
        self.instrument = instrument
        self.timeout: float | None = 2000.0
        self.read_termination: str | None = "\n"
        self.write_termination = "\n"
        self.resource_name = f"INPROCESS::{instrument.name}"
        self._lines: deque[str] = deque()
        self._fail_in = 0
        self.failed = 0

    def fail_query_after(self, n: int) -> None:
        self._fail_in = n

    def _deliver(self, message: str) -> None:
        reply = self.instrument.handle(message.strip())
        if reply is not None:
            self._lines.extend(reply.split("\n"))

    def write(self, message: str) -> int:
        self._deliver(message)
        return len(message)

    def read(self) -> str:
        if not self._lines:
            raise _timeout()
        return self._lines.popleft()

    def query(self, message: str) -> str:
        self._deliver(message)
        if self._fail_in:
            self._fail_in -= 1
            if self._fail_in == 0:
                self.failed += 1
                self._lines.clear()
                raise _timeout()
        return self.read()

    def read_raw(self) -> bytes:
        return (self.read() + "\n").encode("ascii")

    def clear(self) -> None:
        self._lines.clear()

    def close(self) -> None:
        self._lines.clear()


@dataclass
class InProcessBench:
    """An emulator (never started: no servers), the drivers on in-process resources, the
    :class:`HilBench` on those drivers and one :class:`InstrumentCrossbar` per wired array."""

    emulator: Emulator
    bench: HilBench
    arrays: list[InstrumentCrossbar]
    resources: dict[str, InProcessResource]
    drivers: list[Any] = field(default_factory=list)

    def close(self) -> None:
        for x in self.arrays:
            x.close()
        for d in self.drivers:
            d.disconnect()


def open_inprocess_bench(wiring: Wiring, settings: HilSettings, *, preset: str = "rram", seed: int = 0,
                         init_spread: float = 0.3, max_records: int | None = 100_000) -> InProcessBench:
    """The whole bench of ``wiring`` (a B2900 SMU and a 707B) in this process; its log keeps
    the last ``max_records`` records in memory (its safety aggregates cover all)."""
    if wiring.smu_model != "b2900":
        raise ValueError("the in-process bench wires a B2900 (smu_model = 'b2900')")
    emu = Emulator(wiring, preset=preset, seed=seed, init_spread=init_spread, max_records=max_records)
    resources = {name: InProcessResource(inst) for name, inst in emu.instruments.items()}
    matrix = Keithley707B(resources["matrix"], name="matrix")
    smu = KeysightB2900(resources["smu"], name="smu")
    bench = HilBench.from_instruments(
        wiring, settings, smu.channel(wiring.drive_channel), smu.channel(wiring.sense_channel), matrix,
        {"smu": smu.identity().raw, "matrix": matrix.identity().raw})
    model = get_preset(preset)
    arrays = [InstrumentCrossbar(bench, k, model) for k in range(len(wiring.arrays))]
    return InProcessBench(emu, bench, arrays, resources, [smu, matrix])


def small_bench_wiring(tmp: Path) -> Wiring:
    """The 3x2 bench of ``tests/small_bench.py``."""
    from small_bench import write_wiring

    from devices.hil.wiring import load_wiring

    return load_wiring(write_wiring(tmp))
