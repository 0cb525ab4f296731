"""The device layer: one crossbar interface, a simulated noisy memristor array, presets, fitting."""

from .interface import SCHEMES, Crossbar, OpCounters, VerifyResult
from .physics import STEP_MODELS, DeviceModel
from .presets import DEFAULT_PRESET, PRESETS, get_preset, load_preset_file, preset_names, save_preset_file
from .resume_check import ArrayCheck, CheckRule, check_array, reprogram_array
from .simulated import SimulatedCrossbar

__all__ = [
    "Crossbar", "OpCounters", "VerifyResult", "SCHEMES", "DeviceModel", "STEP_MODELS",
    "DEFAULT_PRESET", "PRESETS", "get_preset", "load_preset_file", "preset_names",
    "save_preset_file", "SimulatedCrossbar", "ArrayCheck", "CheckRule", "check_array", "reprogram_array",
]
