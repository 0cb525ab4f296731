"""Keithley 707B/708B switching matrix (TSP): close/open crosspoints like ``1A05``
(slot 1-6, row A-H, column 01-12). Commands: ``docs/hil_protocol.md``.

Every switching operation is ONE message and one round trip: its statements, then
``waitcomplete(); print(errorqueue.count)``; a count > 0 drains the error queue and
raises :class:`InstrumentError`."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from pyvisa import constants
from pyvisa.errors import VisaIOError

from .base import Instrument, InstrumentError, log, parse_count

_CHANNEL = re.compile(r"([1-6])([A-H])(0[1-9]|1[0-2])")
SLOTS = {"707B": 6, "708B": 1}
"""Card slots per mainframe (707B/708B data sheet)."""


class Keithley707B(Instrument):
    """A Keithley 707B (6 slots) or 708B (1 slot) matrix in TSP mode. Every switching
    operation is one message ending ``waitcomplete(); print(errorqueue.count)``: one
    round trip that waits for the relays and reads the error count."""

    error_count_query = "print(errorqueue.count)"
    switch_tail = ("waitcomplete()", "print(errorqueue.count)")
    """Ends every switching message: wait for the relays, print the error count."""

    def _connect(self) -> None:
        idn = self.identity()
        found = re.search(r"70[78]B", idn.model.upper())
        if found is None:
            raise InstrumentError(None, f"unsupported model {idn.model!r} ({idn.raw!r}); this driver "
                                  "knows the Keithley 707B and 708B", "*IDN?", instrument=self.name)
        self.model = found.group(0)
        self.slots = SLOTS[self.model]

    def validate_channels(self, channels: Sequence[str] | str) -> list[str]:
        """Channel names, checked strictly (``1A01``: slot, row A-H, column 01-12; the slot
        must exist on this mainframe); duplicates dropped. ValueError on anything else."""
        names = [channels] if isinstance(channels, str) else list(channels)
        out: list[str] = []
        for name in names:
            m = _CHANNEL.fullmatch(name) if isinstance(name, str) else None
            if m is None or int(m.group(1)) > self.slots:
                raise ValueError(f"channel {name!r} refused: expected slot 1-{self.slots}, row A-H, "
                                 f"column 01-12, like '1A05' (the {self.model} has {self.slots} slot(s))")
            if name not in out:
                out.append(name)
        return out

    def _run(self, statements: Sequence[str]) -> None:
        """``statements; waitcomplete(); print(errorqueue.count)`` as one query (never
        retried); InstrumentError with the queued errors if the count is > 0.

        On the instrument a runtime error aborts the rest of its chunk, so no count is
        printed and the query times out: the error queue is then read (after a device
        clear), and its errors are raised from the timeout."""
        message = "; ".join([*statements, *self.switch_tail])
        with self.lock:
            try:
                reply = self.query(message)
            except VisaIOError as e:
                if e.error_code == constants.StatusCode.error_timeout:
                    self._diagnose_timeout(e)
                raise
            self.raise_counted_errors(parse_count(reply, message))

    def _diagnose_timeout(self, timeout: VisaIOError) -> None:
        """After a switching message got no reply: raise the queued errors, if any, from
        ``timeout`` (anything else failing here is logged; the caller re-raises ``timeout``)."""
        self._flush()
        try:
            self.check_errors()
        except InstrumentError as e:
            raise e from timeout
        except Exception as e:  # noqa: BLE001 - the timeout is the error to report
            log.warning("%s: reading the error queue after a timeout failed: %s", self.name, e)

    def switch(self, open_channels: Sequence[str] | str = (),
               close_channels: Sequence[str] | str = ()) -> None:
        """Open ``open_channels`` then close ``close_channels`` in ONE message::

            channel.open("1A01,1B03"); channel.close("1A02"); waitcomplete(); print(errorqueue.count)

        (a statement is left out when its list is empty; nothing is sent when both are).
        Names are validated before anything is sent (:meth:`validate_channels`); a name in
        both lists is refused. InstrumentError if the instrument counted errors. Never retried."""
        opens = self.validate_channels(open_channels)
        closes = self.validate_channels(close_channels)
        both = sorted(set(opens) & set(closes))
        if both:
            raise ValueError(f"channel(s) {', '.join(both)} refused: both opened and closed in one switch")
        statements = ([f'channel.open("{",".join(opens)}")'] if opens else []) + (
            [f'channel.close("{",".join(closes)}")'] if closes else [])
        if statements:
            self._run(statements)

    def close(self, channels: Sequence[str] | str | None = None) -> None:
        """Close these crosspoints (``switch(close_channels=channels)``: one message; a
        string is one channel; nothing is sent for an empty list). ``close()`` with no
        argument closes the VISA connection like every instrument's ``close()`` (see
        :meth:`disconnect`)."""
        if channels is None:
            self.disconnect()
            return
        self.switch(close_channels=channels)

    def open(self, channels: Sequence[str] | str) -> None:
        """Open these crosspoints (``switch(open_channels=channels)``: one message)."""
        self.switch(open_channels=channels)

    def open_all(self) -> None:
        """Open every crosspoint of every slot (one message, one round trip)."""
        self._run(['channel.open("allslots")'])

    def closed(self) -> list[str]:
        """The closed crosspoints (``[]`` when the reply is ``nil``)."""
        reply = self.query('print(channel.getclose("allslots"))', retry=self.read_retry)
        if reply in ("", "nil"):
            return []
        return [name.strip() for name in re.split(r"[;,]", reply) if name.strip()]

    def reset(self) -> None:
        """``reset()``: all channels open, settings to defaults; waits for completion (one
        message, like a switch)."""
        self._run(["reset()"])

    def clear_errors(self) -> None:
        """Empty the error queue without reading it."""
        with self.lock:
            self.write("errorqueue.clear()")

    def _drain_errors(self) -> tuple[list[tuple[int, str]], bool]:
        found: list[tuple[int, str]] = []
        reads = 0
        while reads < self.max_error_reads:
            count = parse_count(self._query(self.error_count_query), self.error_count_query)
            if count <= 0:
                return found, False
            for _ in range(min(count, self.max_error_reads - reads)):
                reads += 1
                fields = self._query("print(errorqueue.next())").split("\t")
                try:
                    code = int(float(fields[0]))
                except ValueError:
                    raise InstrumentError(None, f"malformed error-queue reply {fields!r}") from None
                if code != 0:
                    found.append((code, fields[1].strip() if len(fields) > 1 else ""))
        return found, True

    def _shutdown_steps(self) -> list[tuple[str, Callable[[], None]]]:
        return [("open all crosspoints", self.open_all)]
