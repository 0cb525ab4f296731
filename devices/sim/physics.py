"""Device physics of one analog memristor, as a frozen, validated dataclass.

Every conductance is in siemens (S), every time in seconds (s), every voltage in
volts (V). Names follow IBM aihwkit where it has one (``dw_min``, ``dw_min_dtod``,
``dw_min_std``, ``up_down``, ``up_down_dtod``); the bounds are called ``g_min`` /
``g_max`` because they are conductances, not weights.

Step models (normalized state ``w = (G - g_min) / (g_max - g_min)`` in [0, 1],
``dp = dw / (g_max - g_min)`` the normalized step, ``n`` the pulse count):

``linear``
    ``w' = w + n dp`` (hard bounds). ``dw_min`` is the step of every pulse.
``exponential``
    The NeuroSim model (Chen, Peng, Yu, IEEE TCAD 2018):
    ``w(p) = (1 - exp(-nu p)) / (1 - exp(-nu))`` where ``p`` in [0, 1] is the
    normalized pulse number. One pulse advances ``p`` by ``dp``, so the device
    crosses its full range in exactly ``1/dp`` pulses and ``dw_min`` is the
    *average* step. In closed form, with ``c = 1 - exp(-nu)``:
    ``w' = w + (1/c - w) (1 - exp(-nu n dp))``. ``nu = 0`` is the linear model;
    a larger ``nu`` makes the steps large near the start of the branch and small
    near its end. RESET mirrors SET on ``1 - w`` with its own ``nu_down``.
``soft_bounds``
    aihwkit's SoftBounds: the step shrinks linearly to zero at the far bound,
    ``dw(w) = dw_min (1 - w)`` for SET, i.e. ``w' = 1 - (1 - w) (1 - dp)^n``.
    Here ``dw_min`` is the step at the near bound.

``binary``
    A two-state (filamentary) device: one effective pulse sets it to its high-conductance
    state (SET) or resets it to its low one (RESET), whatever its state; ``dw_min`` must be
    the range ``g_max - g_min`` (so program-and-verify sends one pulse per switch).

Any law: each pulse is effective with probability ``switch_probability`` (a pulse that
fails leaves the device as it was), so ``n`` pulses give ``Binomial(n, p)`` effective
ones; a binary device switches within ``n`` pulses with probability ``1 - (1 - p)^n``.
:func:`poisson_switching_probability` gives ``p`` of a pulse of a given voltage and width.
Retention failure (``retention_tau``): while the simulated clock runs, each device falls
back to its ``g_min`` at the rate ``1 / retention_tau``.

Cycle-to-cycle noise (``dw_min_std``) is multiplicative on each pulse's advance in
pulse space: pulse ``k`` advances ``p`` by ``dp (1 + dw_min_std xi_k)``. Since the
state depends on ``p`` only, ``n`` pulses advance it by ``dp (n + dw_min_std sqrt(n) xi)``
and a multi-pulse call is equal in distribution to ``n`` single pulses.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Literal

from ..toml_io import check_keys, refuse
from .steps import STEP_LAWS

StepModel = Literal["linear", "exponential", "soft_bounds", "binary"]
#: The built-in step laws (registered in :mod:`devices.sim.steps`; a law registered later
#: with :func:`devices.sim.steps.step_law` is accepted by validation too).
STEP_MODELS: tuple[str, ...] = tuple(STEP_LAWS)

#: Device-to-device draws are normal, truncated at this many standard deviations.
DTOD_TRUNCATION = 3.0


@dataclass(frozen=True)
class DeviceModel:
    """Physics of one memristive device (one of the two in a differential pair)."""

    g_min: float = 10e-6
    """Lowest conductance (high-resistance state), S."""
    g_max: float = 100e-6
    """Highest conductance (low-resistance state), S."""
    g_min_dtod: float = 0.0
    """Device-to-device std of ``g_min``, as a fraction of ``g_max - g_min``."""
    g_max_dtod: float = 0.0
    """Device-to-device std of ``g_max``, as a fraction of ``g_max - g_min``."""

    step_model: StepModel = "linear"
    """``linear``, ``exponential`` (NeuroSim) or ``soft_bounds`` (aihwkit); see module doc."""
    dw_min: float = 0.9e-6
    """Nominal conductance step per pulse, S (meaning per step model: see module doc)."""
    dw_min_dtod: float = 0.0
    """Device-to-device std of ``dw_min``, relative to ``dw_min``."""
    dw_min_std: float = 0.0
    """Cycle-to-cycle std of each pulse's step, relative to the mean step."""
    up_down: float = 0.0
    """SET/RESET asymmetry: SET step ``dw_min (1 + up_down)``, RESET ``dw_min (1 - up_down)``."""
    up_down_dtod: float = 0.0
    """Device-to-device std of ``up_down`` (absolute)."""
    nu_up: float = 0.0
    """Nonlinearity of the SET branch (``exponential`` model only), dimensionless, >= 0."""
    nu_down: float = 0.0
    """Nonlinearity of the RESET branch (``exponential`` model only), dimensionless, >= 0."""
    nu_dtod: float = 0.0
    """Device-to-device std of ``nu_up`` and ``nu_down`` (absolute)."""
    abrupt_reset: bool = False
    """If true, any RESET pulse sends the device to its ``g_min`` (PCM amorphization)."""

    switch_probability: float = 1.0
    """Probability that one pulse takes effect (a failed pulse leaves the device as it was), in (0, 1]."""
    retention_tau: float = 0.0
    """Mean time before a device loses its state and falls to its ``g_min``, s; 0 = never."""

    read_noise_std: float = 0.0
    """Std of each read of a device, relative to its conductance (fresh at every read)."""
    stuck_off_fraction: float = 0.0
    """Fraction of devices stuck at their ``g_min``; they ignore pulses."""
    stuck_on_fraction: float = 0.0
    """Fraction of devices stuck at their ``g_max``; they ignore pulses."""
    n_levels: int = 0
    """Distinguishable conductance levels between ``g_min`` and ``g_max``; 0 = continuous."""

    drift_nu: float = 0.0
    """Power-law drift exponent: ``G(t) = G_prog ((t - t_prog + t0) / t0)^(-drift_nu)``; 0 = off."""
    drift_nu_dtod: float = 0.0
    """Device-to-device std of ``drift_nu`` (absolute)."""
    drift_t0: float = 1.0
    """Reference time ``t0`` of the drift law, s."""

    v_read: float = 0.2
    """Nominal read voltage, V (small enough not to disturb the state)."""

    source: str = ""
    """Where the numbers come from (paper, measurement, fit)."""

    def __post_init__(self) -> None:
        _validate(self)

    # -- derived quantities -------------------------------------------------
    @property
    def g_range(self) -> float:
        """Nominal conductance range ``g_max - g_min``, S."""
        return self.g_max - self.g_min

    @property
    def dw_up(self) -> float:
        """Nominal SET step, S."""
        return self.dw_min * (1.0 + self.up_down)

    @property
    def dw_down(self) -> float:
        """Nominal RESET step, S."""
        return self.dw_min * (1.0 - self.up_down)

    def replace(self, **changes: Any) -> DeviceModel:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of every field (for TOML/JSON/HDF5 attributes)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> DeviceModel:
        """Build from a dict, refusing unknown keys by name."""
        check_keys(values, (f.name for f in dataclasses.fields(cls)), "DeviceModel", what="field(s)",
                   known_as="known fields")
        return cls(**values)


def _fail(name: str, value: Any, requirement: str) -> None:
    refuse("DeviceModel.", name, value, requirement)


def _validate(m: DeviceModel) -> None:
    for f in dataclasses.fields(m):
        value = getattr(m, f.name)
        if f.type == "float" and (isinstance(value, bool) or not isinstance(value, float | int)):
            _fail(f.name, value, "must be a number")
        if isinstance(value, float | int) and not isinstance(value, bool):
            if not math.isfinite(value):
                _fail(f.name, value, "must be a finite number")
    if m.g_min < 0:
        _fail("g_min", m.g_min, "must be >= 0 S")
    if m.g_max <= m.g_min:
        _fail("g_max", m.g_max, f"must be greater than g_min ({m.g_min!r} S)")
    if m.step_model not in STEP_LAWS:
        _fail("step_model", m.step_model, f"must be one of {tuple(STEP_LAWS)}")
    if m.dw_min <= 0:
        _fail("dw_min", m.dw_min, "must be > 0 S")
    if m.dw_min * (1 + abs(m.up_down)) > m.g_range:
        _fail("dw_min", m.dw_min, f"one step must not exceed the range g_max - g_min = {m.g_range!r} S")
    for name in (
        "g_min_dtod", "g_max_dtod", "dw_min_dtod", "dw_min_std", "up_down_dtod",
        "nu_up", "nu_down", "nu_dtod", "read_noise_std", "drift_nu", "drift_nu_dtod",
    ):
        if getattr(m, name) < 0:
            _fail(name, getattr(m, name), "must be >= 0")
    if not -1 < m.up_down < 1:
        _fail("up_down", m.up_down, "must lie strictly between -1 and 1")
    if m.step_model != "exponential":
        for name in ("nu_up", "nu_down", "nu_dtod"):
            if getattr(m, name):
                _fail(name, getattr(m, name), "nonlinearity factors apply only to step_model='exponential'")
    for name in ("stuck_off_fraction", "stuck_on_fraction"):
        if not 0 <= getattr(m, name) <= 1:
            _fail(name, getattr(m, name), "must lie in [0, 1]")
    if m.stuck_off_fraction + m.stuck_on_fraction > 1:
        _fail("stuck_on_fraction", m.stuck_on_fraction, "stuck_off + stuck_on must not exceed 1")
    if isinstance(m.n_levels, bool) or not isinstance(m.n_levels, int):
        _fail("n_levels", m.n_levels, "must be an integer")
    if m.n_levels == 1 or m.n_levels < 0:
        _fail("n_levels", m.n_levels, "must be 0 (continuous) or >= 2")
    if not 0 < m.switch_probability <= 1:
        _fail("switch_probability", m.switch_probability, "must lie in (0, 1]")
    if m.retention_tau < 0:
        _fail("retention_tau", m.retention_tau, "must be >= 0 s (0 = no retention failure)")
    if m.step_model == "binary":
        _validate_binary(m)
    if m.drift_t0 <= 0:
        _fail("drift_t0", m.drift_t0, "must be > 0 s")
    if m.v_read <= 0:
        _fail("v_read", m.v_read, "must be > 0 V")
    # Device-to-device draws are truncated at DTOD_TRUNCATION sigma: make sure
    # even the extreme draws remain physical, so nothing is clipped silently.
    k = DTOD_TRUNCATION
    lo_min = m.g_min - k * m.g_min_dtod * m.g_range
    hi_min = m.g_min + k * m.g_min_dtod * m.g_range
    lo_max = m.g_max - k * m.g_max_dtod * m.g_range
    if lo_min < 0:
        _fail("g_min_dtod", m.g_min_dtod, f"g_min - {k:g} sigma would be negative")
    if lo_max <= hi_min:
        _fail("g_max_dtod", m.g_max_dtod, f"g_min/g_max ranges at {k:g} sigma overlap")
    if k * m.dw_min_dtod >= 1:
        _fail("dw_min_dtod", m.dw_min_dtod, f"must be < {1 / k:.3f} (steps must stay positive)")
    if abs(m.up_down) + k * m.up_down_dtod >= 1:
        _fail("up_down_dtod", m.up_down_dtod, "|up_down| + 3 sigma must stay below 1")
    if m.nu_dtod and min(m.nu_up, m.nu_down) - k * m.nu_dtod < 0:
        _fail("nu_dtod", m.nu_dtod, "min(nu_up, nu_down) - 3 sigma must stay >= 0")
    if m.drift_nu_dtod and m.drift_nu - k * m.drift_nu_dtod < 0:
        _fail("drift_nu_dtod", m.drift_nu_dtod, "drift_nu - 3 sigma must stay >= 0")


def _validate_binary(m: DeviceModel) -> None:
    if abs(m.dw_min - m.g_range) > 1e-6 * m.g_range:
        _fail("dw_min", m.dw_min,
              f"a binary device's step is its whole range g_max - g_min = {m.g_range!r} S")
    for name in ("dw_min_dtod", "dw_min_std", "up_down", "up_down_dtod", "n_levels"):
        if getattr(m, name):
            _fail(name, getattr(m, name), "does not apply to step_model='binary' (two states): must be 0")
    if m.abrupt_reset:
        _fail("abrupt_reset", m.abrupt_reset, "does not apply to step_model='binary' (every RESET is abrupt)")


def poisson_switching_probability(voltage: float, width: float, tau0: float, v0: float) -> float:
    """Probability that one pulse of ``voltage`` (V) and ``width`` (s) switches a filamentary
    device whose switching is a Poisson process of mean waiting time ``tau0 exp(-V / v0)``
    (Jo, Kim, Lu, Nano Lett. 9, 496 (2009); Gaba et al., Nanoscale 5, 5872 (2013)):
    ``1 - exp(-width / (tau0 exp(-voltage / v0)))``. ``tau0`` in s, ``v0`` in V."""
    for name, value in (("voltage", voltage), ("width", width), ("tau0", tau0), ("v0", v0)):
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"{name} = {value!r}: must be a finite number > 0")
    return -math.expm1(-width / (tau0 * math.exp(-voltage / v0)))


def model_fields() -> list[dataclasses.Field[Any]]:
    """The dataclass fields of :class:`DeviceModel` (for docs and CLIs)."""
    return list(dataclasses.fields(DeviceModel))


__all__ = ["DeviceModel", "STEP_MODELS", "DTOD_TRUNCATION", "StepModel", "model_fields",
           "poisson_switching_probability"]
