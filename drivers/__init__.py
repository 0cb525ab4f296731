"""PyVISA instrument drivers (SMUs, switch matrices). They speak SCPI/TSP only; no learning.

The commands each driver sends are listed in ``docs/hil_protocol.md``; pyvisa-sim models
of the instruments are in ``drivers/sim/`` (see :mod:`drivers.testing`).
"""

from .base import (
    ComplianceError,
    ConnectionLost,
    Control,
    Identity,
    Instrument,
    InstrumentError,
)
from .keithley707b import Keithley707B
from .keithley2450 import Keithley2450
from .keysight_b2900 import B2900Channel, KeysightB2900
from .validators import strict_choice, strict_int_range, strict_range

__all__ = [
    "B2900Channel",
    "ComplianceError",
    "ConnectionLost",
    "Control",
    "Identity",
    "Instrument",
    "InstrumentError",
    "Keithley2450",
    "Keithley707B",
    "KeysightB2900",
    "strict_choice",
    "strict_int_range",
    "strict_range",
]
