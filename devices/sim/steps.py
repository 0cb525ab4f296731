"""Closed-form device step laws on normalized state (pure tensor functions).

``w`` is the normalized conductance ``(G - g_min) / (g_max - g_min)`` in [0, 1], ``a``
a (possibly noisy, real-valued) number of pulses, ``dp`` the normalized step and
``nu`` the nonlinearity (formulas and their derivation: :mod:`devices.sim.physics`).

The two nonlinear laws are both an exponential approach to an asymptote ``T`` at a
rate ``k`` per pulse, so one kernel serves SET and RESET of either law:

    ``w' = T + (w - T) exp(-k a) = w - (T - w) expm1(-k a)``

==============  =========================  ==========================
law             SET ``(T, k)``             RESET ``(T, k)``
==============  =========================  ==========================
soft_bounds     ``(1, -log(1 - dp))``      ``(0, -log(1 - dp))``
exponential     ``(1/c, nu dp)``           ``(1 - 1/c, nu dp)``, ``c = 1 - exp(-nu)``
==============  =========================  ==========================

The linear law is ``w' = w + v a`` with velocity ``v = +dp`` (SET) or ``-dp`` (RESET); the
``binary`` law is the same with ``v = +-2`` whatever ``dp``: one effective pulse switches a
two-state device to its low- (SET) or high-resistance (RESET) state.
Results saturate at the physical bounds 0 and 1. :mod:`devices.fitting` has a numpy
twin of these laws (float64, with derivatives) for least squares.

Each law is one function registered with :func:`step_law` (its numpy twin with
:func:`devices.fitting.laws.fit_law`, under the same name); ``STEP_MODELS`` lists them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

#: The exponential law is evaluated with nu >= this floor (its nu -> 0 limit is the
#: linear law; at 1e-6 the two differ by about 1e-6 of a step).
NU_FLOOR = 1e-6

#: The binary law's velocity per pulse: any state in [0, 1] reaches its bound in one pulse.
BINARY_VELOCITY = 2.0

#: ``(dp, nu, set_pulse) -> (first, rate)``: the per-device coefficients of one branch.
Coefficients = Callable[[Tensor, Tensor, bool], tuple[Tensor, Tensor]]


@dataclass(frozen=True)
class StepLaw:
    """One registered step law: its coefficients and how :func:`advance` applies them
    (``additive``: ``w + first * a``; otherwise the exponential approach to ``first`` at
    rate ``rate``)."""

    name: str
    coefficients: Coefficients
    additive: bool = False


#: The registered step laws by name, in registration order (see :func:`step_law`).
STEP_LAWS: dict[str, StepLaw] = {}


def step_law(name: str, *, additive: bool = False) -> Callable[[Coefficients], Coefficients]:
    """Register the decorated ``(dp, nu, set_pulse) -> (first, rate)`` as step law ``name``.

    A nonlinear law returns the asymptote ``T`` and the rate ``k`` per pulse of
    ``w' = T + (w - T) exp(-k a)``; an ``additive`` law returns the velocity ``v`` of
    ``w' = w + v a`` (and any ``rate``, unused)."""

    def register(fn: Coefficients) -> Coefficients:
        if name in STEP_LAWS:
            raise ValueError(f"step law {name!r} is already registered")
        STEP_LAWS[name] = StepLaw(name, fn, additive)
        return fn

    return register


def get_step_law(model: str) -> StepLaw:
    """The registered law ``model``; ValueError for an unknown name."""
    try:
        return STEP_LAWS[model]
    except KeyError:
        raise ValueError(f"unknown step model {model!r}") from None


@step_law("linear", additive=True)
def _linear(dp: Tensor, nu: Tensor, set_pulse: bool) -> tuple[Tensor, Tensor]:
    return (dp if set_pulse else -dp), torch.zeros_like(dp)


@step_law("exponential")
def _exponential(dp: Tensor, nu: Tensor, set_pulse: bool) -> tuple[Tensor, Tensor]:
    nu = nu.clamp(min=NU_FLOOR)
    c = -torch.expm1(-nu)
    return (1.0 / c if set_pulse else 1.0 - 1.0 / c), nu * dp


@step_law("soft_bounds")
def _soft_bounds(dp: Tensor, nu: Tensor, set_pulse: bool) -> tuple[Tensor, Tensor]:
    target = torch.ones_like(dp) if set_pulse else torch.zeros_like(dp)
    return target, -torch.log1p(-dp)


@step_law("binary", additive=True)
def _binary(dp: Tensor, nu: Tensor, set_pulse: bool) -> tuple[Tensor, Tensor]:
    # Two states: one effective pulse moves any state in [0, 1] past its bound (velocity 2).
    return torch.full_like(dp, BINARY_VELOCITY if set_pulse else -BINARY_VELOCITY), torch.zeros_like(dp)


def law_coefficients(dp: Tensor, nu: Tensor, model: str, set_pulse: bool) -> tuple[Tensor, Tensor]:
    """Per-device coefficients of one branch: ``(T, k)`` for the nonlinear laws (see
    table), ``(v, 0)`` for the linear law."""
    return get_step_law(model).coefficients(dp, nu, set_pulse)


def advance(w: Tensor, a: Tensor, first: Tensor, rate: Tensor, model: str) -> Tensor:
    """State after ``a`` pulses, from the coefficients of :func:`law_coefficients`."""
    if get_step_law(model).additive:
        out = w + first * a
    else:
        out = w - (first - w) * torch.expm1(-(rate * a))
    return out.clamp_(0.0, 1.0)


def potentiate(w: Tensor, a: Tensor, dp: Tensor, nu: Tensor, model: str) -> Tensor:
    """Normalized state after ``a`` SET pulses (reference form of one branch)."""
    return advance(w, a, *law_coefficients(dp, nu, model, True), model)


def depress(w: Tensor, a: Tensor, dp: Tensor, nu: Tensor, model: str) -> Tensor:
    """Normalized state after ``a`` RESET pulses (reference form of one branch)."""
    return advance(w, a, *law_coefficients(dp, nu, model, False), model)
