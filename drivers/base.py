"""The instrument base: one locked pyvisa message resource, its error queue, strict settings.

* ``write``/``query`` send one message each ("\\n" terminated); ``query(..., retry=n)``
  re-sends *read-only* queries after a VISA timeout, never a write, a trigger, a
  measurement or an error-queue read (see :func:`is_read_only`).
* A message may join several commands with ``;``; the replies of its queries come back on
  one line joined by ``;`` (:func:`split_reply`). Drivers join commands to save round
  trips, and read an error *count* (:meth:`Instrument.raise_counted_errors`) in the same
  message as a measurement or at the end of a pulse.
* :class:`Control` declares a setting (its SCPI get/set commands, unit and strict
  validator): a value outside the allowed range raises ``ValueError`` before anything is
  sent; nothing is ever clipped.
* ``shutdown()`` puts the instrument in its safe state (outputs off / switches open); it
  is idempotent and, unless asked, never raises.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from itertools import groupby
from typing import Any, Protocol, TypeVar, cast

import pyvisa
from pyvisa import constants
from pyvisa.errors import VisaIOError

from .connection import drain_socket, guard, safe_steps
from .replies import (  # noqa: F401 - re-exported: the drivers import them from here
    ComplianceError,
    ConnectionLost,
    Identity,
    InstrumentError,
    is_read_only,
    parse_bool,
    parse_count,
    parse_float,
    parse_identity,
    parse_scpi_error,
    split_reply,
)
from .validators import Validator, format_number, strict_range

log = logging.getLogger(__name__)
_I = TypeVar("_I", bound="Instrument")


# -- declared settings ------------------------------------------------------------------------

class _Owner(Protocol):
    @property
    def instrument(self) -> Instrument: ...
    @property
    def cmd_fields(self) -> Mapping[str, Any]: ...
    @property
    def limits(self) -> Mapping[str, Validator]: ...


class Control:
    """A declared setting of an instrument or channel.

    ``get``/``set`` are format strings using the owner's ``cmd_fields`` (e.g. ``{c}``) and
    ``{value}``; the validator is ``validator`` or the owner's ``limits[key or name]``.
    Reading queries (read-only, retried); assigning validates, then writes (no error check:
    the owner's methods check the error queue once per operation)."""

    def __init__(self, label: str, unit: str, *, get: str | None = None, set: str | None = None,
                 validator: Validator | None = None, key: str | None = None,
                 parse: Callable[[str, str], Any] = parse_float) -> None:
        self.label, self.unit, self.get_cmd, self.set_cmd = label, unit, get, set
        self.validator, self.key, self.parse = validator, key, parse
        self.name = key or label

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def validate(self, obj: _Owner, value: Any) -> Any:
        """The value to send, or ``ValueError``/``TypeError`` naming the parameter."""
        validator = self.validator or obj.limits[self.key or self.name]
        return validator(value, self.label)

    def command(self, obj: _Owner, value: Any) -> str:
        """The set command for an already validated ``value``."""
        if self.set_cmd is None:
            raise AttributeError(f"{self.label} cannot be set")
        text = value if isinstance(value, str) else format_number(value)
        return self.set_cmd.format(value=text, **obj.cmd_fields)

    def __get__(self, obj: _Owner | None, objtype: type | None = None) -> Any:
        if obj is None:
            return self
        if self.get_cmd is None:
            raise AttributeError(f"{self.label} is write-only")
        cmd = self.get_cmd.format(**obj.cmd_fields)
        return self.parse(obj.instrument.query(cmd, retry=obj.instrument.read_retry), cmd)

    def __set__(self, obj: _Owner, value: Any) -> None:
        obj.instrument.write(self.command(obj, self.validate(obj, value)))


# -- the instrument ---------------------------------------------------------------------------

class MessageResource(Protocol):
    """What the drivers use of a ``pyvisa`` message-based resource."""

    timeout: float | None
    read_termination: str | None
    write_termination: str

    def write(self, message: str) -> Any: ...
    def query(self, message: str) -> str: ...
    def clear(self) -> None: ...
    def read_raw(self) -> bytes: ...
    def close(self) -> None: ...


class Instrument:
    """A pyvisa message resource with a lock, error-queue checks and a safe state.

    ``resource`` is a VISA resource string (opened here, with ``resource_manager``: a
    ``pyvisa.ResourceManager`` or a backend string like ``"@py"``, ``"file.yaml@sim"``) or
    an already open resource (the caller keeps it and closes it). ``timeout_s`` (s) is the
    default I/O timeout. Subclasses check the model in :meth:`_connect`."""

    read_retry = 1
    """Retries of read-only settings queries after a timeout."""
    error_query = ":SYST:ERR:NEXT?"
    error_count_query = ":SYST:ERR:COUN?"
    """Answers the number of errors in the queue (joined to other commands to check them)."""
    max_error_reads = 32
    """The error queue is read at most this many times per check (a stuck queue ends there)."""
    shutdown_lock_timeout_s = 5.0
    limits: Mapping[str, Validator] = {}
    cmd_fields: Mapping[str, Any] = {}

    def __init__(self, resource: str | MessageResource, *,
                 resource_manager: pyvisa.ResourceManager | str | None = None,
                 timeout_s: float = 5.0, name: str | None = None) -> None:
        self._lock = threading.RLock()
        self._rm: pyvisa.ResourceManager | None = None
        self._owns_resource = isinstance(resource, str)
        self._closed = False
        self._last_command: str | None = None
        self.instrument = self
        if isinstance(resource, str):
            rm = resource_manager
            if rm is None or isinstance(rm, str):
                rm = self._rm = pyvisa.ResourceManager(rm or "")
            try:
                self.resource = cast(MessageResource, rm.open_resource(resource))
            except BaseException:
                self._close_rm()
                raise
        else:
            if resource_manager is not None:
                raise ValueError("resource_manager goes with a resource string, not an open resource")
            self.resource = resource
        self.name = name or (resource if isinstance(resource, str) else type(self).__name__)
        try:
            self.resource.read_termination = "\n"
            self.resource.write_termination = "\n"
            self.resource.timeout = _ms(timeout_s)
            self._connect()
        except BaseException:
            self.disconnect()
            raise

    def _connect(self) -> None:
        """Check the instrument on opening (subclasses: model, channel count)."""

    # -- I/O ----------------------------------------------------------------------------------
    @property
    def lock(self) -> threading.RLock:
        """Held by every operation: one operation at a time per instrument."""
        return self._lock

    @contextmanager
    def _timeout(self, timeout_s: float | None) -> Iterator[None]:
        if timeout_s is None:
            yield
            return
        old = self.resource.timeout
        self.resource.timeout = _ms(timeout_s)
        try:
            yield
        finally:
            self.resource.timeout = old

    def _lost(self, why: str) -> ConnectionLost:
        return ConnectionLost(None, why, self._last_command, instrument=self.name)

    def write(self, command: str, *, timeout_s: float | None = None) -> None:
        """Send one message (never retried)."""
        with self._lock, self._timeout(timeout_s), guard(self.resource, self._lost):
            log.debug("%s <- %s", self.name, command)
            self._last_command = command
            self.resource.write(command)

    def query(self, command: str, *, retry: int = 0, timeout_s: float | None = None) -> str:
        """Send ``command``, return the stripped reply. ``retry`` re-sends after a VISA
        timeout, allowed for read-only queries only (ValueError otherwise)."""
        if isinstance(retry, bool) or not isinstance(retry, int) or retry < 0:
            raise ValueError(f"retry = {retry!r} refused: a count >= 0")
        if retry and not is_read_only(command):
            raise ValueError(f"refusing to retry {command!r}: only read-only queries are retried")
        with self._lock:
            self._last_command = command
            return self._query(command, retry, timeout_s)

    def _query(self, command: str, retry: int = 0, timeout_s: float | None = None) -> str:
        with self._lock, self._timeout(timeout_s):
            for attempt in range(retry + 1):
                try:
                    with guard(self.resource, self._lost):
                        reply = self.resource.query(command)
                    log.debug("%s <- %s -> %s", self.name, command, reply)
                    return reply.strip()
                except VisaIOError as e:
                    if e.error_code != constants.StatusCode.error_timeout or attempt == retry:
                        raise
                    log.warning("%s: %r timed out, retrying (%d/%d)", self.name, command, attempt + 1, retry)
                    self._flush()
            raise AssertionError("unreachable")  # pragma: no cover

    def _flush(self) -> None:
        """Device clear before a retry, so that a late reply cannot be read as the next one."""
        if str(getattr(self.resource, "resource_name", "")).upper().endswith("::SOCKET"):
            drain_socket(self.resource)  # pyvisa-py's clear() spins forever on a socket the peer closed
            return
        try:
            self.resource.clear()
        except Exception as e:  # noqa: BLE001 - best effort (not every backend has it)
            log.debug("%s: device clear failed: %s", self.name, e)

    # -- status -------------------------------------------------------------------------------
    def _drain_errors(self) -> tuple[list[tuple[int, str]], bool]:
        """Errors in the queue, oldest first, and whether reading stopped before it emptied."""
        found: list[tuple[int, str]] = []
        for _ in range(self.max_error_reads):
            code, message = parse_scpi_error(self._query(self.error_query))
            if code == 0:
                return found, False
            found.append((code, message))
        return found, True

    def _error(self, found: list[tuple[int, str]], stuck: bool, note: str = "") -> InstrumentError | None:
        """The exception for errors read from the queue (None if there are none)."""
        if not found:
            return None
        (code, message), rest = found[0], found[1:]
        if rest:
            runs = [(k, len(list(g))) for k, g in groupby(rest)]
            message += "; then " + "; ".join(f"{c}: {m}" + (f" (x{n})" if n > 1 else "")
                                             for (c, m), n in runs)
        if stuck:
            message += f" (error queue not empty after {self.max_error_reads} reads)"
        error = InstrumentError(code, message + note, self._last_command, instrument=self.name)
        error.others = rest
        return error

    def check_errors(self) -> None:
        """Read the error queue until it is empty; raise :class:`InstrumentError` for the
        first error (code, message, last command), the others listed in its message."""
        with self._lock:
            found, stuck = self._drain_errors()
        error = self._error(found, stuck)
        if error is not None:
            raise error

    def raise_counted_errors(self, count: int, note: str = "") -> None:
        """After an error-count query answered ``count``: nothing if 0, else read the queue
        and raise as :meth:`check_errors` does (``note`` appended to the message). A count
        > 0 with an empty queue still raises: an error is never dropped."""
        if count <= 0:
            return
        with self._lock:
            found, stuck = self._drain_errors()
        error = self._error(found, stuck, note)
        if error is None:
            error = InstrumentError(None, f"the instrument counted {count} error(s) but its error queue "
                                    f"read empty{note}", self._last_command, instrument=self.name)
        raise error

    def read_error_count(self) -> int:
        """The number of errors in the queue (:attr:`error_count_query`, not retried)."""
        return parse_count(self._query(self.error_count_query), self.error_count_query)

    def check_opc_reply(self, reply: str, command: str = "*OPC?") -> None:
        """The answer of ``*OPC?`` (ending ``command``) must be 1, else InstrumentError."""
        try:
            done = int(float(reply)) == 1
        except ValueError:
            done = False
        if not done:
            raise InstrumentError(None, f"*OPC? replied {reply!r}, expected 1", command, instrument=self.name)

    def opc(self, *, timeout_s: float | None = None) -> None:
        """``*OPC?``: wait until pending operations are complete; the reply must be 1. (Errors
        read afterwards are still attributed to the command before it.)"""
        self.check_opc_reply(self._query("*OPC?", timeout_s=timeout_s))

    def identity(self) -> Identity:
        """``*IDN?``: manufacturer, model, serial, firmware."""
        return parse_identity(self.query("*IDN?", retry=self.read_retry))

    def reset(self) -> None:
        """``*RST``, ``*CLS``, wait for completion."""
        with self._lock:
            self.write("*RST")
            self.write("*CLS")
            self.opc()

    # -- safe state ---------------------------------------------------------------------------
    def _shutdown_steps(self) -> list[tuple[str, Callable[[], None]]]:
        """(description, action) pairs that make the instrument safe (subclasses)."""
        return []

    def shutdown(self, *, raise_errors: bool = False) -> None:
        """Safe state (outputs off / switches open), then an error-queue check. Every step is
        tried until the connection is lost; failed steps are logged in ONE line, the first
        failure re-raised only if ``raise_errors``. Idempotent; nothing once closed."""
        if self._closed:
            return
        locked = self._lock.acquire(timeout=self.shutdown_lock_timeout_s)
        if not locked:
            log.warning("%s: shutdown without the lock (another operation is stuck)", self.name)
        try:
            steps = [*self._shutdown_steps(), ("error queue", self.check_errors)]
            failures = safe_steps(f"{type(self).__name__} {self.name}", steps, log)
        finally:
            if locked:
                self._lock.release()
        if failures and raise_errors:
            raise failures[0]

    def disconnect(self) -> None:
        """Close the resource (if opened here) and the resource manager (if created here);
        a resource passed in open is left to its owner. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._owns_resource:
            try:
                self.resource.close()
            except Exception as e:  # noqa: BLE001
                log.warning("%s: closing the resource failed: %s", self.name, e)
        self._close_rm()

    def close(self) -> None:
        """Same as :meth:`disconnect`."""
        self.disconnect()

    def _close_rm(self) -> None:
        if self._rm is not None:
            try:
                self._rm.close()
            except Exception as e:  # noqa: BLE001
                log.warning("%s: closing the resource manager failed: %s", self.name, e)
            self._rm = None

    @property
    def connected(self) -> bool:
        """False once :meth:`disconnect` (or ``close``) ran."""
        return not self._closed

    def __enter__(self: _I) -> _I:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.shutdown()
        finally:
            self.disconnect()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


def _ms(timeout_s: float) -> float:
    """Seconds -> the milliseconds pyvisa wants; refuses non-positive or non-finite values."""
    return strict_range(1e-3, 1e6, "s")(timeout_s, "timeout") * 1000.0
