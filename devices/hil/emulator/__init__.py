"""A simulated hardware-in-the-loop bench speaking SCPI/TSP on loopback TCP.

:class:`Emulator` serves an emulated Keysight B2912A (or two Keithley 2450s) and a
Keithley 707B switch matrix, wired to :class:`devices.SimulatedCrossbar` arrays as a
wiring file says, answering exactly the command subsets of ``docs/hil_protocol.md``.
Every command is logged (:class:`OpLog`); faults can be injected (:class:`Faults`); the
arrays can be kept in a state file across restarts (:mod:`devices.hil.emulator.state`).
"""

from .bench import Bench, Terminal
from .faults import Faults
from .oplog import OpLog
from .server import Emulator, loopback_host

__all__ = ["Bench", "Emulator", "Faults", "OpLog", "Terminal", "loopback_host"]
