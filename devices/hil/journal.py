"""The per-operation journal of instrument-backed arrays (written into a run's trace file).

One row per instrument operation, in the spirit of ArC2's crosspoint time series.
"""

from __future__ import annotations

import time

import numpy as np

OPERATION_DTYPE = np.dtype([
    ("time", "f8"), ("step", "i8"), ("layer", "i4"), ("row", "i4"), ("col", "i4"), ("device", "i1"),
    ("op", "S10"), ("voltage", "f8"), ("width", "f8"), ("count", "i4"), ("current", "f8"),
])
"""``time`` s since 1970 UTC; ``step`` training batch (-1 outside training); ``row`` /
``col`` the cell (-1: several lines at once); ``device`` 0 = G+, 1 = G-, -1 = the pair;
``op`` ``read``, ``pulse`` or ``pulse-read``; ``voltage`` V; ``width`` s (pulse width, or
a read's integration time); ``count`` pulses in the train (1 for a read); ``current`` A
(NaN when nothing was measured)."""
OPERATIONS = (b"read", b"pulse", b"pulse-read")


class Journal:
    """Collects operation rows until the run's recorder takes them (:meth:`drain`)."""

    def __init__(self, layer: int) -> None:
        self.layer = layer
        self.step = -1
        self._rows: list[tuple[object, ...]] = []

    def record(self, op: bytes, *, row: int, col: int, device: int, voltage: float, width: float,
               count: int = 1, current: float = float("nan")) -> None:
        self._rows.append((time.time(), self.step, self.layer, row, col, device, op, voltage, width, count,
                           current))

    def drain(self) -> np.ndarray:
        """The rows recorded since the last call, as an ``OPERATION_DTYPE`` array."""
        rows, self._rows = self._rows, []
        return np.array(rows, dtype=OPERATION_DTYPE)

    def __len__(self) -> int:
        return len(self._rows)
