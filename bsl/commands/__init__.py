"""Sub-commands of ``bsl``. Each module has ``register(subparsers)`` that adds its parser
and sets ``run`` (a function of the parsed arguments returning an exit status)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import device_response, emulator, energy, fit, inspect, plot, sweep, train

COMMANDS: list[Callable[[Any], None]] = [
    device_response.register,
    emulator.register,
    energy.register,
    fit.register,
    inspect.register,
    plot.register,
    sweep.register,
    train.register,
]
