"""Operating settings and safety limits of a hardware-in-the-loop bench, from one TOML file.

``[limits]`` bounds everything the bench may do; ``[operation]`` says what it does. Both
are checked against each other when the file is read, and every pulse request is checked
against the limits before any command reaches an instrument. Example::

    [limits]
    max_voltage_v = 2.0              # largest |V| ever sourced
    compliance_a = 1e-3              # current compliance of both SMU terminals
    max_pulse_width_s = 1e-3
    max_pulses_per_cell = 16         # per device in one update

    [operation]
    read_voltage_v = 0.2
    set_voltage_v = 1.2
    set_width_s = 1e-4
    reset_voltage_v = 1.2            # applied as -1.2 V
    reset_width_s = 1e-4
    nplc = 0.01                      # read integration, power-line cycles
    line_frequency_hz = 50
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..toml_io import check_keys, read_toml


@dataclass(frozen=True)
class Limits:
    """What the bench may never exceed."""

    max_voltage_v: float
    """Largest |V| sourced on any terminal, V."""
    compliance_a: float
    """Current compliance set on every SMU terminal, A."""
    max_pulse_width_s: float
    """Longest pulse, s."""
    max_pulses_per_cell: int
    """Most pulses one device may receive in one update request."""

    def __post_init__(self) -> None:
        for name in ("max_voltage_v", "compliance_a", "max_pulse_width_s"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ValueError(f"limits {name} = {value!r}: must be a finite number > 0")
        if not (isinstance(self.max_pulses_per_cell, int) and self.max_pulses_per_cell >= 1):
            raise ValueError(
                f"limits max_pulses_per_cell = {self.max_pulses_per_cell!r}: must be an integer >= 1"
            )


@dataclass(frozen=True)
class Operation:
    """Read and pulse settings."""

    read_voltage_v: float = 0.2
    """Read voltage of a binary '1' input, V."""
    set_voltage_v: float = 1.2
    """SET pulse amplitude (word line positive), V."""
    set_width_s: float = 1e-4
    """SET pulse width, s."""
    reset_voltage_v: float = 1.2
    """RESET pulse amplitude, applied with negative polarity, V (> 0 here)."""
    reset_width_s: float = 1e-4
    """RESET pulse width, s."""
    nplc: float = 0.01
    """Read integration time in power-line cycles."""
    line_frequency_hz: float = 50.0
    """Power-line frequency, Hz (integration time = nplc / line frequency)."""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ValueError(f"operation {f.name} = {value!r}: must be a finite number > 0")

    @property
    def read_time_s(self) -> float:
        return self.nplc / self.line_frequency_hz


@dataclass(frozen=True)
class HilSettings:
    limits: Limits
    operation: Operation

    def __post_init__(self) -> None:
        lim, op = self.limits, self.operation
        for name in ("read_voltage_v", "set_voltage_v", "reset_voltage_v"):
            if getattr(op, name) > lim.max_voltage_v:
                raise ValueError(f"operation {name} = {getattr(op, name)} V exceeds the limit "
                                 f"max_voltage_v = {lim.max_voltage_v} V")
        for name in ("set_width_s", "reset_width_s"):
            if getattr(op, name) > lim.max_pulse_width_s:
                raise ValueError(f"operation {name} = {getattr(op, name)} s exceeds the limit "
                                 f"max_pulse_width_s = {lim.max_pulse_width_s} s")
        if op.read_voltage_v >= min(op.set_voltage_v, op.reset_voltage_v):
            raise ValueError(f"operation read_voltage_v = {op.read_voltage_v} V must be below the SET and "
                             "RESET amplitudes (reads must not program)")


def _table(cls: type, values: dict[str, Any], where: str) -> Any:
    if not isinstance(values, dict):
        raise ValueError(f"{where}: must be a table, got {values!r}")
    check_keys(values, (f.name for f in dataclasses.fields(cls)), where)
    try:
        return cls(**values)
    except TypeError as exc:
        raise ValueError(f"{where}: {exc}") from None


def load_hil_settings(path: str | Path) -> HilSettings:
    """Read ``[limits]`` (all fields required) and ``[operation]`` from a TOML file."""
    data = read_toml(path, "limits file")
    check_keys(data, ("limits", "operation"), f"limits file {path}", what="table(s)")
    if "limits" not in data:
        raise ValueError(f"limits file {path}: needs a [limits] table")
    return HilSettings(_table(Limits, data["limits"], f"limits file {path} [limits]"),
                       _table(Operation, data.get("operation", {}), f"limits file {path} [operation]"))
