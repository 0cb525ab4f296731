"""Instrument replies and errors: the drivers' exception types, the parsers of SCPI
replies (identity, booleans, numbers, counts, ``;``-joined replies, error-queue entries)
and which commands are read-only (safe to re-send after a timeout)."""

from __future__ import annotations

import math
import re
from typing import NamedTuple

from .connection import LinkDown


class InstrumentError(RuntimeError):
    """The instrument reported an error: ``code`` (``None`` if it has none), ``message``,
    and the last ``command`` sent before the error was read."""

    def __init__(self, code: int | None, message: str, command: str | None = None,
                 *, instrument: str = "") -> None:
        self.code, self.message, self.command, self.instrument = code, message, command, instrument
        self.others: list[tuple[int, str]] = []
        """The errors read after the first one (code, message), oldest first."""
        text = f"{instrument}: " if instrument else ""
        text += f"error {code}: {message}" if code is not None else message
        if command:
            text += f" (after {command!r})"
        super().__init__(text)


class ComplianceError(InstrumentError):
    """The current compliance was reached: the device saw less than the programmed voltage."""


class ConnectionLost(InstrumentError, LinkDown):
    """The connection is gone (closed or reset by the instrument, ``VI_ERROR_CONN_LOST``):
    nothing more can be sent or read. Also a ``ConnectionError``; a silent instrument on a
    live connection raises pyvisa's ``VI_ERROR_TMO`` instead."""


class Identity(NamedTuple):
    """The four fields of an ``*IDN?`` reply (stripped), and the reply itself."""

    manufacturer: str
    model: str
    serial: str
    firmware: str
    raw: str


def parse_identity(reply: str) -> Identity:
    """``"Keysight Technologies,B2912A,MY123,3.4"`` -> :class:`Identity`."""
    parts = [p.strip() for p in reply.strip().split(",")]
    if len(parts) < 4 or not parts[1]:
        raise InstrumentError(None, f"malformed *IDN? reply {reply!r}", "*IDN?")
    return Identity(parts[0], parts[1], parts[2], ",".join(parts[3:]), reply.strip())


def parse_bool(reply: str, command: str) -> bool:
    """``1``/``0`` (also ``ON``/``OFF``, ``+1``) -> bool; anything else is an InstrumentError."""
    r = reply.strip().upper()
    if r in ("1", "+1", "ON", "TRUE"):
        return True
    if r in ("0", "+0", "OFF", "FALSE"):
        return False
    raise InstrumentError(None, f"expected a boolean reply, got {reply!r}", command)


def parse_float(reply: str, command: str) -> float:
    """A numeric reply (``+1.234500E-05``) -> float; anything else is an InstrumentError."""
    try:
        return float(reply.strip())
    except ValueError:
        raise InstrumentError(None, f"expected a number, got {reply!r}", command) from None


def parse_count(reply: str, command: str) -> int:
    """An error count (``0``, ``+2``, ``0.00000e+00`` as a TSP ``print`` writes it) -> int >= 0;
    anything else is an InstrumentError."""
    try:
        x = float(reply.strip())
    except ValueError:
        x = math.nan
    if not (math.isfinite(x) and x >= 0 and x == int(x)):
        raise InstrumentError(None, f"expected a count, got {reply!r}", command)
    return int(x)


def split_reply(reply: str, command: str, n: int) -> list[str]:
    """The ``n`` answers of a message with ``n`` queries (one line joined by ``;``);
    a different number of answers is an InstrumentError."""
    parts = [p.strip() for p in reply.strip().split(";")]
    if len(parts) != n:
        raise InstrumentError(None, f"expected {n} answers joined by ';', got {reply!r}", command)
    return parts


def parse_scpi_error(reply: str) -> tuple[int, str]:
    """``-222,"Data out of range"`` -> ``(-222, "Data out of range")``. The 2450 appends
    ``;<severity>;<time>`` inside the quotes: only the message is kept."""
    code_text, _, message = reply.strip().partition(",")
    try:
        code = int(float(code_text))
    except ValueError:
        raise InstrumentError(None, f"malformed error-queue reply {reply!r}") from None
    return code, message.strip().strip('"').split(";")[0].strip()


# -- read-only queries: the only ones that may be retried -------------------------------------

_NEVER_RETRY = re.compile(r"^\s*(\*OPC\?|\*TST\?|:?MEAS|:?READ|:?INIT|:?FETC|:?SYST:ERR|"
                          r"print\(errorqueue\.next)", re.IGNORECASE)


def is_read_only(command: str) -> bool:
    """A settings/status read that can be re-sent after a timeout with no effect: every
    ``;``-part of a SCPI message is a query, or a TSP ``print(...)``; triggers,
    measurements, ``*OPC?`` and error-queue reads are excluded (they act or consume)."""
    cmd = command.strip()
    if not cmd or _NEVER_RETRY.match(cmd):
        return False
    if cmd.startswith("print("):
        return True
    parts = [p.strip() for p in cmd.split(";")]
    return all(p.split(" ")[0].endswith("?") and not _NEVER_RETRY.match(p) for p in parts)
