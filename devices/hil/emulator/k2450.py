"""Emulated Keithley 2450 (one channel, SCPI): the subset of ``docs/hil_protocol.md``.

It has no hardware pulse mode: a pulse is an over-threshold DC level on the drive
terminal, applied when the level changes or the output turns off (see :class:`Bench`)."""

from __future__ import annotations

from typing import ClassVar

from .bench import Bench, Terminal
from .scpi import CommandError, Handler, ScpiInstrument, boolean, choice, fmt, no_args, number

MAX_V = 210.0
"""Largest |source voltage|, V."""
ILIM_A = (1e-9, 1.05)
"""Current limit range, A."""
NPLC = (0.01, 10.0)
DEFAULT_ILIM_A = 1.05e-4

S = list[int | None]


class K2450(ScpiInstrument):
    """One 2450 wired as bench terminal ``terminal`` ("drive" or "sense")."""

    COMMANDS: ClassVar[list[tuple[str, bool, Handler]]] = ScpiInstrument.COMMANDS + [
        (":SOURce:FUNCtion[:MODE]", False, "set_func"), (":SOURce:FUNCtion[:MODE]", True, "get_func"),
        (":SOURce:VOLTage[:LEVel][:IMMediate][:AMPLitude]", False, "set_volt"),
        (":SOURce:VOLTage[:LEVel][:IMMediate][:AMPLitude]", True, "get_volt"),
        (":SOURce:VOLTage:ILIMit[:LEVel]", False, "set_ilim"),
        (":SOURce:VOLTage:ILIMit[:LEVel]", True, "get_ilim"),
        (":SOURce:VOLTage:ILIMit[:LEVel]:TRIPped", True, "get_trip"),
        (":SENSe:FUNCtion[:ON]", False, "set_sense"), (":SENSe:FUNCtion[:ON]", True, "get_sense"),
        (":SENSe:CURRent[:DC]:NPLCycles", False, "set_nplc"),
        (":SENSe:CURRent[:DC]:NPLCycles", True, "get_nplc"),
        (":OUTPut[:STATe]", False, "set_output"), (":OUTPut[:STATe]", True, "get_output"),
        (":MEASure:CURRent[:DC]", True, "measure"),
    ]

    def __init__(self, name: str, bench: Bench, terminal: str, serial: str) -> None:
        super().__init__(name, bench)
        self.IDN = f"KEITHLEY INSTRUMENTS,MODEL 2450,{serial},emulator"
        self.t: Terminal = bench.terminals[terminal]
        self.t.default_compliance_a = DEFAULT_ILIM_A
        self.t.reset()

    def format_error(self, code: int, message: str) -> str:
        return f'{code},"{message};{0 if code == 0 else 1};0 0"'

    def reset(self) -> None:
        self.t.reset()

    def set_func(self, _s: S, arg: str) -> None:
        if choice(arg, ("VOLTage", "CURRent")) != "VOLTage":
            raise CommandError(-221, "Settings conflict; current sourcing is not emulated")

    def get_func(self, _s: S, arg: str) -> str:
        no_args(arg)
        return "VOLT"

    def set_volt(self, _s: S, arg: str) -> None:
        self.t.level_v = number(arg, -MAX_V, MAX_V)

    def get_volt(self, _s: S, arg: str) -> str:
        no_args(arg)
        return fmt(self.t.level_v)

    def set_ilim(self, _s: S, arg: str) -> None:
        self.t.compliance_a = number(arg, *ILIM_A)

    def get_ilim(self, _s: S, arg: str) -> str:
        no_args(arg)
        return fmt(self.t.compliance_a)

    def get_trip(self, _s: S, arg: str) -> str:
        no_args(arg)
        return "1" if self.t.trip else "0"

    def set_sense(self, _s: S, arg: str) -> None:
        word = arg.strip().strip("\"'").upper()
        if not word:
            raise CommandError(-109, "Missing parameter")
        if word not in ("CURR", "CURRENT", "CURR:DC", "CURRENT:DC"):
            raise CommandError(-224, "Illegal parameter value")
        self.t.settings["sense"] = "CURR"

    def get_sense(self, _s: S, arg: str) -> str:
        no_args(arg)
        return '"CURR:DC"'

    def set_nplc(self, _s: S, arg: str) -> None:
        self.t.settings["nplc"] = number(arg, *NPLC)

    def get_nplc(self, _s: S, arg: str) -> str:
        no_args(arg)
        return fmt(self.t.settings.get("nplc", 1.0))

    def set_output(self, _s: S, arg: str) -> None:
        self.t.output = boolean(arg)

    def get_output(self, _s: S, arg: str) -> str:
        no_args(arg)
        return "1" if self.t.output else "0"

    def measure(self, _s: S, arg: str) -> str:
        no_args(arg)
        return fmt(self.bench.measure_current(self.t.name))
