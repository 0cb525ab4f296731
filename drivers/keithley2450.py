"""Keithley 2450 SMU (SCPI command set): voltage source, current measurement,
software-timed pulses. Commands: ``docs/hil_protocol.md``."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from functools import partial

from .base import (
    ComplianceError,
    Control,
    Instrument,
    InstrumentError,
    parse_bool,
    parse_count,
    parse_float,
    split_reply,
)
from .validators import Validator, strict_int_range, strict_range

# Source: Keithley 2450 SourceMeter data sheet / reference manual: +-210 V, current limit
# 1 nA..1.05 A, NPLC 0.01..10. Pulses are host-timed (no hardware pulse mode in the SCPI
# subset used here): widths below 1 ms cannot be timed from the host and are refused.
K2450_LIMITS: Mapping[str, Validator] = {
    "voltage": strict_range(-210.0, 210.0, "V"),
    "compliance": strict_range(1e-9, 1.05, "A"),
    "nplc": strict_range(0.01, 10.0, "PLC"),
    "pulse_width": strict_range(1e-3, 10.0, "s"),
    "pulse_count": strict_int_range(1, 100_000),
}


class Keithley2450(Instrument):
    """A Keithley 2450 in its SCPI mode; it is its own (only) channel: the channel API
    (``configure``, ``set_voltage``, ``output``, ``measure_current``, ``pulse``...) is here."""

    limits = K2450_LIMITS
    voltage = Control("voltage", "V", get=":SOUR:VOLT?", set=":SOUR:VOLT {value}")
    compliance = Control("current limit", "A", get=":SOUR:VOLT:ILIM?", set=":SOUR:VOLT:ILIM {value}")
    nplc = Control("integration time", "PLC", get=":SENS:CURR:NPLC?", set=":SENS:CURR:NPLC {value}")

    number = 1

    def _connect(self) -> None:
        idn = self.identity()
        if not re.search(r"\b2450\b", idn.model):
            raise InstrumentError(None, f"unsupported model {idn.model!r} ({idn.raw!r}); this driver "
                                  "knows the Keithley 2450", "*IDN?", instrument=self.name)
        self.model = "2450"

    def channel(self, n: int = 1) -> Keithley2450:
        """The one channel (``n`` must be 1): the instrument itself."""
        if isinstance(n, bool) or n != 1:
            raise ValueError(f"channel = {n!r} refused: the 2450 has 1 channel, allowed [1]")
        return self

    def configure(self, compliance_a: float, nplc: float | None = None) -> None:
        """Voltage source, current sense, current limit ``compliance_a`` (A), integration
        time ``nplc`` (power-line cycles) if given."""
        cls = type(self)
        with self.lock:
            a = cls.compliance.validate(self, compliance_a)
            n = None if nplc is None else cls.nplc.validate(self, nplc)
            self.write(":SOUR:FUNC VOLT")
            self.write(':SENS:FUNC "CURR"')
            self.compliance = a
            if n is not None:
                self.nplc = n
            self.check_errors()

    def set_voltage(self, v: float) -> None:
        """DC source level ``v`` (V)."""
        with self.lock:
            self.voltage = v
            self.check_errors()

    def output(self, on: bool) -> None:
        """Output on or off."""
        if not isinstance(on, bool):
            raise TypeError(f"output(on) takes a bool, got {on!r}")
        with self.lock:
            self.write(":OUTP ON" if on else ":OUTP OFF")
            self.check_errors()

    def is_on(self) -> bool:
        """Whether the output is on."""
        return parse_bool(self.query(":OUTP?", retry=self.read_retry), ":OUTP?")

    def tripped(self) -> bool:
        """Whether the current limit was reached."""
        cmd = ":SOUR:VOLT:ILIM:TRIP?"
        return parse_bool(self.query(cmd, retry=self.read_retry), cmd)

    def _compliance(self, what: str, command: str) -> ComplianceError:
        return ComplianceError(None, f"current limit reached during {what}", command, instrument=self.name)

    def measure_current(self) -> float:
        """Spot current measurement (A) and the limit flag in ONE query,
        ``:MEAS:CURR?;:SOUR:VOLT:ILIM:TRIP?`` (reply ``<a>;<0|1>``; never retried);
        ComplianceError (command: that message) if the limit was reached."""
        cmd = ":MEAS:CURR?;:SOUR:VOLT:ILIM:TRIP?"
        with self.lock:
            current, trip = split_reply(self.query(cmd), cmd, 2)
            i = parse_float(current, cmd)
            if parse_bool(trip, cmd):
                raise self._compliance(f"the measurement ({i!r} A)", cmd)
            return i

    def pulse(self, v: float, width_s: float, count: int = 1, base_v: float = 0.0) -> None:
        """``count`` software-timed pulses of ``v`` (V), ``width_s`` (s, >= 1 ms), from ``base_v``.

        Host-timed: ``:SOUR:VOLT v;:OUTP ON`` (one message), sleep ``width_s``, level
        ``base_v`` (then, for the next pulse, sleep ``width_s`` and level ``v`` again); the
        last pulse ends with ONE query ``:OUTP OFF;:SOUR:VOLT base;:SOUR:VOLT:ILIM:TRIP?;``
        ``:SYST:ERR:COUN?`` (output off first: nothing after an unparsable header runs).
        The true width is ``width_s`` plus one command latency (typically ~1 ms), so short
        pulses are long and jittery: use a hardware-pulse SMU for widths near 1 ms.
        InstrumentError if errors were queued, else ComplianceError if the limit was
        reached. Never retried; on any failure: level ``base_v`` and output OFF."""
        lim = self.limits
        v = lim["voltage"](v, "pulse level")
        base = lim["voltage"](base_v, "pulse base level")
        width = lim["pulse_width"](width_s, "pulse width")
        n = lim["pulse_count"](count, "pulse count")
        cls = type(self)
        level, rest = cls.voltage.command(self, v), cls.voltage.command(self, base)
        end = f":OUTP OFF;{rest};:SOUR:VOLT:ILIM:TRIP?;{self.error_count_query}"
        with self.lock:
            try:
                self.write(f"{level};:OUTP ON")
                for k in range(n):
                    if k:
                        time.sleep(width)
                        self.write(level)
                    time.sleep(width)
                    if k < n - 1:
                        self.write(rest)
                trip, errors = split_reply(self.query(end), end, 2)
                tripped, count = parse_bool(trip, end), parse_count(errors, end)
            except BaseException:
                self._recover(base)
                raise
            what = f"{n} pulse(s) of {v!r} V"
            self.raise_counted_errors(count, f" (and the current limit was reached during {what})"
                                      if tripped else "")
            if tripped:
                raise self._compliance(what, level)

    def _recover(self, base: float) -> None:
        """After a failed pulse: output OFF, level ``base`` (separate messages, errors ignored)."""
        for cmd in (":OUTP OFF", type(self).voltage.command(self, base)):
            try:
                self.write(cmd)
            except Exception:  # noqa: BLE001 - the original error matters more
                pass

    def _shutdown_steps(self) -> list[tuple[str, Callable[[], None]]]:
        return [(cmd, partial(self.write, cmd)) for cmd in (":OUTP OFF", ":SOUR:VOLT 0.0")]
