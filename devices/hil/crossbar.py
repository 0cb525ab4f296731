"""The crossbar interface on bench instruments: :class:`InstrumentCrossbar`, one array of a
:class:`~devices.hil.bench.HilBench` (topology, superposition reads, pulses and safety are
described in :mod:`devices.hil.bench`). Every operation is journaled (:mod:`devices.hil.journal`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..interface import Crossbar, OpCounters, Scheme
from ..sim.physics import DeviceModel
from .bench import HilBench
from .journal import Journal


class InstrumentCrossbar(Crossbar):
    """Crossbar ``index`` of the bench's wiring, behind the instruments.

    ``model`` supplies the nominal device figures the learning engine needs (``g_min``,
    ``g_max``, step sizes), e.g. a preset fitted with ``bsl fit`` to this array."""

    def __init__(self, bench: HilBench, index: int, model: DeviceModel, *,
                 scheme: Scheme = "push_pull") -> None:
        self.bench, self.index, self.model, self.scheme = bench, index, model, scheme
        self.array = bench.wiring.arrays[index]
        self.rows, self.cols = self.array.rows, self.array.cols
        self.device, self.dtype = torch.device("cpu"), torch.float32  # measured in float64, returned in this
        self.counters, self.journal = OpCounters(), Journal(index)
        bench.attach()
        self._open = True
        op = bench.settings.operation
        self._v_read, self._t_read = op.read_voltage_v, op.read_time_s
        self._bits = [(j, 0, p) for j, p in enumerate(self.array.plus_pins)] + \
            [(j, 1, p) for j, p in enumerate(self.array.minus_pins)]  # (column, device, pin) per bit line

    @property
    def g_bounds(self) -> tuple[float, float]:
        return self.model.g_min, self.model.g_max

    @property
    def nominal_steps(self) -> tuple[float, float]:
        return self.model.dw_up, self.model.dw_down

    @property
    def v_read(self) -> float:
        return self._v_read

    @property
    def max_pulses_per_update(self) -> int:
        return self.bench.settings.limits.max_pulses_per_cell

    def description(self) -> dict[str, Any]:
        s = self.bench.settings
        return {**super().description(), "instruments": self.bench.identities, "array": self.index,
                "pins": {"word": list(self.array.word_line_pins), "plus": list(self.array.plus_pins),
                         "minus": list(self.array.minus_pins)},
                "limits": vars(s.limits), "operation": vars(s.operation), "model": self.model.to_dict()}

    # -- reads --------------------------------------------------------------------
    def read_forward(self, voltages: Tensor) -> Tensor:
        v = self._within_limits(self._check_voltages(voltages, self.rows, "row"))
        out = torch.zeros((v.shape[0], self.cols), dtype=torch.float64)
        a, outputs = self.array, self._bits
        with self.bench.operation():  # on any error: safe state, then the error
            for b in range(v.shape[0]):
                for level, sign, lines in _levels(v[b]):
                    currents = self._measure_lines([a.word_line_pins[i] for i in lines], outputs, level)
                    for (j, device, _), current in zip(outputs, currents, strict=True):
                        out[b, j] += sign * (current if device == 0 else -current)
            self.bench.idle()
        self._count_reads(v)
        return out.to(self.dtype)

    def read_backward(self, voltages: Tensor) -> Tensor:
        v = self._within_limits(self._check_voltages(voltages, self.cols, "column"))
        out = torch.zeros((v.shape[0], self.rows), dtype=torch.float64)
        a = self.array
        outputs = [(i, -1, a.word_line_pins[i]) for i in range(self.rows)]
        with self.bench.operation():
            for b in range(v.shape[0]):
                for level, sign, lines in _levels(v[b]):
                    for device, pins in ((0, a.plus_pins), (1, a.minus_pins)):
                        currents = self._measure_lines([pins[j] for j in lines], outputs, level)
                        for (i, _, _), current in zip(outputs, currents, strict=True):
                            out[b, i] += sign * (current if device == 0 else -current)
            self.bench.idle()
        self._count_reads(v)
        return out.to(self.dtype)

    def read_conductances(self, rows: Sequence[int] | None = None) -> Tensor:
        """Every device, S; with ``rows``, only the devices of those word lines (others NaN)."""
        lines = sorted(set(range(self.rows) if rows is None else map(int, rows)))
        if lines and not 0 <= lines[0] <= lines[-1] < self.rows:
            raise ValueError(f"rows {lines}: the word lines of this array are 0..{self.rows - 1}")
        g = torch.full((2, self.rows, self.cols), torch.nan, dtype=torch.float64)
        a, outputs = self.array, self._bits
        with self.bench.operation():
            for i in lines:
                currents = self._measure_lines([a.word_line_pins[i]], outputs, self._v_read, row=i)
                for (j, device, _), current in zip(outputs, currents, strict=True):
                    g[device, i, j] = current / self._v_read
            self.bench.idle()
        self.counters.cell_reads += 2 * len(lines) * self.cols
        return g.to(self.dtype)

    def _measure_lines(self, drive_pins: list[int], outputs: list[tuple[int, int, int]], level: float,
                       row: int = -1) -> list[float]:
        """Drive ``drive_pins`` at ``level``; measure each output pin in turn on sense (inside
        the caller's :meth:`HilBench.operation`; lines switch under the read voltage)."""
        currents = []
        bench = self.bench
        for index, device, pin in outputs:
            bench.connect(drive_pins, [pin])
            current = bench.measure(level)
            currents.append(current)
            col = index if device >= 0 else -1
            r = row if device >= 0 else index
            self.journal.record(b"read", row=r, col=col, device=device, voltage=level,
                                width=self._t_read, current=current)
        return currents

    def _within_limits(self, v: Tensor) -> Tensor:
        """The voltages in float64, refused before anything is sent if any exceeds the limit."""
        v = v.to(torch.float64)
        limit = self.bench.settings.limits.max_voltage_v
        peak = float(v.abs().max()) if v.numel() else 0.0
        if not peak <= limit:  # also refuses NaN
            raise ValueError(f"read voltage {peak} V exceeds the limit max_voltage_v = {limit} V: "
                             "nothing was sent")
        return v

    def _count_reads(self, v: Tensor) -> None:
        self.counters.vector_reads += int(v.shape[0])
        self.counters.macs += int(v.shape[0]) * self.rows * self.cols

    # -- pulses -------------------------------------------------------------------
    def pulse_devices(self, counts: Tensor) -> None:
        counts = self._check_counts(counts, (2, self.rows, self.cols))
        limit = self.max_pulses_per_update
        worst = int(counts.abs().max()) if counts.numel() else 0
        if worst > limit:
            raise ValueError(f"{worst} pulses requested for one device; the limits file allows "
                             f"{limit} (max_pulses_per_cell): nothing was sent")
        op = self.bench.settings.operation
        a = self.array
        bench = self.bench
        with bench.operation():  # on any error: safe state, then the error
            for i in range(self.rows):
                groups: dict[int, list[tuple[int, int]]] = {}
                for device in (0, 1):
                    for j in torch.nonzero(counts[device, i]).flatten().tolist():
                        groups.setdefault(int(counts[device, i, j]), []).append((device, j))
                for n, cells in sorted(groups.items()):
                    v, width = (op.set_voltage_v, op.set_width_s) if n > 0 else \
                        (-op.reset_voltage_v, op.reset_width_s)
                    bits = [(a.plus_pins if d == 0 else a.minus_pins)[j] for d, j in cells]
                    bench.connect([a.word_line_pins[i]], bits)
                    bench.pulse(v, width, abs(n))
                    for d, j in cells:
                        self.journal.record(b"pulse", row=i, col=j, device=d, voltage=v, width=width,
                                            count=abs(n))
                    self._count(n, len(cells))
            bench.idle()

    def _count(self, n: int, devices: int) -> None:
        """Count pulses as they are sent (a failure midway leaves true counters)."""
        if n > 0:
            self.counters.set_pulses += n * devices
        else:
            self.counters.reset_pulses += -n * devices

    def drain_operations(self) -> np.ndarray:
        return self.journal.drain()

    def close(self) -> None:
        if self._open:
            self._open = False
            self.bench.release()


def _levels(v: Tensor) -> list[tuple[float, float, list[int]]]:
    """``(|level|, sign, lines)`` groups of the non-zero entries of ``v`` (superposition)."""
    groups: dict[tuple[float, float], list[int]] = {}
    for index in torch.nonzero(v).flatten().tolist():
        value = float(v[index])
        groups.setdefault((abs(value), 1.0 if value > 0 else -1.0), []).append(index)
    return [(level, sign, lines) for (level, sign), lines in sorted(groups.items())]
