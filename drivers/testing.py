"""Test helpers: the bundled pyvisa-sim models, and a scripted resource that records bytes.

* ``sim_library("b2900", tmp_dir)`` -> ``".../b2900.yaml@sim"`` for
  ``pyvisa.ResourceManager``. pyvisa caches one simulated library (and so one instrument
  state) per file path; copying the file into ``tmp_dir`` gives a fresh state.
* :class:`ScriptedResource` stands in for a pyvisa resource: it records every message
  (``log``) and answers queries from a script, so tests can assert the exact commands
  and count round trips (:attr:`ScriptedResource.queries`).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Mapping, Sequence
from importlib import resources
from pathlib import Path

from pyvisa import constants
from pyvisa.errors import VisaIOError

SIM_FILES = ("b2900", "k2450", "k707b")

Reply = str | Exception | Callable[[str], str]


def sim_file(name: str) -> Path:
    """Path of a bundled pyvisa-sim model (``b2900``, ``k2450``, ``k707b``)."""
    if name not in SIM_FILES:
        raise ValueError(f"no simulation file {name!r}; there are {', '.join(SIM_FILES)}")
    return Path(str(resources.files("drivers") / "sim" / f"{name}.yaml"))


def sim_library(name: str, fresh_dir: str | Path | None = None) -> str:
    """The ``ResourceManager`` argument for a bundled model; with ``fresh_dir``, of a copy
    there (a fresh instrument state)."""
    path = sim_file(name)
    if fresh_dir is not None:
        path = Path(shutil.copy(path, Path(fresh_dir) / path.name))
    return f"{path}@sim"


def visa_timeout() -> VisaIOError:
    """The exception pyvisa raises when a read times out."""
    return VisaIOError(constants.StatusCode.error_timeout)


# Replies of a healthy instrument with an empty error queue.
DEFAULT_REPLIES: Mapping[str, Reply] = {
    "*OPC?": "1",
    ":SYST:ERR:NEXT?": '+0,"No error"',
    ":SYST:ERR:COUN?": "+0",
    "print(errorqueue.count)": "0",
}

# Replies of a healthy instrument to the drivers' joined messages (regular expressions,
# matched whole): a 707B switching message, the B2900 trigger and end of a pulse train,
# the end of a 2450 pulse.
DEFAULT_PATTERNS: Sequence[tuple[str, Reply]] = (
    (r".*; waitcomplete\(\); print\(errorqueue\.count\)", "0"),
    (r":OUTP([12]) ON;:INIT \(@\1\);\*OPC\?", "1"),
    (r":OUTP([12]) OFF;:SOUR\1:FUNC:SHAP DC;:SENS\1:CURR:PROT:TRIP\?;:SYST:ERR:COUN\?", "0;+0"),
    (r":OUTP OFF;:SOUR:VOLT \S+;:SOUR:VOLT:ILIM:TRIP\?;:SYST:ERR:COUN\?", "0;+0"),
)


class ScriptedResource:
    """A fake message resource: ``write``/``query`` append ``(command, reply)`` to ``log``
    (reply ``None`` for writes); a query is answered by ``replies[command]`` (a string, an
    exception to raise, or a function of the command), else by :data:`DEFAULT_REPLIES`,
    else by the first of ``patterns`` then :data:`DEFAULT_PATTERNS` (regular expression,
    reply) matching the whole command, else ``KeyError``. A list of replies is consumed
    one per query (the last one stays)."""

    def __init__(self, replies: Mapping[str, Reply | list[Reply]] | None = None,
                 patterns: Sequence[tuple[str, Reply]] = ()) -> None:
        self.replies: dict[str, Reply | list[Reply]] = {**DEFAULT_REPLIES, **(replies or {})}
        self.patterns: list[tuple[str, Reply]] = [*patterns, *DEFAULT_PATTERNS]
        self.log: list[tuple[str, str | None]] = []
        self.timeout: float | None = 2000.0
        self.read_termination: str | None = None
        self.write_termination = "\r\n"
        self.closed = False
        self.clears = 0

    @property
    def commands(self) -> list[str]:
        """Every message sent, in order."""
        return [c for c, _ in self.log]

    @property
    def writes(self) -> list[str]:
        """The messages sent without waiting for a reply."""
        return [c for c, r in self.log if r is None]

    @property
    def queries(self) -> list[str]:
        """The messages that waited for a reply: one round trip each."""
        return [c for c, r in self.log if r is not None]

    def write(self, message: str) -> int:
        self.log.append((message, None))
        return len(message)

    def _reply(self, message: str) -> Reply | list[Reply]:
        if message in self.replies:
            return self.replies[message]
        for pattern, reply in self.patterns:
            if re.fullmatch(pattern, message):
                return reply
        raise KeyError(f"ScriptedResource has no reply for {message!r}")

    def query(self, message: str) -> str:
        reply = self._reply(message)
        if isinstance(reply, list):
            reply = reply.pop(0) if len(reply) > 1 else reply[0]
        if isinstance(reply, Exception):
            self.log.append((message, f"<{type(reply).__name__}>"))
            raise reply
        text = reply(message) if callable(reply) else reply
        self.log.append((message, text))
        return text

    def clear(self) -> None:
        self.clears += 1

    def close(self) -> None:
        self.closed = True
