"""Fault injection for the emulator: slow, silent, garbled, dropped or hung instruments.

A TOML file holds them in a ``[faults]`` table, e.g.::

    [faults]
    latency_s = 0.05      # added before each reply, s
    timeout_after = 100   # after 100 messages, queries get no reply (writes still act)
    target = "smu"        # only the SMU(s); "matrix" or "" (every instrument)

Counts are messages (lines) received by one instrument, over all connections; a fault
is permanent once reached (``N = 0``: from the first message).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from devices.toml_io import check_keys, read_toml

TARGETS = ("", "smu", "matrix")
MAX_LATENCY_S = 60.0
COUNT_FIELDS = ("timeout_after", "garble_after", "drop_after", "hang_after")


@dataclass(frozen=True)
class Faults:
    """Which faults to inject (None: never)."""

    latency_s: float = 0.0
    """Delay added before each reply, s."""
    timeout_after: int | None = None
    """After N messages, queries are processed but never answered."""
    garble_after: int | None = None
    """After N messages, replies are replaced by non-ASCII bytes (same length, then ``\\n``)."""
    drop_after: int | None = None
    """After N messages, each further message closes the connection unprocessed."""
    hang_after: int | None = None
    """After N messages, messages are read and ignored; the connection stays open."""
    target: str = ""
    """Instrument the faults apply to: "smu" (both SMUs of a 2450 bench), "matrix", "" = all."""

    def __post_init__(self) -> None:
        lat = self.latency_s
        if isinstance(lat, bool) or not isinstance(lat, int | float) or not math.isfinite(lat) \
                or not 0 <= lat <= MAX_LATENCY_S:
            raise ValueError(f"faults: latency_s = {lat!r}: must be seconds in [0, {MAX_LATENCY_S}]")
        for name in COUNT_FIELDS:
            n = getattr(self, name)
            if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 0):
                raise ValueError(f"faults: {name} = {n!r}: must be an integer >= 0 (a message count)")
        if self.target not in TARGETS:
            raise ValueError(f"faults: target = {self.target!r}: choose one of {TARGETS}")

    @classmethod
    def from_dict(cls, table: dict[str, Any]) -> Faults:
        """From a ``[faults]`` table; unknown keys are refused."""
        check_keys(table, (f.name for f in fields(cls)), "faults", what="key(s)", known_as="known")
        return cls(**table)

    @classmethod
    def from_toml(cls, path: str | Path) -> Faults:
        """Read the ``[faults]`` table of a TOML file."""
        data = read_toml(path, "faults file")
        table = data.get("faults")
        if not isinstance(table, dict):
            raise ValueError(f"faults file {path}: expected a [faults] table")
        try:
            return cls.from_dict(table)
        except ValueError as exc:
            raise ValueError(f"faults file {path}: {exc}") from None

    def applies_to(self, instrument: str) -> bool:
        """Whether the faults hit ``instrument`` (smu, smu_sense or matrix)."""
        return not self.target or instrument.split("_")[0] == self.target

    @staticmethod
    def reached(after: int | None, count: int) -> bool:
        """Whether message number ``count`` (1-based) is past ``after``."""
        return after is not None and count > after
