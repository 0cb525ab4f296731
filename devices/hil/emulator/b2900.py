"""Emulated Keysight B2912A (two channels, SCPI): the subset of ``docs/hil_protocol.md``."""

from __future__ import annotations

import re
from typing import ClassVar

from .bench import Bench, Terminal
from .scpi import OUT_OF_RANGE, CommandError, Handler, ScpiInstrument, boolean, choice, fmt, no_args, number

MAX_V = 210.0
"""Largest |source voltage|, V."""
COMPLIANCE_A = (1e-9, 3.03)
"""Current compliance range, A."""
WIDTH_S = (50e-6, 2.0)
"""Pulse width range, s."""
MAX_DELAY_S = 99999.9
MAX_COUNT = 100000
NPLC = (4e-4, 100.0)
"""Integration time range, power-line cycles."""
DEFAULT_COMPLIANCE_A = 1e-4

_CHANNELS = re.compile(r"^\(@\s*(\d+)\s*(?:([,:])\s*(\d+)\s*)?\)$")

S = list[int | None]


class B2900(ScpiInstrument):
    """Channels ``1`` and ``2`` are the bench terminals named in ``channels``."""

    IDN = "Keysight Technologies,B2912A,EMU0000001,emulator"
    COMMANDS: ClassVar[list[tuple[str, bool, Handler]]] = ScpiInstrument.COMMANDS + [
        (":SOURce#:FUNCtion:MODE", False, "set_mode"), (":SOURce#:FUNCtion:MODE", True, "get_mode"),
        (":SOURce#:FUNCtion:SHAPe", False, "set_shape"), (":SOURce#:FUNCtion:SHAPe", True, "get_shape"),
        (":SOURce#:VOLTage[:LEVel][:IMMediate][:AMPLitude]", False, "set_volt"),
        (":SOURce#:VOLTage[:LEVel][:IMMediate][:AMPLitude]", True, "get_volt"),
        (":SOURce#:VOLTage[:LEVel]:TRIGgered[:AMPLitude]", False, "set_peak"),
        (":SOURce#:VOLTage[:LEVel]:TRIGgered[:AMPLitude]", True, "get_peak"),
        (":SOURce#:PULSe:WIDTh", False, "set_width"), (":SOURce#:PULSe:WIDTh", True, "get_width"),
        (":SOURce#:PULSe:DELay", False, "set_delay"), (":SOURce#:PULSe:DELay", True, "get_delay"),
        (":SENSe#:CURRent[:DC]:PROTection[:LEVel]", False, "set_prot"),
        (":SENSe#:CURRent[:DC]:PROTection[:LEVel]", True, "get_prot"),
        (":SENSe#:CURRent[:DC]:PROTection:TRIPped", True, "get_trip"),
        (":SENSe#:CURRent[:DC]:NPLCycles", False, "set_nplc"),
        (":SENSe#:CURRent[:DC]:NPLCycles", True, "get_nplc"),
        (":TRIGger#[:ALL]:COUNt", False, "set_count"), (":TRIGger#[:ALL]:COUNt", True, "get_count"),
        (":OUTPut#[:STATe]", False, "set_output"), (":OUTPut#[:STATe]", True, "get_output"),
        (":INITiate[:IMMediate][:ALL]", False, "init"),
        (":MEASure:CURRent[:DC]", True, "measure"),
    ]

    def __init__(self, name: str, bench: Bench, channels: dict[int, str]) -> None:
        super().__init__(name, bench)
        if sorted(channels) != [1, 2]:
            raise ValueError(f"B2912A channels are 1 and 2, the wiring names {sorted(channels)}")
        self.channels = channels
        for t in self._all():
            t.default_compliance_a = DEFAULT_COMPLIANCE_A
            t.reset()

    def format_error(self, code: int, message: str) -> str:
        return f'{code:+d},"{message}"'

    def _all(self) -> list[Terminal]:
        return [self.bench.terminals[self.channels[c]] for c in (1, 2)]

    def reset(self) -> None:
        for t in self._all():
            t.reset()

    def _t(self, s: S) -> Terminal:
        c = s[0] if s and s[0] is not None else 1
        if c not in self.channels:
            raise CommandError(-114, "Header suffix out of range")
        return self.bench.terminals[self.channels[c]]

    def _list(self, arg: str) -> list[Terminal]:
        """``(@1)``, ``(@1,2)``, ``(@1:2)`` or nothing (channel 1)."""
        if not arg:
            return [self._t([1])]
        m = _CHANNELS.match(arg.replace(" ", ""))
        if m is None:
            raise CommandError(-104, "Data type error")
        chans = [int(m.group(1))] + ([int(m.group(3))] if m.group(3) else [])
        if m.group(2) == ":":
            chans = list(range(chans[0], chans[1] + 1))
        if not chans or any(c not in self.channels for c in chans):
            raise OUT_OF_RANGE
        return [self._t([c]) for c in chans]

    # -- source ---------------------------------------------------------------------------
    def set_mode(self, s: S, arg: str) -> None:
        t = self._t(s)
        if choice(arg, ("VOLTage", "CURRent")) != "VOLTage":
            raise CommandError(-221, "Settings conflict; current sourcing is not emulated")
        t.settings["mode"] = "VOLT"

    def get_mode(self, s: S, arg: str) -> str:
        no_args(arg)
        self._t(s)
        return "VOLT"

    def set_shape(self, s: S, arg: str) -> None:
        t = self._t(s)
        t.shape = "DC" if choice(arg, ("DC", "PULSe")) == "DC" else "PULS"

    def get_shape(self, s: S, arg: str) -> str:
        no_args(arg)
        return self._t(s).shape

    def set_volt(self, s: S, arg: str) -> None:
        t = self._t(s)
        t.level_v = number(arg, -MAX_V, MAX_V)

    def get_volt(self, s: S, arg: str) -> str:
        no_args(arg)
        return fmt(self._t(s).level_v)

    def set_peak(self, s: S, arg: str) -> None:
        t = self._t(s)
        t.peak_v = number(arg, -MAX_V, MAX_V)

    def get_peak(self, s: S, arg: str) -> str:
        no_args(arg)
        return fmt(self._t(s).peak_v)

    def set_width(self, s: S, arg: str) -> None:
        t = self._t(s)
        t.width_s = number(arg, *WIDTH_S)

    def get_width(self, s: S, arg: str) -> str:
        no_args(arg)
        return fmt(self._t(s).width_s)

    def set_delay(self, s: S, arg: str) -> None:
        t = self._t(s)
        t.delay_s = number(arg, 0.0, MAX_DELAY_S)

    def get_delay(self, s: S, arg: str) -> str:
        no_args(arg)
        return fmt(self._t(s).delay_s)

    # -- sense, trigger, output ---------------------------------------------------------------
    def set_prot(self, s: S, arg: str) -> None:
        t = self._t(s)
        t.compliance_a = number(arg, *COMPLIANCE_A)

    def get_prot(self, s: S, arg: str) -> str:
        no_args(arg)
        return fmt(self._t(s).compliance_a)

    def get_trip(self, s: S, arg: str) -> str:
        no_args(arg)
        return "1" if self._t(s).trip else "0"

    def set_nplc(self, s: S, arg: str) -> None:
        t = self._t(s)
        t.settings["nplc"] = number(arg, *NPLC)

    def get_nplc(self, s: S, arg: str) -> str:
        no_args(arg)
        return fmt(self._t(s).settings.get("nplc", 1.0))

    def set_count(self, s: S, arg: str) -> None:
        t = self._t(s)
        t.count = int(round(number(arg, 1, MAX_COUNT)))

    def get_count(self, s: S, arg: str) -> str:
        no_args(arg)
        return f"{self._t(s).count:+d}"

    def set_output(self, s: S, arg: str) -> None:
        t = self._t(s)
        t.output = boolean(arg)

    def get_output(self, s: S, arg: str) -> str:
        no_args(arg)
        return "1" if self._t(s).output else "0"

    def init(self, _s: S, arg: str) -> None:
        for t in self._list(arg):
            self.bench.pulse_train(t.name)

    def measure(self, _s: S, arg: str) -> str:
        return ",".join(fmt(self.bench.measure_current(t.name)) for t in self._list(arg))
