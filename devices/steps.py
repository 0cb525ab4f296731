"""Closed-form device step laws on normalized state (pure tensor functions).

``u`` is a normalized conductance in [0, 1] seen from the pulse's direction: ``w`` for
a SET pulse, ``1 - w`` for a RESET pulse (RESET mirrors SET). ``a`` is the (possibly
noisy, real-valued) number of pulses. Each law is precomputed into per-device
coefficients once, so that an update is a few fused elementwise passes:

==============  ===========================================  ==========================
law             ``u'`` after ``a`` pulses                     coefficients
==============  ===========================================  ==========================
linear          ``u + a dp``                                 ``(dp, -)``
soft_bounds     ``1 - (1 - u) exp(a log(1 - dp))``            ``(log(1 - dp), -)``
exponential     ``u + (1 - u c) (1 - exp(-k a)) / c``         ``(k = nu dp, c = 1 - exp(-nu))``
==============  ===========================================  ==========================

The result saturates at the bounds 0 and 1 (the device's physical limits).
Formulas and their derivation are in :mod:`devices.physics`.
"""

from __future__ import annotations

import torch
from torch import Tensor

#: The exponential law is evaluated with nu >= this floor (its nu -> 0 limit is the
#: linear law; at 1e-6 the two differ by about 1e-6 of a step).
NU_FLOOR = 1e-6


def coefficients(dp: Tensor, nu: Tensor, model: str) -> tuple[Tensor, Tensor]:
    """Per-device coefficients of one branch (see table) from step ``dp`` and nonlinearity ``nu``."""
    if model == "linear":
        return dp, torch.zeros_like(dp)
    if model == "soft_bounds":
        return torch.log1p(-dp), torch.zeros_like(dp)
    if model == "exponential":
        nu = nu.clamp(min=NU_FLOOR)
        return nu * dp, -torch.expm1(-nu)
    raise ValueError(f"unknown step model {model!r}")


def advance(u: Tensor, a: Tensor, c0: Tensor, c1: Tensor, model: str) -> Tensor:
    """State after ``a`` pulses towards 1, from coefficients ``(c0, c1)``; saturated to [0, 1]."""
    if model == "linear":
        out = u + a * c0
    elif model == "soft_bounds":
        out = 1.0 - (1.0 - u) * torch.exp(a * c0)
    elif model == "exponential":
        out = u + (1.0 - u * c1) * (-torch.expm1(-c0 * a)) / c1
    else:
        raise ValueError(f"unknown step model {model!r}")
    return out.clamp_(0.0, 1.0)


def potentiate(w: Tensor, a: Tensor, dp: Tensor, nu: Tensor, model: str) -> Tensor:
    """Normalized state after ``a`` SET pulses (reference form, one branch)."""
    return advance(w, a, *coefficients(dp, nu, model), model)


def depress(w: Tensor, a: Tensor, dp: Tensor, nu: Tensor, model: str) -> Tensor:
    """Normalized state after ``a`` RESET pulses: the SET law mirrored on ``1 - w``."""
    return 1.0 - potentiate(1.0 - w, a, dp, nu, model)
