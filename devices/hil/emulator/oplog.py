"""The emulator's operation log: one record per command, in memory and optionally as JSON lines.

A record (a dict) holds ``n`` (sequence number), ``t`` (Unix time, s), ``instrument``,
``command`` (the raw command), ``reply`` (or None), ``error`` (the error it queued, or
None), then the bench state after it: ``outputs`` (terminal -> on), ``levels_v``
(terminal -> DC level, V), ``closed`` (crosspoints like ``1A05``), and when something
happened ``pulses`` (list of ``{"source", "peak_v", "v_device", "width_s", "count",
"kind", "devices"}``, devices as ``[array, side, row, col]`` with side 0 = G+, 1 = G-)
and ``faults`` (list of strings).
"""

from __future__ import annotations

import json
import threading
from collections import Counter, deque
from pathlib import Path
from typing import Any, TextIO

DeviceKey = tuple[int, int, int, int]
"""(array, side, row, col); side 0 = G+, 1 = G-."""


class OpLog:
    """Thread-safe log with running safety aggregates.

    Args:
        path: JSON-lines file written (and flushed) one record per line, or None.
        max_records: keep at most this many records in memory (None: all).
    """

    def __init__(self, path: str | Path | None = None, max_records: int | None = None) -> None:
        self.records: deque[dict[str, Any]] = deque(maxlen=max_records)
        self._lock = threading.Lock()
        self._file: TextIO | None = Path(path).open("w", encoding="utf-8") if path else None
        self._count = 0
        self._max_v = 0.0
        self._max_width = 0.0
        self._totals: Counter[DeviceKey] = Counter()
        self._last: dict[str, Any] | None = None

    def __len__(self) -> int:
        return self._count

    def mark(self) -> int:
        """Sequence number of the next record: pass it as ``since`` to count from here."""
        return self._count

    def add(self, record: dict[str, Any]) -> dict[str, Any]:
        """Append ``record`` (numbered here), update the aggregates, write it out."""
        with self._lock:
            record = {"n": self._count, **record}
            self._count += 1
            self.records.append(record)
            self._last = record
            for term, on in record.get("outputs", {}).items():
                if on:
                    self._max_v = max(self._max_v, abs(record["levels_v"][term]))
            for p in record.get("pulses", ()):
                self._max_v = max(self._max_v, abs(p["peak_v"]))
                self._max_width = max(self._max_width, p["width_s"])
                for key, n in _effective(p):
                    self._totals[key] += n
            if self._file is not None:
                self._file.write(json.dumps(record) + "\n")
                self._file.flush()
            return record

    def close(self) -> None:
        """Close the JSON-lines file (records stay in memory)."""
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    # -- summaries --------------------------------------------------------------
    def max_abs_voltage(self) -> float:
        """Largest |V| applied: DC levels of outputs that were on, and pulse peaks, V."""
        return self._max_v

    def max_pulse_width(self) -> float:
        """Longest pulse (hardware train or software DC pulse), s; 0 if none."""
        return self._max_width

    def pulses_per_device(self, array: int | None = None, since: int | None = None) -> dict[DeviceKey, int]:
        """Effective SET + RESET pulses per device ``(array, side, row, col)``.

        ``array`` keeps one array; ``since`` (a :meth:`mark`) counts only later records
        (those must still be in memory). Sub-threshold pulses are not counted."""
        if since is None:
            totals = Counter(self._totals)
        else:
            kept = list(self.records)
            if since < self._count and (not kept or kept[0]["n"] > since):
                raise ValueError(f"since = {since}: those records are no longer kept in memory")
            totals = Counter()
            for r in kept:
                if r["n"] >= since:
                    for p in r.get("pulses", ()):
                        for key, n in _effective(p):
                            totals[key] += n
        return {k: n for k, n in sorted(totals.items()) if array is None or k[0] == array}

    def total_pulses(self) -> int:
        """All effective pulses on all devices."""
        return sum(self._totals.values())

    def final_state_safe(self) -> bool:
        """True when, after the last record, every output is off and no crosspoint is closed."""
        last = self._last
        if last is None:
            return True
        return not any(last.get("outputs", {}).values()) and not last.get("closed")


def _effective(pulse: dict[str, Any]) -> list[tuple[DeviceKey, int]]:
    if pulse["kind"] not in ("SET", "RESET"):
        return []
    return [((d[0], d[1], d[2], d[3]), int(pulse["count"])) for d in pulse["devices"]]
