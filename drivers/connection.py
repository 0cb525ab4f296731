"""Telling a lost connection from a silent instrument, and the one-line safe-state report.

pyvisa-py's ``TCPIP::...::SOCKET`` sessions do not report a peer that closed the
connection: a read sees end-of-file as "no data yet" and ends in ``VI_ERROR_TMO`` after
the full timeout, and the first write after it still succeeds. A reset peer raises
``ConnectionResetError`` / ``BrokenPipeError``; other VISA libraries report
``VI_ERROR_CONN_LOST``. :func:`lost_reason` classifies all of these, looking at the
socket itself (a non-blocking peek) for the end-of-file case, so that the drivers raise
``ConnectionLost`` for a closed or reset connection and keep ``VI_ERROR_TMO`` for an
instrument that is silent while the connection is up.
"""

from __future__ import annotations

import logging
import select
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from pyvisa import constants
from pyvisa.errors import VisaIOError


class LinkDown(ConnectionError):
    """Base of the drivers' ``ConnectionLost`` (so it is a ``ConnectionError`` too)."""


def session_socket(resource: Any) -> socket.socket | None:
    """The socket under a pyvisa-py TCPIP session (None for any other kind of resource)."""
    try:
        sock = resource.visalib.sessions[resource.session].interface
    except Exception:  # noqa: BLE001 - not pyvisa-py, not a socket session, or closed
        return None
    return sock if isinstance(sock, socket.socket) else None


def _os_reason(exc: OSError) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (nothing listens at that address: is the instrument on?)"
    if isinstance(exc, BrokenPipeError):
        return "connection lost (broken pipe)"
    if isinstance(exc, ConnectionResetError):
        return "connection lost (reset by the instrument)"
    return f"connection lost ({exc.strerror or type(exc).__name__})"


def _readable(sock: socket.socket) -> bool:
    """Whether a read would not block (data, end-of-file or an error are waiting)."""
    try:
        return bool(select.select([sock], [], [], 0)[0])
    except ValueError:  # a descriptor beyond select()'s FD_SETSIZE (POSIX): poll() has no limit
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(0))


def peer_closed(resource: Any) -> str | None:
    """Why the connection of ``resource`` is gone ("connection lost (closed by the
    instrument)", ...), or None if it is up or cannot be told (not a pyvisa-py socket). Costs a
    zero-timeout ``select`` (about 1 us), and a ``recv(MSG_PEEK)`` when something is there
    to read: pending data means the connection is up, end-of-file that it was closed."""
    sock = session_socket(resource)
    if sock is None or sock.fileno() < 0 or not _readable(sock):
        return None  # nothing to read (the usual case): the connection is up
    try:
        data = sock.recv(1, socket.MSG_PEEK | getattr(socket, "MSG_DONTWAIT", 0))
    except (BlockingIOError, InterruptedError):
        return None
    except OSError as exc:
        return _os_reason(exc)
    return None if data else "connection lost (closed by the instrument)"


def lost_reason(exc: BaseException, resource: Any) -> str | None:
    """Why ``exc`` (raised by I/O on ``resource``) means the connection is gone, or None
    (a timeout while the connection is up, or any other error)."""
    if isinstance(exc, LinkDown):
        return None
    if isinstance(exc, ConnectionError):
        return _os_reason(exc)
    if isinstance(exc, VisaIOError):
        if exc.error_code == constants.StatusCode.error_connection_lost:
            return "connection lost (VI_ERROR_CONN_LOST)"
        if exc.error_code == constants.StatusCode.error_timeout:
            return peer_closed(resource)
    return None


@contextmanager
def guard(resource: Any, lost: Callable[[str], Exception]) -> Iterator[None]:
    """Around I/O on ``resource``: a connection found closed before, or an error meaning it
    is gone (:func:`lost_reason`), raises ``lost(why)`` instead; other errors pass."""
    why = peer_closed(resource)
    cause: BaseException | None = None
    if why is None:
        try:
            yield
            return
        except Exception as e:
            why, cause = lost_reason(e, resource), e
            if why is None:
                raise
    raise lost(why) from cause


def drain_socket(resource: Any, budget_s: float = 0.5) -> None:
    """Read and drop whatever a raw socket session still holds, for at most ``budget_s`` (s)."""
    deadline = time.monotonic() + budget_s
    old = resource.timeout
    resource.timeout = 50.0  # ms
    try:
        while time.monotonic() < deadline:
            try:
                if not resource.read_raw():
                    return
            except Exception:  # noqa: BLE001 - a timeout (nothing left) or a dead connection
                return
    finally:
        resource.timeout = old


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ConnectionError):
        return "connection refused" if "connection refused" in str(exc) else "connection lost"
    if isinstance(exc, VisaIOError) and exc.error_code == constants.StatusCode.error_timeout:
        return "timeout"
    return " ".join(str(exc).split()) or type(exc).__name__


def safe_steps(name: str, steps: Sequence[tuple[str, Callable[[], None]]],
               log: logging.Logger) -> list[Exception]:
    """Run every safe-state step; after a lost connection the rest are not tried. Logs ONE
    warning naming the steps that could not be confirmed, e.g. ``X: safe state not confirmed
    (connection lost): output off ch1, ...``; returns the failures, oldest first."""
    failures: list[Exception] = []
    missed: list[str] = []
    for what, step in steps:
        if failures and isinstance(failures[-1], ConnectionError):
            missed.append(what)  # nothing can reach the instrument any more
            continue
        try:
            step()
        except Exception as e:  # noqa: BLE001 - the safe state must try every step
            failures.append(e)
            missed.append(what)
    if failures:
        lost = next((e for e in failures if isinstance(e, ConnectionError)), None)
        reason = _reason(lost or failures[0])
        log.warning("%s: safe state not confirmed (%s): %s", name, reason, ", ".join(missed))
    return failures
