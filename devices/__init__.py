"""The device layer: one crossbar interface, a simulated noisy memristor array, presets, the bench path.

Rooms: :mod:`devices.sim` (physics, step laws, presets, the simulated array),
:mod:`devices.hil` (bench, instrument crossbar, wiring, limits, journal, emulator),
:mod:`devices.fitting` (characterization and fitting). The names below are the public face.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .factory import Backend, BenchFiles, check_bench_files, check_shapes, open_crossbars
from .hil.journal import OPERATION_DTYPE
from .hil.resume_check import ArrayCheck, CheckRule, check_array, reprogram_array
from .host import available_memory, size_text
from .interface import SCHEMES, Crossbar, OpCounters, VerifyResult
from .sim.physics import STEP_MODELS, DeviceModel
from .sim.presets import DEFAULT_PRESET, PRESETS, get_preset, load_preset_file, preset_names, save_preset_file
from .sim.simulated import SimulatedCrossbar
from .toml_io import check_keys, read_toml, refuse, write_toml_tables


def hardware_errors() -> tuple[type[BaseException], ...]:
    """The exception types that mean an instrument or its connection failed: PyVISA's
    errors and :class:`drivers.InstrumentError` (imported on first call, not at import)."""
    import pyvisa.errors

    from drivers import InstrumentError

    return (pyvisa.errors.Error, InstrumentError)


if TYPE_CHECKING:
    from .hil.bench import HilBench
    from .hil.crossbar import InstrumentCrossbar
    from .hil.settings import HilSettings, load_hil_settings
    from .hil.wiring import Wiring, load_wiring

_LAZY = {
    "HilBench": ".hil.bench", "InstrumentCrossbar": ".hil.crossbar", "HilSettings": ".hil.settings",
    "load_hil_settings": ".hil.settings", "Wiring": ".hil.wiring", "load_wiring": ".hil.wiring",
}
"""The bench path, imported on first use: a simulator run never loads it."""


def __getattr__(name: str) -> Any:
    if name == "HARDWARE_ERRORS":  # lazily: importing pyvisa costs more than the rest of devices
        return hardware_errors()
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'devices' has no attribute {name!r}")


HARDWARE_ERRORS: tuple[type[BaseException], ...]
"""``hardware_errors()``, computed on first access."""

__all__ = [
    "Crossbar", "OpCounters", "VerifyResult", "SCHEMES", "DeviceModel", "STEP_MODELS",
    "DEFAULT_PRESET", "PRESETS", "get_preset", "load_preset_file", "preset_names",
    "save_preset_file", "SimulatedCrossbar", "ArrayCheck", "CheckRule", "check_array", "reprogram_array",
    "HARDWARE_ERRORS", "hardware_errors", "HilBench", "InstrumentCrossbar", "HilSettings", "Wiring",
    "load_hil_settings", "load_wiring", "OPERATION_DTYPE", "read_toml", "write_toml_tables", "check_keys",
    "refuse", "available_memory", "size_text",
    "Backend", "BenchFiles", "check_bench_files", "check_shapes", "open_crossbars",
]
