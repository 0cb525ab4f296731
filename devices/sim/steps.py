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

The linear law is ``w' = w + v a`` with velocity ``v = +dp`` (SET) or ``-dp`` (RESET).
Results saturate at the physical bounds 0 and 1. :mod:`devices.fitting` has a numpy
twin of these laws (float64, with derivatives) for least squares.
"""

from __future__ import annotations

import torch
from torch import Tensor

#: The exponential law is evaluated with nu >= this floor (its nu -> 0 limit is the
#: linear law; at 1e-6 the two differ by about 1e-6 of a step).
NU_FLOOR = 1e-6


def law_coefficients(dp: Tensor, nu: Tensor, model: str, set_pulse: bool) -> tuple[Tensor, Tensor]:
    """Per-device coefficients of one branch: ``(T, k)`` for the nonlinear laws (see
    table), ``(v, 0)`` for the linear law."""
    if model == "linear":
        return (dp if set_pulse else -dp), torch.zeros_like(dp)
    if model == "soft_bounds":
        target = torch.ones_like(dp) if set_pulse else torch.zeros_like(dp)
        return target, -torch.log1p(-dp)
    if model == "exponential":
        nu = nu.clamp(min=NU_FLOOR)
        c = -torch.expm1(-nu)
        return (1.0 / c if set_pulse else 1.0 - 1.0 / c), nu * dp
    raise ValueError(f"unknown step model {model!r}")


def advance(w: Tensor, a: Tensor, first: Tensor, rate: Tensor, model: str) -> Tensor:
    """State after ``a`` pulses, from the coefficients of :func:`law_coefficients`."""
    if model == "linear":
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
