"""The binarizers of binary stochastic learning (bsl.binarize): statistics and hand cases."""

from __future__ import annotations

import math

import pytest
import torch

from bsl.binarize import (
    sigmoid_derivative_normalized,
    sign_with_dead_zone,
    stochastic_binary,
    stochastic_derivative,
    stochastic_round,
)

pytestmark = pytest.mark.usefixtures("single_thread")  # small tensors: threads only wait

N = 200_000
"""Draws per probability in the statistical checks."""


def seeded(seed: int = 1234) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def binomial_tol(p: float, n: int = N, z: float = 5.0) -> float:
    """``z`` standard errors of a mean of ``n`` Bernoulli(p) draws (tiny floor for p in {0, 1})."""
    return z * math.sqrt(p * (1.0 - p) / n) + 1e-12


@pytest.mark.parametrize("p", [0.0, 0.03, 0.25, 0.5, 0.7, 0.97, 1.0])
def test_stochastic_binary_mean_is_p(p: float) -> None:
    s = stochastic_binary(torch.full((N,), p), seeded())
    assert s.dtype == torch.float32
    assert set(s.unique().tolist()) <= {0.0, 1.0}
    if p in (0.0, 1.0):
        assert bool((s == p).all()), "p = 0 and p = 1 are certain"
    assert abs(float(s.mean()) - p) <= binomial_tol(p)


def test_stochastic_binary_is_elementwise_and_keeps_shape_and_dtype() -> None:
    p = torch.tensor([0.0, 0.1, 0.5, 0.9, 1.0], dtype=torch.float64)
    s = stochastic_binary(p.expand(N, 5).reshape(N // 100, 100, 5), seeded())
    assert s.shape == (N // 100, 100, 5)
    assert s.dtype == torch.float64
    means = s.reshape(-1, 5).mean(0)
    for pi, mi in zip(p.tolist(), means.tolist(), strict=True):
        assert abs(mi - pi) <= binomial_tol(pi)


def test_stochastic_binary_is_reproducible_per_generator_seed() -> None:
    p = torch.rand(1000, generator=seeded(7))
    a = stochastic_binary(p, seeded(1))
    b = stochastic_binary(p, seeded(1))
    c = stochastic_binary(p, seeded(2))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_sigmoid_derivative_normalized_matches_the_sigmoid_slope() -> None:
    a = torch.linspace(-8, 8, 101, dtype=torch.float64)
    p = torch.sigmoid(a)
    slope = p * (1 - p)  # d sigmoid / da, maximal (1/4) at a = 0
    torch.testing.assert_close(sigmoid_derivative_normalized(p), slope / 0.25)
    assert float(sigmoid_derivative_normalized(torch.tensor(0.5))) == 1.0


@pytest.mark.parametrize("p", [0.0, 0.05, 0.2, 0.5, 0.8, 1.0])
def test_stochastic_derivative_mean_is_4p_1_minus_p(p: float) -> None:
    q = 4 * p * (1 - p)
    s = stochastic_derivative(torch.full((N,), p), seeded(99))
    assert set(s.unique().tolist()) <= {0.0, 1.0}
    if q in (0.0, 1.0):  # p in {0, 1} never fires, p = 0.5 always fires
        assert bool((s == q).all())
    assert abs(float(s.mean()) - q) <= binomial_tol(q)


def test_sign_with_dead_zone_hand_cases() -> None:
    # Values exactly representable in binary, so the boundary is tested exactly.
    e = torch.tensor([-0.5, -0.25, -0.125, -0.0, 0.0, 0.125, 0.25, 0.2500001, 0.5], dtype=torch.float64)
    expected = torch.tensor([-1, 0, 0, 0, 0, 0, 0, 1, 1], dtype=torch.float64)
    assert torch.equal(sign_with_dead_zone(e, 0.25), expected)
    # No dead zone: a plain sign, with sign(0) = 0.
    plain = torch.tensor([-1, -1, -1, 0, 0, 1, 1, 1, 1.0], dtype=torch.float64)
    assert torch.equal(sign_with_dead_zone(e, 0.0), plain)
    assert torch.equal(sign_with_dead_zone(e), sign_with_dead_zone(e, 0.0))
    # A dead zone as wide as every error silences all of them.
    assert torch.equal(sign_with_dead_zone(e, 0.5), torch.zeros_like(e))


def test_sign_with_dead_zone_boundary_in_float32() -> None:
    """An error equal to the dead zone (as the tensor's dtype holds it) is inside the zone."""
    e = torch.tensor([0.1, -0.1, 0.1001, -0.1001], dtype=torch.float32)
    assert sign_with_dead_zone(e, 0.1).tolist() == [0.0, 0.0, 1.0, -1.0]


def test_sign_with_dead_zone_keeps_shape_and_dtype() -> None:
    e = torch.randn(3, 4, 5, generator=seeded())
    s = sign_with_dead_zone(e, 0.3)
    assert s.shape == e.shape and s.dtype == e.dtype
    assert torch.equal(s, torch.sign(e) * (e.abs() > 0.3))


@pytest.mark.parametrize("dead_zone", [-0.1, -1e-9])
def test_sign_with_dead_zone_refuses_negative_dead_zone(dead_zone: float) -> None:
    with pytest.raises(ValueError, match="dead_zone"):
        sign_with_dead_zone(torch.zeros(3), dead_zone)


@pytest.mark.parametrize("x", [-2.3, -0.5, -0.01, 0.0, 0.25, 1.75, 3.0, 7.9])
def test_stochastic_round_is_unbiased_and_returns_floor_or_ceil(x: float) -> None:
    xs = torch.full((N,), x, dtype=torch.float64)
    r = stochastic_round(xs, seeded(5))
    assert r.dtype == torch.int64
    lo, hi = math.floor(x), math.ceil(x)
    assert set(r.unique().tolist()) <= {lo, hi}
    frac = x - lo
    if frac == 0:
        assert bool((r == lo).all()), "integers are returned unchanged"
    else:
        assert abs(float(r.double().mean()) - x) <= binomial_tol(frac)
        # Both neighbours occur (the rounding is really stochastic).
        assert set(r.unique().tolist()) == {lo, hi}


def test_stochastic_round_elementwise_mixture() -> None:
    x = (torch.rand(400, generator=seeded(3)) * 10 - 5).repeat(2000, 1)
    r = stochastic_round(x, seeded(4))
    assert bool(((r == torch.floor(x)) | (r == torch.ceil(x))).all())
    frac = (x[0] - torch.floor(x[0])).double()
    se = (frac * (1 - frac) / 2000).sqrt()
    assert bool(((r.double().mean(0) - x[0].double()).abs() <= 5 * se + 1e-6).all())
