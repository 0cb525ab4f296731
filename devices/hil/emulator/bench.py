"""The physical state of an emulated bench: crossbars, switch-matrix crosspoints, SMU terminals.

Electrical model (see ``docs/hil_protocol.md``): a device conducts when its word-line
pin is switched to one terminal row and its bit-line pin to the other; lines switched to
nothing float (no sneak paths). Current flows only while both SMU outputs are on; the
voltage across every selected device is ``V_drive - V_sense``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from threading import RLock
from typing import Any

import torch
from torch import Tensor

from devices.hil.wiring import MATRIX_ROWS, PINS_PER_SLOT, SLOTS, Wiring, crosspoint
from devices.sim.presets import get_preset
from devices.sim.simulated import SimulatedCrossbar

from .oplog import OpLog

TERMINALS = ("drive", "sense")


@dataclass
class Terminal:
    """One SMU channel as wired to the bench (levels in V, currents in A, times in s)."""

    name: str
    default_compliance_a: float = 1e-4
    output: bool = False
    level_v: float = 0.0
    compliance_a: float = 1e-4
    shape: str = "DC"
    peak_v: float = 0.0
    width_s: float = 1e-4
    delay_s: float = 0.0
    count: int = 1
    trip: bool = False
    settings: dict[str, Any] = field(default_factory=dict)
    """Other instrument settings that do not change the physics (function, NPLC)."""

    def reset(self) -> None:
        """Power-on state: output off, 0 V, default compliance, DC shape."""
        self.output, self.level_v, self.compliance_a = False, 0.0, self.default_compliance_a
        self.shape, self.peak_v, self.width_s, self.delay_s, self.count = "DC", 0.0, 1e-4, 0.0, 1
        self.trip = False
        self.settings.clear()


@dataclass
class _Stress:
    """An over-threshold DC condition in progress (becomes one pulse when it ends)."""

    key: tuple[float, frozenset[tuple[str, int]]]
    start: float
    v_device: float
    peak_v: float
    masks: list[Tensor]


class Bench:
    """Simulated arrays, closed crosspoints and the two terminals, behind one lock.

    Args:
        wiring: the bench wiring (pins of every array, terminal rows).
        preset: device preset name or preset file for every array.
        seed: array ``k`` is ``SimulatedCrossbar(..., seed=seed + k)``.
        set_threshold_v / reset_threshold_v: device voltage (V) from which a pulse SETs
            (``V >= set``) or RESETs (``V <= -reset``); smaller voltages disturb nothing.
        log: where operations are recorded (a fresh in-memory :class:`OpLog` by default).
        init_spread: devices start uniformly within ``mid +- init_spread / 2`` of their
            range, as ``bsl train``'s simulated arrays do (0 = exactly mid-range).
    """

    def __init__(self, wiring: Wiring, preset: str = "rram", seed: int = 0, *,
                 set_threshold_v: float = 0.8, reset_threshold_v: float = 0.8,
                 log: OpLog | None = None, init_spread: float = 0.0) -> None:
        for name, v in (("set_threshold_v", set_threshold_v), ("reset_threshold_v", reset_threshold_v)):
            if not (math.isfinite(v) and 0 < v <= 210):
                raise ValueError(f"{name} = {v!r} V: must lie in (0, 210]")
        model = get_preset(preset)
        self.wiring = wiring
        self.arrays = [SimulatedCrossbar(a.rows, a.cols, model, seed=seed + k, init_spread=init_spread)
                       for k, a in enumerate(wiring.arrays)]
        self.pins: dict[int, tuple[int, str, int]] = {}
        """pin -> (array k, "word" | "plus" | "minus", line index)."""
        for k, a in enumerate(wiring.arrays):
            for kind, pins in (("word", a.word_line_pins), ("plus", a.plus_pins), ("minus", a.minus_pins)):
                self.pins.update({p: (k, kind, i) for i, p in enumerate(pins)})
        self.set_threshold_v, self.reset_threshold_v = float(set_threshold_v), float(reset_threshold_v)
        self.closed: set[tuple[str, int]] = set()
        """Closed crosspoints as (matrix row letter, pin)."""
        self.terminals = {name: Terminal(name) for name in TERMINALS}
        self.log = log if log is not None else OpLog()
        self.lock = RLock()
        self._stress: _Stress | None = None
        self._shorted: set[int] = set()
        self._pulses: list[dict[str, Any]] = []
        self._faults: list[str] = []
        self.version = 0
        """Counts the commands that moved devices (what the state file keeper watches)."""

    @property
    def drive(self) -> Terminal:
        return self.terminals["drive"]

    @property
    def sense(self) -> Terminal:
        return self.terminals["sense"]

    # -- topology -----------------------------------------------------------------
    def closed_names(self) -> list[str]:
        """Closed crosspoints as 707B channel names, sorted."""
        return sorted(crosspoint(r, p) for r, p in self.closed)

    def shorted_pins(self) -> set[int]:
        """Pins closed to both the drive and the sense row."""
        rows = self.wiring.drive_row, self.wiring.sense_row
        return {p for r, p in self.closed if r == rows[0] and (rows[1], p) in self.closed}

    def selection(self) -> list[Tensor]:
        """Per array, a bool mask ``(2, rows, cols)`` of devices between drive and sense pins."""
        d = {p for r, p in self.closed if r == self.wiring.drive_row}
        s = {p for r, p in self.closed if r == self.wiring.sense_row}
        masks = []
        for a in self.wiring.arrays:
            def on(pins: tuple[int, ...], side: set[int]) -> Tensor:
                return torch.tensor([p in side for p in pins], dtype=torch.bool)
            wd, ws = on(a.word_line_pins, d), on(a.word_line_pins, s)
            sides = []
            for bit in (a.plus_pins, a.minus_pins):
                bd, bs = on(bit, d), on(bit, s)
                sides.append((wd[:, None] & bs[None, :]) | (ws[:, None] & bd[None, :]))
            masks.append(torch.stack(sides))
        return masks

    def device_voltage(self, drive_v: float | None = None, sense_v: float | None = None) -> float:
        """Voltage across selected devices, V: 0 unless both outputs are on."""
        if not (self.drive.output and self.sense.output):
            return 0.0
        dv = self.drive.level_v if drive_v is None else drive_v
        sv = self.sense.level_v if sense_v is None else sense_v
        return dv - sv

    # -- physics --------------------------------------------------------------------
    def measure_current(self, terminal: str) -> float:
        """What ``terminal`` reads, A: ``I = sum(G) (V_drive - V_sense)`` over the selected
        devices (noisy read) flows out of the drive HI (``+I``) into the sense HI (``-I``).

        Clamped to the smaller compliance; trip flags of both terminals are refreshed."""
        v = self.device_voltage()
        if v == 0.0:
            i_true = 0.0
        elif self.shorted_pins():
            i_true = math.copysign(math.inf, v)
        else:
            i_true = v * sum(float(g.read_conductances()[m].double().sum())
                             for g, m in zip(self.arrays, self.selection(), strict=True) if bool(m.any()))
        i = self._limit(i_true)
        return i if terminal == "drive" else -i

    def _limit(self, i_true: float) -> float:
        limit = min(self.drive.compliance_a, self.sense.compliance_a)
        for t in self.terminals.values():
            t.trip = abs(i_true) > t.compliance_a
        return max(-limit, min(limit, i_true))

    def pulse_train(self, terminal: str) -> None:
        """Run the hardware pulse train of ``terminal`` (PULS shape, output on)."""
        t = self.terminals[terminal]
        if t.shape != "PULS" or not t.output:
            return
        if terminal == "drive":
            v = self.device_voltage(drive_v=t.peak_v)
        else:
            v = self.device_voltage(sense_v=t.peak_v)
        self._apply(v, t.peak_v, t.width_s, t.count, self.selection(), "train")

    def _apply(self, v: float, peak_v: float, width_s: float, count: int, masks: list[Tensor],
               source: str) -> None:
        """``count`` pulses of ``v`` (V across devices) on the ``masks`` devices; logged."""
        if v == 0.0 or self.shorted_pins():
            if v != 0.0:
                self._faults.append("pulse into a drive-sense short: devices not pulsed")
            masks = [torch.zeros_like(m) for m in masks]
            self._limit(math.copysign(math.inf, v) if v != 0.0 else 0.0)
        else:
            g = sum(float(a.conductances()[m].double().sum())
                    for a, m in zip(self.arrays, masks, strict=True))
            self._limit(g * v)
        sign = 1 if v >= self.set_threshold_v else -1 if v <= -self.reset_threshold_v else 0
        devices: list[list[int]] = []
        for k, (a, m) in enumerate(zip(self.arrays, masks, strict=True)):
            if not bool(m.any()):
                continue
            devices += [[k, *map(int, idx)] for idx in torch.nonzero(m)]
            if sign:
                a.pulse_devices(m.to(torch.int64) * (sign * count))
                self.version += 1
        self._pulses.append({"source": source, "peak_v": peak_v, "v_device": v, "width_s": width_s,
                             "count": count, "kind": ("RESET", "none", "SET")[sign + 1], "devices": devices})

    def _update_stress(self) -> None:
        """Software pulses: an over-threshold DC condition ends as one pulse when it changes."""
        now = time.monotonic()
        v = self.device_voltage()
        key = (v, frozenset(self.closed))
        st = self._stress
        if st is not None and st.key != key:
            self._stress = None
            self._apply(st.v_device, st.peak_v, now - st.start, 1, st.masks, "dc")
        over = v >= self.set_threshold_v or v <= -self.reset_threshold_v
        if self._stress is None and over and not self.shorted_pins():
            self._stress = _Stress(key, now, v, self.drive.level_v, self.selection())

    # -- matrix -----------------------------------------------------------------------
    @staticmethod
    def parse_crosspoint(name: str) -> tuple[str, int]:
        """``1A05`` -> ("A", 4); ValueError for a bad name."""
        n = name.strip()
        if (len(n) == 4 and n[0].isdigit() and 1 <= int(n[0]) <= SLOTS and n[1] in MATRIX_ROWS
                and n[2:].isdigit() and 1 <= int(n[2:]) <= PINS_PER_SLOT):
            return n[1], (int(n[0]) - 1) * PINS_PER_SLOT + int(n[2:]) - 1
        raise ValueError(f"invalid channel {name!r}")

    # -- bookkeeping --------------------------------------------------------------------
    def commit(self, instrument: str, command: str, reply: str | None, error: str | None) -> None:
        """After every command: end/start software pulses, detect shorts, log the state."""
        self._update_stress()
        shorted = self.shorted_pins()
        if shorted - self._shorted:
            for t in self.terminals.values():
                t.trip = True
            self._faults.append(f"drive and sense rows shorted on pin(s) {sorted(shorted)}")
        self._shorted = shorted
        self.record(instrument, command, reply, error)

    def record(self, instrument: str, command: str, reply: str | None = None, error: str | None = None,
               fault: str | None = None) -> None:
        """Append one log record with the current state and any pending pulses/faults."""
        if fault:
            self._faults.append(fault)
        rec: dict[str, Any] = {
            "t": time.time(), "instrument": instrument, "command": command, "reply": reply, "error": error,
            "outputs": {k: t.output for k, t in self.terminals.items()},
            "levels_v": {k: t.level_v for k, t in self.terminals.items()},
            "closed": self.closed_names(),
        }
        if self._pulses:
            rec["pulses"], self._pulses = self._pulses, []
        if self._faults:
            rec["faults"], self._faults = self._faults, []
        self.log.add(rec)
