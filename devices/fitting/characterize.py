"""Device characterization: the potentiation/depression experiment and its tidy trace.

The standard pulse-response measurement of a memristor, as a lab runs it: start every
device at its low bound, then for each *cycle* apply ``N`` identical SET pulses
(potentiation branch) followed by ``N`` RESET pulses (depression branch), reading the
conductance after every pulse and once before each branch. The result is a
:class:`Trace`, one row per read, stored as a tidy CSV file::

    device,cycle,pulse,polarity,conductance_S
    0,0,0,set,1.0012e-05
    0,0,1,set,1.0903e-05
    ...

``pulse`` is the number of pulses applied in the branch before that read (0 = the
read before the first pulse), ``polarity`` is ``set`` or ``reset`` and
``conductance_S`` is the read conductance in siemens. The same file format holds
measured lab data; :func:`read_trace_csv` accepts branches of any length, branches
without a pulse-0 row (the branch then starts at its first row), and any integer
device and cycle ids. :mod:`devices.fitting` fits a :class:`~devices.sim.physics.DeviceModel`
to such a trace.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from ..sim.physics import DeviceModel
from ..sim.presets import DEFAULT_PRESET
from ..sim.simulated import SimulatedCrossbar

#: The CSV columns of a trace, in the order :meth:`Trace.to_csv` writes them.
TRACE_COLUMNS: tuple[str, ...] = ("device", "cycle", "pulse", "polarity", "conductance_S")
#: The two branch polarities: ``set`` (potentiation) and ``reset`` (depression).
POLARITIES: tuple[str, ...] = ("set", "reset")
#: Most rows (reads) one simulated experiment may produce: ``TRACE_ROW_BYTES`` each in
#: memory while it is built, about 1.3 GB at the limit, and about 2 us each to write as CSV.
MAX_TRACE_ROWS = 10_000_000
#: Peak memory per row of :func:`potentiation_depression` and :meth:`Trace.to_csv`, B (measured).
TRACE_ROW_BYTES = 128
#: Rows written per block by :meth:`Trace.to_csv` (bounds its memory).
CSV_BLOCK_ROWS = 65_536


class Branch(NamedTuple):
    """One branch of a trace: the reads of one device during one SET or RESET sweep."""

    device: int
    cycle: int
    polarity: str
    """``set`` or ``reset``."""
    conductance_S: np.ndarray
    """Read conductances in pulse order, S."""


@dataclass(frozen=True, eq=False)
class Trace:
    """A pulse-response trace: one row per conductance read (numpy columns of equal length).

    The columns are read-only numpy arrays; build a new trace (:meth:`take`) to select rows.
    """

    device: np.ndarray
    """Device id of each read (int64)."""
    cycle: np.ndarray
    """Cycle id of each read (int64)."""
    pulse: np.ndarray
    """Pulses applied in the branch before the read (int64, >= 0; 0 = before the first pulse)."""
    polarity: np.ndarray
    """``"set"`` or ``"reset"`` for each read (numpy unicode strings)."""
    conductance_S: np.ndarray
    """Read conductance, S (float64, finite, >= 0)."""
    source: str = field(default="")
    """Where the trace comes from (a file name, or the simulated preset); not a CSV column."""

    def __post_init__(self) -> None:
        cols = {
            "device": _as_int_column(self.device, "device"),
            "cycle": _as_int_column(self.cycle, "cycle"),
            "pulse": _as_int_column(self.pulse, "pulse"),
            "polarity": np.asarray(self.polarity, dtype=str).reshape(-1),
            "conductance_S": np.asarray(self.conductance_S, dtype=np.float64).reshape(-1),
        }
        lengths = {name: len(col) for name, col in cols.items()}
        if len(set(lengths.values())) != 1:
            raise ValueError(f"Trace: columns must have equal lengths, got {lengths}")
        if (cols["pulse"] < 0).any():
            raise ValueError("Trace: pulse must be >= 0")
        bad = ~np.isin(cols["polarity"], POLARITIES)
        if bad.any():
            raise ValueError(
                f"Trace: polarity must be one of {POLARITIES}, got {cols['polarity'][bad][0]!r}"
            )
        g = cols["conductance_S"]
        if not np.isfinite(g).all() or (g < 0).any():
            raise ValueError("Trace: conductance_S must be finite and >= 0 S")
        for name, col in cols.items():
            col.setflags(write=False)
            object.__setattr__(self, name, col)

    def __len__(self) -> int:
        return len(self.conductance_S)

    @property
    def devices(self) -> np.ndarray:
        """The distinct device ids, sorted."""
        return np.unique(self.device)

    @property
    def cycles(self) -> np.ndarray:
        """The distinct cycle ids, sorted."""
        return np.unique(self.cycle)

    def take(self, rows: np.ndarray) -> Trace:
        """A trace of the selected rows (a boolean mask or an index array)."""
        return Trace(
            device=self.device[rows], cycle=self.cycle[rows], pulse=self.pulse[rows],
            polarity=self.polarity[rows], conductance_S=self.conductance_S[rows], source=self.source,
        )

    def branch_rows(self) -> list[np.ndarray]:
        """Row indices of every branch (same device, cycle and polarity), each in pulse
        order; branches are listed in the order of their first row in the trace."""
        if len(self) == 0:
            return []
        pol = (self.polarity == "reset").astype(np.int64)
        keys = np.stack((self.device, self.cycle, pol), axis=1)
        _, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
        inverse = inverse.reshape(-1)
        order = np.lexsort((self.pulse, inverse))  # by branch, then pulse (stable)
        bounds = np.flatnonzero(np.diff(inverse[order])) + 1
        groups = np.split(order, bounds)
        # np.unique sorted the branches by key; list them by first appearance instead.
        by_first = np.argsort(first, kind="stable")
        return [groups[i] for i in by_first]

    def branches(self) -> Iterator[Branch]:
        """The branches ``(device, cycle, polarity, conductances)``; see :func:`iter_branches`."""
        for rows in self.branch_rows():
            i = rows[0]
            yield Branch(
                int(self.device[i]), int(self.cycle[i]), str(self.polarity[i]), self.conductance_S[rows]
            )

    def to_csv(self, path: str | Path, *, progress: bool = False) -> Path:
        """Write the trace as a tidy CSV file (header ``device,cycle,pulse,polarity,conductance_S``),
        in blocks of ``CSV_BLOCK_ROWS`` rows; ``progress`` shows a bar over rows (on stderr).

        Conductances are written with full precision (``repr``), so reading the file back
        gives exactly the same trace.
        """
        from tqdm.auto import tqdm

        path = Path(path)
        with path.open("w", encoding="utf-8", newline="") as fh, tqdm(
            total=len(self), desc=f"writing {path.name}", unit="row", disable=not progress, leave=False
        ) as bar:
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow(TRACE_COLUMNS)
            for start in range(0, len(self), CSV_BLOCK_ROWS):
                block = slice(start, start + CSV_BLOCK_ROWS)
                rows = zip(
                    self.device[block].tolist(), self.cycle[block].tolist(), self.pulse[block].tolist(),
                    self.polarity[block].tolist(), self.conductance_S[block].tolist(), strict=True,
                )
                writer.writerows((d, c, p, pol, repr(g)) for d, c, p, pol, g in rows)
                bar.update(min(CSV_BLOCK_ROWS, len(self) - start))
        return path


def iter_branches(trace: Trace) -> Iterator[Branch]:
    """Iterate over the branches of ``trace`` in order of first appearance.

    Yields ``Branch(device, cycle, polarity, conductance_S)`` named tuples, the
    conductances (S) sorted by pulse number.
    """
    return trace.branches()


# -- the experiment --------------------------------------------------------------------


def characterization_crossbar(
    model: DeviceModel | str | Path | None, *, devices: int = 1, seed: int = 0
) -> SimulatedCrossbar:
    """The simulated array that :func:`potentiation_depression` measures: ``devices`` rows,
    one column, every device at its low bound, float64. Useful to compare a fit with the
    simulator's true per-device parameters (``g_lo``, ``g_hi``, ``dp_up``, ... of ``G+``)."""
    _check_count("devices", devices)
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed = {seed!r}: must be an integer >= 0")
    return SimulatedCrossbar(
        int(devices), 1, model, seed=seed, init="min", dtype=torch.float64
    )


def potentiation_depression(
    model: DeviceModel | str | Path | None,
    *,
    pulses: int,
    cycles: int,
    devices: int = 1,
    seed: int = 0,
    progress: bool = False,
) -> Trace:
    """Simulate the potentiation/depression experiment on a :class:`SimulatedCrossbar`.

    ``devices`` cells (rows of a one-column array, all starting at ``g_min``) are measured
    in parallel. Each of the ``cycles`` cycles applies ``pulses`` single SET pulses, then
    ``pulses`` single RESET pulses, to the ``G+`` device of every cell, reading the
    conductances (noisy :meth:`~SimulatedCrossbar.read_conductances`) before each branch
    (``pulse`` 0) and after every pulse. The trace therefore has
    ``devices * cycles * 2 * (pulses + 1)`` rows, ordered by device, cycle, branch, pulse.

    Args:
        model: a :class:`DeviceModel`, a preset name or a preset file (None: default preset).
        pulses: pulses per branch, ``N >= 1``.
        cycles: SET/RESET cycles, ``>= 1``.
        devices: devices measured, ``>= 1``.
        seed: seed of the simulated array (devices and all noise).
        progress: show a progress bar over reads (on stderr), advancing after every read.

    Raises:
        ValueError: a count below 1, or more than ``MAX_TRACE_ROWS`` rows.
    """
    _check_count("pulses", pulses)
    _check_count("cycles", cycles)
    _check_count("devices", devices)
    rows = trace_rows(pulses, cycles, devices)
    if rows > MAX_TRACE_ROWS:
        raise ValueError(
            f"potentiation/depression: {devices} device(s) x {cycles} cycle(s) x 2 branches x {pulses + 1} "
            f"reads = {rows:,} rows, more than the {MAX_TRACE_ROWS:,} a simulated trace may hold; "
            "use fewer pulses, cycles or devices"
        )
    from tqdm.auto import tqdm

    xbar = characterization_crossbar(model, devices=devices, seed=seed)
    n, d, c = int(pulses), int(devices), int(cycles)
    reads = np.empty((c, 2, n + 1, d))
    counts = {
        sign: torch.zeros((2, d, 1), dtype=torch.int64).index_fill_(0, torch.tensor([0]), sign)
        for sign in (1, -1)
    }
    with tqdm(total=rows // d, desc="potentiation/depression", unit="read", disable=not progress) as bar:
        for cyc in range(c):
            for b, sign in enumerate((1, -1)):
                bar.set_postfix_str(f"cycle {cyc + 1}/{c} {POLARITIES[b]}", refresh=False)
                reads[cyc, b, 0] = xbar.read_conductances()[0, :, 0].cpu().numpy()
                bar.update()
                for k in range(1, n + 1):
                    xbar.pulse_devices(counts[sign])
                    reads[cyc, b, k] = xbar.read_conductances()[0, :, 0].cpu().numpy()
                    bar.update()
    # (cycle, branch, pulse, device) -> (device, cycle, branch, pulse)
    g = reads.transpose(3, 0, 1, 2)
    dev, cyc_id, br, pul = np.meshgrid(
        np.arange(d), np.arange(c), np.arange(2), np.arange(n + 1), indexing="ij"
    )
    if model is None:
        name = f"preset {DEFAULT_PRESET}"
    elif isinstance(model, DeviceModel):
        name = f"{model.step_model} DeviceModel"
    else:
        name = f"preset {model}"
    return Trace(
        device=dev.ravel(), cycle=cyc_id.ravel(), pulse=pul.ravel(),
        polarity=np.array(POLARITIES)[br.ravel()], conductance_S=g.ravel(),
        source=f"simulated potentiation/depression ({name}; seed {int(seed)})",
    )


def trace_rows(pulses: int, cycles: int, devices: int = 1) -> int:
    """Rows of the experiment's trace: ``devices * cycles * 2 * (pulses + 1)`` reads."""
    return int(devices) * int(cycles) * 2 * (int(pulses) + 1)


def _check_count(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} = {value!r}: must be an integer >= 1")


# -- reading CSV files -------------------------------------------------------------------


def read_trace_csv(path: str | Path) -> Trace:
    """Read a tidy trace CSV (see the module doc); details and errors in
    :func:`devices.fitting.trace_csv.read_trace_csv`."""
    from .trace_csv import read_trace_csv as read

    return read(path)


def _as_int_column(values: object, name: str) -> np.ndarray:
    arr = np.asarray(values).reshape(-1)
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        as_float = arr.astype(np.float64)
        if not (np.isfinite(as_float).all() and (as_float == np.round(as_float)).all()):
            raise ValueError(f"Trace: {name} must hold integers")
    return arr.astype(np.int64)


__all__ = [
    "MAX_TRACE_ROWS", "TRACE_ROW_BYTES", "Branch", "POLARITIES", "TRACE_COLUMNS", "Trace",
    "characterization_crossbar", "iter_branches", "potentiation_depression", "read_trace_csv", "trace_rows",
]
