"""Shared machinery of the emulated instruments: error queue, message splitting, SCPI parsing.

A message (one line) may hold several commands joined by ``;``. Every command runs
under the bench lock and is logged; errors go to the instrument's error queue and never
escape. SCPI headers match in short or long form, case-insensitively, with optional
``[nodes]`` and a numeric suffix where the pattern has ``#``; a header without a leading
``:`` after a ``;`` is relative to the previous command's path, as in IEEE 488.2.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass
from typing import ClassVar

from .bench import Bench

ERROR_QUEUE_SIZE = 30


class CommandError(Exception):
    """A command failed: ``code`` and ``message`` go to the error queue."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code}, {message}")
        self.code, self.message = code, message


UNDEFINED = CommandError(-113, "Undefined header")
OUT_OF_RANGE = CommandError(-222, "Data out of range")


def split_outside_quotes(message: str, sep: str = ";") -> list[str]:
    """``message`` split at ``sep`` outside single/double quotes; blank parts dropped."""
    parts: list[str] = []
    cur: list[str] = []
    quote = ""
    for ch in message:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch == sep:
            parts.append("".join(cur))
            cur = []
            continue
        cur.append(ch)
    parts.append("".join(cur))
    return [p.strip() for p in parts if p.strip()]


class Instrument:
    """Base of an emulated instrument: error queue and per-command logging.

    Subclasses implement :meth:`execute` (one command -> reply or None) and
    :meth:`format_error`; ``name`` is the log and fault-target name (smu, matrix, ...)."""

    reply_separator = ";"
    no_error: tuple[int, str] = (0, "No error")

    def __init__(self, name: str, bench: Bench) -> None:
        self.name, self.bench = name, bench
        self.errors: deque[tuple[int, str]] = deque()

    def push_error(self, code: int, message: str) -> None:
        if len(self.errors) >= ERROR_QUEUE_SIZE:
            self.errors[-1] = (-350, "Queue overflow")
        else:
            self.errors.append((code, message))

    def next_error(self) -> str:
        return self.format_error(*(self.errors.popleft() if self.errors else self.no_error))

    def format_error(self, code: int, message: str) -> str:
        raise NotImplementedError

    def begin_message(self) -> None:
        """Called before the commands of one message run."""

    def execute(self, command: str) -> str | None:
        raise NotImplementedError

    def handle(self, message: str) -> str | None:
        """Run every command of ``message``; the joined replies, or None if there are none."""
        replies = []
        with self.bench.lock:
            self.begin_message()
            for command in split_outside_quotes(message):
                reply = error = None
                try:
                    reply = self.execute(command)
                except CommandError as exc:
                    self.push_error(exc.code, exc.message)
                    error = f"{exc.code}, {exc.message}"
                except Exception as exc:  # an emulator bug must not kill the server
                    self.push_error(-300, f"Device-specific error: {type(exc).__name__}: {exc}")
                    error = f"-300, {type(exc).__name__}: {exc}"
                self.bench.commit(self.name, command, reply, error)
                if reply is not None:
                    replies.append(reply)
        return self.reply_separator.join(replies) if replies else None


# -- SCPI --------------------------------------------------------------------------------
_TOKEN = re.compile(r"^([A-Za-z*]+)(\d*)$")
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


@dataclass(frozen=True)
class _Node:
    short: str
    long: str
    optional: bool
    suffix: bool


def compile_pattern(spec: str) -> tuple[_Node, ...]:
    """``":SOURce#:VOLTage[:LEVel]"`` -> nodes (short form = the upper-case letters)."""
    nodes = []
    for part in spec.replace("[:", ":[").strip(":").split(":"):
        optional = part.startswith("[")
        part = part.strip("[]")
        suffix = part.endswith("#")
        part = part.rstrip("#")
        short = part if part.startswith("*") else "".join(c for c in part if c.isupper())
        nodes.append(_Node(short, part.upper(), optional, suffix))
    return tuple(nodes)


def match(nodes: tuple[_Node, ...], tokens: list[tuple[str, str]]) -> list[int | None] | None:
    """Suffixes of the ``#`` nodes if ``tokens`` (name, digits) match ``nodes``, else None."""
    def rec(ni: int, ti: int) -> list[int | None] | None:
        if ni == len(nodes):
            return [] if ti == len(tokens) else None
        node = nodes[ni]
        if ti < len(tokens):
            name, digits = tokens[ti]
            if name in (node.short, node.long) and (node.suffix or not digits):
                rest = rec(ni + 1, ti + 1)
                if rest is not None:
                    return ([int(digits) if digits else None] if node.suffix else []) + rest
        if node.optional:
            rest = rec(ni + 1, ti)
            if rest is not None:
                return ([None] if node.suffix else []) + rest
        return None
    return rec(0, 0)


def number(arg: str, lo: float, hi: float) -> float:
    """A SCPI decimal parameter within ``[lo, hi]``."""
    arg = arg.strip()
    if not arg:
        raise CommandError(-109, "Missing parameter")
    if not _NUMBER.match(arg):
        raise CommandError(-104, "Data type error")
    x = float(arg)
    if not lo <= x <= hi:
        raise OUT_OF_RANGE
    return x


def boolean(arg: str) -> bool:
    word = arg.strip().upper()
    if word in ("ON", "1"):
        return True
    if word in ("OFF", "0"):
        return False
    if not word:
        raise CommandError(-109, "Missing parameter")
    raise CommandError(-224, "Illegal parameter value")


def choice(arg: str, options: tuple[str, ...]) -> str:
    """The option (given as ``VOLTage``: short/long) that ``arg`` names, quotes ignored."""
    word = arg.strip().strip("\"'").upper()
    if not word:
        raise CommandError(-109, "Missing parameter")
    for opt in options:
        if word in (opt.upper(), "".join(c for c in opt if c.isupper())):
            return opt
    raise CommandError(-224, "Illegal parameter value")


def no_args(arg: str) -> None:
    if arg.strip():
        raise CommandError(-108, "Parameter not allowed")


def fmt(x: float) -> str:
    """A reply number, ``+1.234500E-05``."""
    return f"{x:+.6E}"


Handler = str
"""Name of a handler method ``(self, suffixes, arg) -> reply | None``."""


class ScpiInstrument(Instrument):
    """SCPI dispatch: ``COMMANDS`` lists ``(pattern, is_query, handler name)``."""

    COMMANDS: ClassVar[list[tuple[str, bool, Handler]]] = [
        ("*IDN", True, "idn"), ("*RST", False, "rst"), ("*CLS", False, "cls"),
        ("*OPC", True, "opc_q"), ("*OPC", False, "nothing"), ("*WAI", False, "nothing"),
        (":SYSTem:ERRor[:NEXT]", True, "err_next"), (":SYSTem:ERRor:COUNt", True, "err_count"),
    ]
    IDN = ""

    def __init__(self, name: str, bench: Bench) -> None:
        super().__init__(name, bench)
        self._table = [(compile_pattern(p), q, h) for p, q, h in self.COMMANDS]
        self._prefix: list[tuple[str, str]] = []

    def begin_message(self) -> None:
        self._prefix = []

    def execute(self, command: str) -> str | None:
        header, _, arg = command.partition(" ")
        header, arg = header.strip(), arg.strip()
        query = header.endswith("?")
        path = header[:-1] if query else header
        common = path.startswith("*")
        base: list[tuple[str, str]] = []
        if common:
            names = [path]
        elif path.startswith(":"):
            names = path[1:].split(":")
        else:
            names, base = path.split(":"), self._prefix
        tokens = list(base)
        for name in names:
            m = _TOKEN.match(name)
            if m is None:
                raise UNDEFINED
            tokens.append((m.group(1).upper(), m.group(2)))
        if not common:
            self._prefix = tokens[:-1]
        for nodes, is_query, handler in self._table:
            if is_query == query:
                suffixes = match(nodes, tokens)
                if suffixes is not None:
                    reply: str | None = getattr(self, handler)(suffixes, arg)
                    return reply
        raise UNDEFINED

    # -- common commands ---------------------------------------------------------------
    def idn(self, _s: list[int | None], arg: str) -> str:
        no_args(arg)
        return self.IDN

    def rst(self, _s: list[int | None], arg: str) -> None:
        no_args(arg)
        self.reset()

    def reset(self) -> None:
        raise NotImplementedError

    def cls(self, _s: list[int | None], arg: str) -> None:
        no_args(arg)
        self.errors.clear()

    def opc_q(self, _s: list[int | None], arg: str) -> str:
        no_args(arg)
        return "1"

    def nothing(self, _s: list[int | None], arg: str) -> None:
        no_args(arg)

    def err_next(self, _s: list[int | None], arg: str) -> str:
        no_args(arg)
        return self.next_error()

    def err_count(self, _s: list[int | None], arg: str) -> str:
        no_args(arg)
        return f"{len(self.errors):+d}"
