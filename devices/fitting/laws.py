"""The step laws of :mod:`devices.sim.steps` in numpy, for fitting: the ``n``-pulse law of a
branch, its one-pulse slopes and the pulses to the far bound."""

from __future__ import annotations

import math

import numpy as np

from ..sim.physics import STEP_MODELS
from ..sim.steps import NU_FLOOR

#: Upper bound of the fitted nonlinearity ``nu`` (beyond it the law is a step function).
NU_MAX = 30.0


# -- the step laws in numpy (same formulas as devices.sim.steps) ---------------------------------


def branch_law(
    u: np.ndarray | float, n: np.ndarray | float, dp: np.ndarray | float, nu: np.ndarray | float, model: str
) -> np.ndarray:
    """Normalized state after ``n`` pulses towards 1 from ``u`` (numpy twin of
    :func:`devices.sim.steps.potentiate`): ``u`` is ``w`` for SET and ``1 - w`` for RESET,
    ``dp`` the normalized step, ``nu`` the nonlinearity (``exponential`` only).
    Saturates at 0 and 1 like the simulator."""
    u = np.asarray(u, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    dp = np.asarray(dp, dtype=np.float64)
    if model == "linear":
        out = u + n * dp
    elif model == "soft_bounds":
        out = 1.0 - (1.0 - u) * np.exp(n * np.log1p(-dp))
    elif model == "exponential":
        nu = np.maximum(np.asarray(nu, dtype=np.float64), NU_FLOOR)
        c = -np.expm1(-nu)
        out = u + (1.0 - u * c) * (-np.expm1(-nu * dp * n)) / c
    else:
        raise ValueError(f"unknown step model {model!r}: choose one of {STEP_MODELS}")
    return np.clip(out, 0.0, 1.0)


def _law_slopes(
    u: np.ndarray, dp: float, nu: float, model: str
) -> tuple[np.ndarray, np.ndarray]:
    """For one pulse from ``u``: (d u'/d a at a = 1, d u'/d u), unsaturated."""
    u = np.clip(u, 0.0, 1.0)
    if model == "linear":
        return np.full_like(u, dp), np.ones_like(u)
    if model == "soft_bounds":
        log_keep = math.log1p(-dp)
        keep = math.exp(log_keep)
        return -(1.0 - u) * log_keep * keep, np.full_like(u, keep)
    nu = max(nu, NU_FLOOR)
    c = -math.expm1(-nu)
    decay = math.exp(-nu * dp)
    return (1.0 / c - u) * nu * dp * decay, np.full_like(u, decay)


def _pulses_to_far_bound(
    u0: np.ndarray, dp: float, nu: float, model: str, level: float = 0.95
) -> np.ndarray:
    """Pulses after which the deterministic law from ``u0`` is at the far bound (linear,
    exponential) or at ``level`` of the range (soft_bounds, which only approaches it)."""
    u0 = np.clip(u0, 0.0, 1.0)
    if model == "linear":
        return (1.0 - u0) / dp
    if model == "soft_bounds":
        rest = 1.0 - level
        return np.log(rest / np.maximum(1.0 - u0, rest)) / math.log1p(-dp)
    nu = max(nu, NU_FLOOR)
    c = -math.expm1(-nu)
    p0 = -np.log1p(-c * u0) / nu  # position in normalized pulse space
    return (1.0 - p0) / dp
