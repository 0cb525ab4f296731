"""The crossbar implementations that the contract suite (``test_crossbar_contract.py``) runs against.

Every entry of :data:`FACTORIES` builds a fresh :class:`devices.Crossbar` whose devices sit
mid-range (away from both bounds), so that a few pulses in either direction move every free
device. The contract uses only the public :class:`~devices.interface.Crossbar` interface
(never the simulator's noise-free ``conductances()``), so an instrument-backed array joins
the suite by appending one :class:`CrossbarFactory` here, e.g.::

    CrossbarFactory(
        name="probe-station-32x32",
        build=lambda rows, cols, scheme: InstrumentCrossbar(..., rows=rows, cols=cols, scheme=scheme),
        exact=False,              # real reads are noisy
        ideal=False,              # real steps are nonlinear, some devices may be stuck
        max_shape=(32, 32),       # what the chip offers
        current_atol=1e-9,        # amplifier offset at zero input, A
    )

The contract never asks for arrays larger than ``max_shape`` (tests skip otherwise).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass

from devices import Crossbar, SimulatedCrossbar


@dataclass(frozen=True)
class CrossbarFactory:
    """How to build one crossbar implementation, and what the contract may expect of it."""

    name: str
    """Test id."""
    build: Callable[[int, int, str], Crossbar]
    """``build(rows, cols, scheme)`` -> a fresh crossbar with every device mid-range."""
    exact: bool
    """Reads and steps are deterministic and noise-free: results are compared exactly
    (up to float rounding) instead of statistically."""
    ideal: bool
    """Linear, symmetric steps and no stuck devices: program-and-verify must reach every
    reachable target."""
    max_shape: tuple[int, int] = (1 << 16, 1 << 16)
    """Largest ``(rows, cols)`` the implementation offers."""
    current_atol: float = 0.0
    """Largest current (A) a read may report for all-zero input voltages."""

    def __call__(self, rows: int, cols: int, scheme: str = "push_pull") -> Crossbar:
        return self.build(rows, cols, scheme)


def through_emulator(preset: str, seed: int) -> Callable[[int, int, str], Crossbar]:
    """An :class:`~devices.hil.crossbar.InstrumentCrossbar` driving the bench emulator over TCP
    (pyvisa-py, the real drivers): the whole hardware path, with a simulated array behind
    it. Each build starts its own emulator, stopped when the crossbar is collected."""

    def build(rows: int, cols: int, scheme: str) -> Crossbar:
        from devices import HilBench, InstrumentCrossbar
        from devices.hil.emulator import Emulator
        from devices.hil.settings import HilSettings, Limits, Operation
        from devices.hil.wiring import ArrayWiring, Wiring
        from devices.sim.presets import get_preset

        pins = list(range(rows + 2 * cols))
        array = ArrayWiring(rows, cols, tuple(pins[:rows]), tuple(pins[rows:rows + cols]),
                            tuple(pins[rows + cols:]))
        emulator = Emulator(Wiring(smu="", matrix="", arrays=(array,)), preset=preset, seed=seed)
        resources = emulator.start()
        wiring = Wiring(smu=resources["smu"], matrix=resources["matrix"], arrays=(array,))
        limits = Limits(max_voltage_v=2.0, compliance_a=0.05, max_pulse_width_s=1e-3, max_pulses_per_cell=64)
        bench = HilBench.open(wiring, HilSettings(limits, Operation()), "@py")
        crossbar = InstrumentCrossbar(bench, 0, get_preset(preset), scheme=scheme)  # type: ignore[arg-type]
        weakref.finalize(crossbar, _stop, bench, emulator)
        return crossbar

    return build


def _stop(bench: object, emulator: object) -> None:
    bench.close()  # type: ignore[attr-defined]
    emulator.stop()  # type: ignore[attr-defined]


def _simulated(preset: str, seed: int) -> Callable[[int, int, str], Crossbar]:
    def build(rows: int, cols: int, scheme: str) -> Crossbar:
        return SimulatedCrossbar(rows, cols, preset, seed=seed, scheme=scheme, init="mid")  # type: ignore[arg-type]

    return build


FACTORIES: list[CrossbarFactory] = [
    CrossbarFactory(name="simulated-ideal", build=_simulated("ideal", 1234), exact=True, ideal=True),
    CrossbarFactory(name="simulated-rram", build=_simulated("rram", 1234), exact=False, ideal=False),
    CrossbarFactory(name="emulated-bench-ideal", build=through_emulator("ideal", 1234), exact=False,
                    ideal=True, max_shape=(12, 10)),
]
"""Every crossbar implementation under contract. Append instrument-backed arrays here."""
