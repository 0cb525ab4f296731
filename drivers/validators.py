"""Strict validators of instrument settings: a value outside the allowed range raises
``ValueError`` naming the parameter, the value, the unit and the range; nothing is clipped."""

from __future__ import annotations

import math
import numbers
import operator
from dataclasses import dataclass
from typing import Any, Protocol


class Validator(Protocol):
    """Returns the value to send, or raises ``TypeError``/``ValueError`` naming ``name``."""

    def __call__(self, value: Any, name: str) -> Any: ...


def _real(value: Any, name: str, unit: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number ({unit}), got {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{name} = {value!r} {unit} refused: not a finite number")
    return v


@dataclass(frozen=True)
class StrictRange:
    """A float in ``[lo, hi]`` (unit ``unit``); anything else is refused, never clipped."""

    lo: float
    hi: float
    unit: str

    def __call__(self, value: Any, name: str) -> float:
        v = _real(value, name, self.unit)
        if not self.lo <= v <= self.hi:
            raise ValueError(f"{name} = {v!r} {self.unit} refused: allowed range is "
                             f"[{self.lo!r}, {self.hi!r}] {self.unit} (values are never clipped)")
        return v


@dataclass(frozen=True)
class StrictIntRange:
    """An integer in ``[lo, hi]``; floats (even ``3.0``) and bools are refused."""

    lo: int
    hi: int
    unit: str = ""

    def __call__(self, value: Any, name: str) -> int:
        if isinstance(value, bool):
            raise TypeError(f"{name} must be an integer, got {value!r}")
        try:
            v = operator.index(value)
        except TypeError:
            raise TypeError(f"{name} must be an integer, got {value!r}") from None
        if not self.lo <= v <= self.hi:
            unit = f" {self.unit}" if self.unit else ""
            raise ValueError(f"{name} = {v!r}{unit} refused: allowed range is [{self.lo}, {self.hi}]{unit}")
        return v


@dataclass(frozen=True)
class StrictChoice:
    """One of ``choices`` (compared with ``==``, bools refused)."""

    choices: tuple[Any, ...]
    unit: str = ""

    def __call__(self, value: Any, name: str) -> Any:
        if isinstance(value, bool) or value not in self.choices:
            unit = f" {self.unit}" if self.unit else ""
            raise ValueError(f"{name} = {value!r}{unit} refused: allowed values are "
                             f"{', '.join(map(repr, self.choices))}")
        return value


def strict_range(lo: float, hi: float, unit: str) -> StrictRange:
    """Validator: a finite float in ``[lo, hi]`` ``unit``."""
    return StrictRange(float(lo), float(hi), unit)


def strict_int_range(lo: int, hi: int, unit: str = "") -> StrictIntRange:
    """Validator: an integer in ``[lo, hi]``."""
    return StrictIntRange(lo, hi, unit)


def strict_choice(*choices: Any, unit: str = "") -> StrictChoice:
    """Validator: one of ``choices``."""
    return StrictChoice(tuple(choices), unit)


def format_number(value: int | float) -> str:
    """How numbers go on the wire: ``repr`` of a float (``1e-05``, ``-2.0``), ``str`` of an int."""
    if isinstance(value, bool):
        raise TypeError(f"refusing to send a bool as a number: {value!r}")
    if isinstance(value, numbers.Integral):
        return str(int(value))
    return repr(float(value))
