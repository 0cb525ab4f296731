"""The binarizers of binary stochastic learning (pure functions of tensors).

All random draws take an explicit ``torch.Generator`` so runs are reproducible.
"""

from __future__ import annotations

import torch
from torch import Tensor


def stochastic_binary(p: Tensor, gen: torch.Generator) -> Tensor:
    """1 with probability ``p`` (clamped to [0, 1] by construction of ``p``), else 0."""
    return (torch.rand(p.shape, generator=gen, device=p.device, dtype=p.dtype) < p).to(p.dtype)


def sigmoid_derivative_normalized(p: Tensor) -> Tensor:
    """``f'(a) / max f'`` for the logistic sigmoid, from its output ``p = f(a)``: ``4 p (1 - p)``."""
    return 4.0 * p * (1.0 - p)


def stochastic_derivative(p: Tensor, gen: torch.Generator) -> Tensor:
    """Binary derivative: 1 with probability ``4 p (1 - p)`` (the normalized sigmoid slope)."""
    return stochastic_binary(sigmoid_derivative_normalized(p), gen)


def sign_with_dead_zone(error: Tensor, dead_zone: float = 0.0) -> Tensor:
    """Ternary sign of ``error``: +1, -1, or 0 where ``|error| <= dead_zone``."""
    if dead_zone < 0:
        raise ValueError(f"dead_zone = {dead_zone!r}: must be >= 0")
    s = torch.sign(error)
    if dead_zone > 0:
        s = s * (error.abs() > dead_zone).to(s.dtype)
    return s


def stochastic_round(x: Tensor, gen: torch.Generator) -> Tensor:
    """Round to a neighbouring integer, up with probability equal to the fractional part
    (unbiased: ``E[round(x)] = x``). Returns an int64 tensor."""
    low = torch.floor(x)
    up = torch.rand(x.shape, generator=gen, device=x.device, dtype=x.dtype) < (x - low)
    return (low + up.to(x.dtype)).to(torch.int64)


def sampled_one_hot(p: Tensor, gen: torch.Generator) -> Tensor:
    """One class per row drawn from the categorical distribution ``p`` (rows sum to 1), as
    a one-hot matrix of ``p``'s shape and dtype: ``E[sampled_one_hot(p)] = p``."""
    index = torch.multinomial(p, 1, generator=gen)
    return torch.zeros_like(p).scatter_(1, index, 1.0)
