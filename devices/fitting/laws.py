"""The step laws of :mod:`devices.sim.steps` in numpy, for fitting: the ``n``-pulse law of a
branch, its one-pulse slopes and the pulses to the far bound."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from ..sim.steps import BINARY_VELOCITY, NU_FLOOR, STEP_LAWS

#: Upper bound of the fitted nonlinearity ``nu`` (beyond it the law is a step function).
NU_MAX = 30.0


# -- the step laws in numpy (same formulas as devices.sim.steps) ---------------------------------


class FitLaw:
    """The numpy face of one step law (subclass and register with :func:`fit_law`).

    ``u`` is ``w`` for SET and ``1 - w`` for RESET (every branch moves towards 1)."""

    name: str = ""
    #: Whether the law has a nonlinearity ``nu`` to fit (else ``nu`` is fixed at 0).
    has_nu: bool = False
    #: Whether the law reaches the far bound in finitely many pulses (else it only approaches it).
    reaches_bound: bool = True

    def branch(self, u: np.ndarray, n: np.ndarray, dp: np.ndarray, nu: np.ndarray) -> np.ndarray:
        """State after ``n`` pulses from ``u``, before saturation."""
        raise NotImplementedError

    def slopes(self, u: np.ndarray, dp: float, nu: float) -> tuple[np.ndarray, np.ndarray]:
        """For one pulse from ``u`` (in [0, 1]): (d u'/d a at a = 1, d u'/d u)."""
        raise NotImplementedError

    def pulses_to_far_bound(self, u0: np.ndarray, dp: float, nu: float, level: float) -> np.ndarray:
        """Pulses from ``u0`` (in [0, 1]) to the far bound (or to ``level`` where the law
        only approaches it)."""
        raise NotImplementedError


#: The fitting laws by name; the same names as :data:`devices.sim.steps.STEP_LAWS`.
FIT_LAWS: dict[str, FitLaw] = {}


def fit_law(name: str) -> Callable[[type[FitLaw]], type[FitLaw]]:
    """Register the decorated :class:`FitLaw` subclass as the numpy face of law ``name``."""

    def register(cls: type[FitLaw]) -> type[FitLaw]:
        if name in FIT_LAWS:
            raise ValueError(f"fitting law {name!r} is already registered")
        law = cls()
        law.name = name
        FIT_LAWS[name] = law
        return cls

    return register


def get_fit_law(model: str) -> FitLaw:
    """The fitting law ``model``; ValueError naming the fittable laws otherwise (and saying
    so when ``model`` is a simulator law with no fitting face)."""
    law = FIT_LAWS.get(model)
    if law is not None:
        return law
    if model in STEP_LAWS:
        raise ValueError(
            f"step model {model!r} has no fitting law (register one with devices.fitting.laws.fit_law): "
            f"choose one of {tuple(FIT_LAWS)}"
        )
    raise ValueError(f"unknown step model {model!r}: choose one of {tuple(FIT_LAWS)}")


@fit_law("linear")
class _Linear(FitLaw):
    def branch(self, u: np.ndarray, n: np.ndarray, dp: np.ndarray, nu: np.ndarray) -> np.ndarray:
        return u + n * dp

    def slopes(self, u: np.ndarray, dp: float, nu: float) -> tuple[np.ndarray, np.ndarray]:
        return np.full_like(u, dp), np.ones_like(u)

    def pulses_to_far_bound(self, u0: np.ndarray, dp: float, nu: float, level: float) -> np.ndarray:
        return (1.0 - u0) / dp


@fit_law("exponential")
class _Exponential(FitLaw):
    has_nu = True

    def branch(self, u: np.ndarray, n: np.ndarray, dp: np.ndarray, nu: np.ndarray) -> np.ndarray:
        nu = np.maximum(np.asarray(nu, dtype=np.float64), NU_FLOOR)
        c = -np.expm1(-nu)
        return u + (1.0 - u * c) * (-np.expm1(-nu * dp * n)) / c

    def slopes(self, u: np.ndarray, dp: float, nu: float) -> tuple[np.ndarray, np.ndarray]:
        nu = max(nu, NU_FLOOR)
        c = -math.expm1(-nu)
        decay = math.exp(-nu * dp)
        return (1.0 / c - u) * nu * dp * decay, np.full_like(u, decay)

    def pulses_to_far_bound(self, u0: np.ndarray, dp: float, nu: float, level: float) -> np.ndarray:
        nu = max(nu, NU_FLOOR)
        c = -math.expm1(-nu)
        p0 = -np.log1p(-c * u0) / nu  # position in normalized pulse space
        return (1.0 - p0) / dp


@fit_law("soft_bounds")
class _SoftBounds(FitLaw):
    reaches_bound = False

    def branch(self, u: np.ndarray, n: np.ndarray, dp: np.ndarray, nu: np.ndarray) -> np.ndarray:
        return 1.0 - (1.0 - u) * np.exp(n * np.log1p(-dp))

    def slopes(self, u: np.ndarray, dp: float, nu: float) -> tuple[np.ndarray, np.ndarray]:
        log_keep = math.log1p(-dp)
        keep = math.exp(log_keep)
        return -(1.0 - u) * log_keep * keep, np.full_like(u, keep)

    def pulses_to_far_bound(self, u0: np.ndarray, dp: float, nu: float, level: float) -> np.ndarray:
        rest = 1.0 - level
        return np.log(rest / np.maximum(1.0 - u0, rest)) / math.log1p(-dp)


@fit_law("binary")
class _Binary(FitLaw):
    """Two states: the first pulse reaches the far bound (``dp`` and ``nu`` play no part)."""

    def branch(self, u: np.ndarray, n: np.ndarray, dp: np.ndarray, nu: np.ndarray) -> np.ndarray:
        return u + BINARY_VELOCITY * n

    def slopes(self, u: np.ndarray, dp: float, nu: float) -> tuple[np.ndarray, np.ndarray]:
        return np.full_like(u, BINARY_VELOCITY), np.ones_like(u)

    def pulses_to_far_bound(self, u0: np.ndarray, dp: float, nu: float, level: float) -> np.ndarray:
        return (u0 < 1.0).astype(np.float64)


def law_has_nu(model: str) -> bool:
    """Whether step law ``model`` has a fitted nonlinearity (False for an unknown name)."""
    law = FIT_LAWS.get(model)
    return law is not None and law.has_nu


def branch_law(
    u: np.ndarray | float, n: np.ndarray | float, dp: np.ndarray | float, nu: np.ndarray | float, model: str
) -> np.ndarray:
    """Normalized state after ``n`` pulses towards 1 from ``u`` (numpy twin of
    :func:`devices.sim.steps.potentiate`): ``u`` is ``w`` for SET and ``1 - w`` for RESET,
    ``dp`` the normalized step, ``nu`` the nonlinearity (``exponential`` only).
    Saturates at 0 and 1 like the simulator."""
    law = get_fit_law(model)
    u = np.asarray(u, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    dp = np.asarray(dp, dtype=np.float64)
    return np.clip(law.branch(u, n, dp, np.asarray(nu, dtype=np.float64)), 0.0, 1.0)


def _law_slopes(
    u: np.ndarray, dp: float, nu: float, model: str
) -> tuple[np.ndarray, np.ndarray]:
    """For one pulse from ``u``: (d u'/d a at a = 1, d u'/d u), unsaturated."""
    return get_fit_law(model).slopes(np.clip(u, 0.0, 1.0), dp, nu)


def _pulses_to_far_bound(
    u0: np.ndarray, dp: float, nu: float, model: str, level: float = 0.95
) -> np.ndarray:
    """Pulses after which the deterministic law from ``u0`` is at the far bound (linear,
    exponential) or at ``level`` of the range (soft_bounds, which only approaches it)."""
    return get_fit_law(model).pulses_to_far_bound(np.clip(u0, 0.0, 1.0), dp, nu, level)
