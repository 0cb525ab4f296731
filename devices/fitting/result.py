"""The result of a fit: :class:`FitResult` (parameters, goodness of fit, noise, spreads),
its :class:`~devices.sim.physics.DeviceModel` and its printable report; :class:`DeviceFit`."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..sim.physics import DTOD_TRUNCATION, DeviceModel
from .laws import branch_law, law_has_nu
from .noise import MIN_NOISE_STEPS

# -- result ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeviceFit:
    """The fit of one device of a multi-device trace (conductances in S)."""

    device: int
    g_min: float
    g_max: float
    dw_up: float
    dw_down: float
    nu_up: float
    nu_down: float
    r2_set: float
    r2_reset: float
    n_points: int

    @property
    def dw_min(self) -> float:
        """Mean of the SET and RESET steps, S."""
        return 0.5 * (self.dw_up + self.dw_down)


@dataclass(frozen=True)
class FitResult:
    """A fitted step model: parameters (S), goodness of fit and noise estimates."""

    step_model: str
    """``linear``, ``soft_bounds`` or ``exponential``."""
    g_min: float
    """Fitted low bound, S."""
    g_max: float
    """Fitted high bound, S."""
    dw_up: float
    """Fitted SET step per pulse, S (meaning per step model as in :mod:`devices.sim.physics`)."""
    dw_down: float
    """Fitted RESET step per pulse, S."""
    nu_up: float
    """SET nonlinearity (``exponential`` only, else 0)."""
    nu_down: float
    """RESET nonlinearity (``exponential`` only, else 0)."""
    r2_set: float
    """Coefficient of determination over every SET read after the first of its branch (nan if none)."""
    r2_reset: float
    """The same over the RESET reads."""
    rms_residual_S: float
    """Root-mean-square of the fit residuals, S."""
    n_points: int
    """Reads in the trace."""
    n_fitted: int
    """Reads compared with a prediction (all but each branch's first)."""
    n_set_branches: int
    n_reset_branches: int
    n_devices: int
    n_cycles: int
    dw_min_std: float | None
    """Cycle-to-cycle step noise, relative to the model step (None if too few steps)."""
    read_noise_std: float | None
    """Read noise, relative to G (None if too few steps)."""
    s_c2c_S: float | None
    """RMS absolute cycle-to-cycle step noise, S."""
    s_read_S: float | None
    """RMS absolute read noise, S."""
    n_noise_steps: int
    """One-step residuals used by the noise estimates."""
    dw_min_std_range: tuple[float, float] | None = None
    """One-standard-error range of ``dw_min_std`` (from the likelihood's curvature)."""
    read_noise_std_range: tuple[float, float] | None = None
    """One-standard-error range of ``read_noise_std``."""
    dw_min_std_moments: float | None = None
    """Method-of-moments estimate of ``dw_min_std`` (the likelihood refinement's start)."""
    read_noise_std_moments: float | None = None
    """Method-of-moments estimate of ``read_noise_std``."""
    device_fits: tuple[DeviceFit, ...] = ()
    """Per-device fits (only with two or more devices)."""
    stuck_devices: tuple[int, ...] = ()
    """Devices that barely moved, left out of the fit (detected only with >= 2 devices)."""
    stuck_off_fraction: float | None = None
    """Fraction of devices stuck low (None with a single device)."""
    stuck_on_fraction: float | None = None
    """Fraction of devices stuck high (None with a single device)."""
    g_min_dtod: float | None = None
    """Device-to-device std of ``g_min`` as a fraction of ``g_max - g_min`` (DeviceModel convention)."""
    g_max_dtod: float | None = None
    """Device-to-device std of ``g_max`` as a fraction of ``g_max - g_min``."""
    dw_min_dtod: float | None = None
    """Device-to-device std of ``dw_min`` relative to its mean."""
    trace_source: str = ""
    """The trace's ``source`` (file name or simulation)."""
    notes: tuple[str, ...] = ()
    """Caveats found while fitting."""

    # -- derived ---------------------------------------------------------------------------
    @property
    def dw_min(self) -> float:
        """``(dw_up + dw_down) / 2``, S."""
        return 0.5 * (self.dw_up + self.dw_down)

    @property
    def up_down(self) -> float:
        """``(dw_up - dw_down) / (dw_up + dw_down)``."""
        return (self.dw_up - self.dw_down) / (self.dw_up + self.dw_down)

    def predict(self, g0: float, pulses: np.ndarray | int, polarity: str) -> np.ndarray:
        """Deterministic conductance (S) after ``pulses`` pulses of ``polarity`` from ``g0`` (S)."""
        if polarity not in ("set", "reset"):
            raise ValueError(f"polarity = {polarity!r}: must be 'set' or 'reset'")
        span = self.g_max - self.g_min
        w0 = (g0 - self.g_min) / span
        if polarity == "set":
            return self.g_min + span * branch_law(w0, pulses, self.dw_up / span, self.nu_up, self.step_model)
        u = branch_law(1.0 - w0, pulses, self.dw_down / span, self.nu_down, self.step_model)
        return self.g_min + span * (1.0 - u)

    def to_device_model(self, **overrides: Any) -> DeviceModel:
        """The fitted :class:`DeviceModel`: bounds and steps, noise estimates (0 where
        not estimated) and device-to-device spreads when available (capped where they
        would break the model's 3-sigma validity rules). ``overrides`` replace fields."""
        values: dict[str, Any] = {
            "g_min": self.g_min,
            "g_max": self.g_max,
            "step_model": self.step_model,
            "dw_min": self.dw_min,
            "up_down": self.up_down,
            "nu_up": self.nu_up if law_has_nu(self.step_model) else 0.0,
            "nu_down": self.nu_down if law_has_nu(self.step_model) else 0.0,
            "dw_min_std": self.dw_min_std or 0.0,
            "read_noise_std": self.read_noise_std or 0.0,
        }
        capped = []
        if self.g_min_dtod is not None:
            k = DTOD_TRUNCATION
            span = self.g_max - self.g_min
            g_min_d = min(self.g_min_dtod, 0.999 * self.g_min / (k * span))
            g_max_d = min(self.g_max_dtod or 0.0, 0.999 * (1.0 / k - g_min_d))
            dw_d = min(self.dw_min_dtod or 0.0, 0.999 / k)
            for name, fitted, used in (("g_min_dtod", self.g_min_dtod, g_min_d),
                                       ("g_max_dtod", self.g_max_dtod, g_max_d),
                                       ("dw_min_dtod", self.dw_min_dtod, dw_d)):
                if fitted is not None and used < fitted:
                    capped.append(f"{name} capped from {fitted:.3g} to {used:.3g}")
            values.update(g_min_dtod=g_min_d, g_max_dtod=g_max_d, dw_min_dtod=dw_d)
        if self.stuck_off_fraction is not None and self.stuck_on_fraction is not None:
            values.update(
                stuck_off_fraction=self.stuck_off_fraction, stuck_on_fraction=self.stuck_on_fraction
            )
        values["source"] = self.describe() + ("; " + "; ".join(capped) if capped else "")
        values.update(overrides)
        return DeviceModel(**values)

    def describe(self) -> str:
        """One sentence on where the fitted numbers come from."""
        r2 = ", ".join(f"R^2 {pol} {v:.4f}" for pol, v in (("SET", self.r2_set), ("RESET", self.r2_reset))
                       if math.isfinite(v))
        noise = (
            f"; noise from one-step residuals (MA(1) model): dw_min_std {self.dw_min_std:.3g}, "
            f"read_noise_std {self.read_noise_std:.3g}"
            if self.dw_min_std is not None and self.read_noise_std is not None
            else "; noise not estimated"
        )
        d2d = (
            f"; device-to-device spreads from {len(self.device_fits)} per-device fits"
            if self.device_fits else ""
        )
        return (
            f"Least-squares fit of the {self.step_model} step model (devices.fitting.fit_trace) to "
            f"{self.trace_source or 'a pulse-response trace'}: {self.n_points} reads, "
            f"{self.n_devices} device(s), {self.n_cycles} cycle(s); {r2}{noise}{d2d}"
        )

    def meta(self) -> dict[str, Any]:
        """Finite summary numbers for a preset file's ``[meta]`` table."""
        out: dict[str, Any] = {
            "fitted_by": "devices.fitting.fit_trace",
            "trace": self.trace_source,
            "model": self.step_model,
            "n_points": self.n_points,
            "n_devices": self.n_devices,
            "n_cycles": self.n_cycles,
        }
        for key in ("r2_set", "r2_reset", "rms_residual_S", "s_c2c_S", "s_read_S"):
            value = getattr(self, key)
            if value is not None and math.isfinite(value):
                out[key] = float(value)
        return out

    def summary(self) -> str:
        """Printable report: parameters with units, R^2 per branch, noise and spreads."""
        lines = [
            f"{self.step_model} step model fitted to {self.trace_source or 'trace'}",
            f"  data: {self.n_points} reads, {self.n_devices} device(s), {self.n_cycles} cycle(s), "
            f"{self.n_set_branches} SET and {self.n_reset_branches} RESET branches",
            f"  g_min   = {_si(self.g_min)}",
            f"  g_max   = {_si(self.g_max)}   (range {_si(self.g_max - self.g_min)})",
            f"  dw_up   = {_si(self.dw_up)} per SET pulse"
            + (f",   nu_up   = {self.nu_up:.3f}" if law_has_nu(self.step_model) else ""),
            f"  dw_down = {_si(self.dw_down)} per RESET pulse"
            + (f",   nu_down = {self.nu_down:.3f}" if law_has_nu(self.step_model) else ""),
            f"  -> DeviceModel dw_min = {_si(self.dw_min)}, up_down = {self.up_down:+.4f}",
            f"  fit: R^2 SET = {_num(self.r2_set)}, R^2 RESET = {_num(self.r2_reset)}, "
            f"rms residual {_si(self.rms_residual_S)} over {self.n_fitted} reads",
        ]
        if self.dw_min_std is None or self.read_noise_std is None:
            lines.append(
                f"  noise: not estimated (only {self.n_noise_steps} usable one-step residuals, need "
                f"{MIN_NOISE_STEPS}: reads after consecutive single pulses, away from the bounds)"
            )
        else:
            lines += [
                f"  noise from {self.n_noise_steps} one-step residuals away from the bounds:",
                f"    cycle-to-cycle dw_min_std     = {self.dw_min_std:.4f} of the step"
                f"{_pm(self.dw_min_std_range)} (rms {_si(self.s_c2c_S)})",
                f"    read noise     read_noise_std = {self.read_noise_std:.4f} of G"
                f"{_pm(self.read_noise_std_range)} (rms {_si(self.s_read_S)})",
            ]
            if self.dw_min_std_moments is not None and self.read_noise_std_moments is not None:
                lines.append(
                    f"    (Gaussian MA(1) likelihood; method-of-moments start: dw_min_std "
                    f"{self.dw_min_std_moments:.4f}, read_noise_std {self.read_noise_std_moments:.4f})"
                )
        if self.device_fits:
            lines += [
                f"  device-to-device ({len(self.device_fits)} devices fitted separately):",
                f"    g_min_dtod  = {self.g_min_dtod:.4f} of the range (std of g_min / (g_max - g_min))",
                f"    g_max_dtod  = {self.g_max_dtod:.4f} of the range (std of g_max / (g_max - g_min))",
                f"    dw_min_dtod = {self.dw_min_dtod:.4f} (std of dw_min / mean dw_min)",
            ]
        if self.stuck_devices:
            lines.append(
                f"  stuck devices: {list(self.stuck_devices)} (stuck_off_fraction = "
                f"{self.stuck_off_fraction:.4f}, stuck_on_fraction = {self.stuck_on_fraction:.4f})"
            )
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def _si(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    for factor, unit in ((1.0, "S"), (1e-3, "mS"), (1e-6, "uS"), (1e-9, "nS")):
        if abs(value) >= factor:
            return f"{value / factor:.4g} {unit}"
    return f"{value / 1e-12:.4g} pS"


def _pm(bounds: tuple[float, float] | None) -> str:
    return "" if bounds is None else f" [1 s.e.: {bounds[0]:.4f} to {bounds[1]:.4f}]"


def _num(value: float) -> str:
    return f"{value:.4f}" if math.isfinite(value) else "n/a"
