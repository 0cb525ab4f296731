"""Emulated Keithley 707B switch matrix (TSP): the subset of ``docs/hil_protocol.md``.

Channels are ``<slot 1-6><row A-H><column 01-12>``; ``allslots`` and ``slot<N>`` work for
``open`` and ``getclose``. A list with any bad name changes nothing and queues a TSP
runtime error. Each ``print`` is its own reply line."""

from __future__ import annotations

import re

from devices.hil.wiring import MATRIX_ROWS, PINS_PER_SLOT, SLOTS, crosspoint

from .scpi import CommandError, Instrument

TSP_SYNTAX = -285
TSP_RUNTIME = -286

_Q = r"""\(\s*(["'])(.*?)\1\s*\)"""
_STATEMENTS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^\*IDN\?$", re.I), "idn"),
    (re.compile(r"^\*OPC\?$", re.I), "opc_q"),
    (re.compile(r"^\*(OPC|WAI)$", re.I), "nothing"),
    (re.compile(r"^(\*RST|reset\(\s*\))$", re.I), "reset"),
    (re.compile(r"^\*CLS$", re.I), "clear"),
    (re.compile(r"^waitcomplete\(\s*\)$"), "nothing"),
    (re.compile(r"^errorqueue\.clear\(\s*\)$"), "clear"),
    (re.compile(r"^print\(\s*errorqueue\.count\s*\)$"), "count"),
    (re.compile(r"^print\(\s*errorqueue\.next\(\s*\)\s*\)$"), "next"),
    (re.compile(r"^channel\.close" + _Q + "$"), "close"),
    (re.compile(r"^channel\.open" + _Q + "$"), "open"),
    (re.compile(r"^print\(\s*channel\.getclose" + _Q + r"\s*\)$"), "getclose"),
]


class K707B(Instrument):
    """The switch matrix: closes (row, pin) crosspoints of the bench."""

    IDN = "Keithley Instruments Inc., Model 707B, EMU0000003, emulator"
    reply_separator = "\n"
    no_error = (0, "Queue Is Empty")

    def format_error(self, code: int, message: str) -> str:
        return f"{code}\t{message}\t{0 if code == 0 else 20}\t1"

    def execute(self, command: str) -> str | None:
        for pattern, action in _STATEMENTS:
            m = pattern.match(command)
            if m is not None:
                arg = m.group(2) if m.re.groups >= 2 else ""
                reply: str | None = getattr(self, action)(arg)
                return reply
        raise CommandError(TSP_SYNTAX, f"TSP Syntax error at line 1: unexpected symbol near '{command[:40]}'")

    def channels(self, spec: str, groups: bool) -> set[tuple[str, int]]:
        """(row, pin) crosspoints named by a channel list; ``groups`` allows allslots/slotN."""
        out: set[tuple[str, int]] = set()
        for name in (n.strip() for n in spec.split(",")):
            low = name.lower()
            if groups and (low == "allslots" or re.fullmatch(r"slot[1-6]", low)):
                slots = range(SLOTS) if low == "allslots" else [int(low[4:]) - 1]
                out |= {(r, s * PINS_PER_SLOT + c) for s in slots for r in MATRIX_ROWS
                        for c in range(PINS_PER_SLOT)}
                continue
            try:
                out.add(self.bench.parse_crosspoint(name))
            except ValueError:
                raise CommandError(TSP_RUNTIME, f"TSP Runtime error at line 1: invalid channel list "
                                                f"'{spec}': bad channel '{name}'") from None
        return out

    def idn(self, _arg: str) -> str:
        return self.IDN

    def opc_q(self, _arg: str) -> str:
        return "1"

    def nothing(self, _arg: str) -> None:
        return None

    def reset(self, _arg: str) -> None:
        self.bench.closed.clear()

    def clear(self, _arg: str) -> None:
        self.errors.clear()

    def count(self, _arg: str) -> str:
        return str(len(self.errors))

    def next(self, _arg: str) -> str:
        return self.next_error()

    def close(self, spec: str) -> None:
        self.bench.closed |= self.channels(spec, groups=False)

    def open(self, spec: str) -> None:
        self.bench.closed -= self.channels(spec, groups=True)

    def getclose(self, spec: str) -> str:
        wanted = self.channels(spec, groups=True)
        names = sorted(crosspoint(r, p) for r, p in self.bench.closed & wanted)
        return ";".join(names) if names else "nil"
