"""Counter-based random numbers for the compiled crossbar kernel (Numba).

Every random value is a pure function of a key (from the array's seed) and a counter
(which update, which cell, which draw), so results do not depend on thread count or
scheduling, and a checkpoint resumes exactly by storing the update counter.

* :func:`philox4x32` - Philox4x32-10 (Salmon, Moraes, Dror, Shaw, "Parallel random
  numbers: as easy as 1, 2, 3", SC 2011): four 32-bit outputs per call, passes
  TestU01's BigCrush. Checked against the Random123 known-answer vectors in the tests.
* :func:`uniform` - a 32-bit output as a double in the open interval (0, 1).
* :func:`normal_fast` - standard normal by inversion of the CDF with Acklam's rational
  approximation (relative error below 1.2e-9 over (0, 1); one uniform per normal), both
  regions computed and one selected, the tails' ``log`` from the float's bits, so that
  a loop of it vectorizes.
* :func:`binomial` - Binomial(n, p) by inversion of the CDF, exact, from uniforms drawn
  at successive counters.

All functions are Numba ``njit`` functions (importing this module needs Numba).
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

_M0 = np.uint64(0xD2511F53)
_M1 = np.uint64(0xCD9E8D57)
_W0 = np.uint64(0x9E3779B9)
_W1 = np.uint64(0xBB67AE85)
_MASK = np.uint64(0xFFFFFFFF)
_SHIFT = np.uint64(32)
ROUNDS = 10

#: Acklam's inverse-normal coefficients: central region numerator/denominator, tails.
_A = (-3.969683028665376e01, 2.209460984245205e02, -2.759285104469687e02,
      1.383577518672690e02, -3.066479806614716e01, 2.506628277459239e00)
_B = (-5.447609879822406e01, 1.615858368580409e02, -1.556989798598866e02,
      6.680131188771972e01, -1.328068155288572e01)
_C = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e00,
      -2.549732539343734e00, 4.374664141464968e00, 2.938163982698783e00)
_D = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00, 3.754408661907416e00)
_P_LOW = 0.02425

_LN2 = math.log(2.0)
_SQRT2 = math.sqrt(2.0)
_EXPONENT = np.uint64(0x7FF)
_MANTISSA = np.uint64(0xFFFFFFFFFFFFF)
_ONE_BITS = np.uint64(1023 << 52)
_52 = np.uint64(52)

#: Pulses per draw of :func:`binomial`'s inversion; larger counts are summed in chunks.
BINOMIAL_CHUNK = 256


@njit(inline="always", cache=True)
def philox4x32(c0, c1, c2, c3, k0, k1):  # type: ignore[no-untyped-def]
    """Philox4x32-10 of counter ``(c0, c1, c2, c3)`` and key ``(k0, k1)``; every argument
    and result a ``np.uint64`` holding a 32-bit value."""
    for _ in range(ROUNDS):
        p0 = _M0 * c0
        p1 = _M1 * c2
        c0, c1, c2, c3 = ((p1 >> _SHIFT) ^ c1 ^ k0), (p1 & _MASK), ((p0 >> _SHIFT) ^ c3 ^ k1), (p0 & _MASK)
        k0 = (k0 + _W0) & _MASK
        k1 = (k1 + _W1) & _MASK
    return c0, c1, c2, c3


@njit(inline="always", cache=True)
def uniform(x):  # type: ignore[no-untyped-def]
    """A 32-bit integer ``x`` as ``(x + 0.5) / 2**32``: never 0, never 1."""
    return (np.float64(x) + 0.5) * 2.3283064365386963e-10


@intrinsic
def _bits(typingctx, x):  # type: ignore[no-untyped-def]
    """The IEEE bits of a float64 as uint64 (a bit cast: vectorizes)."""
    if x != types.float64:
        return None

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        return builder.bitcast(args[0], ir.IntType(64))

    return types.uint64(types.float64), codegen


@intrinsic
def _float(typingctx, b):  # type: ignore[no-untyped-def]
    """The float64 of IEEE bits held in a uint64 (inverse of :func:`_bits`)."""
    if b != types.uint64:
        return None

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(types.uint64), codegen


@njit(inline="always", cache=True)
def fast_log(u):  # type: ignore[no-untyped-def]
    """``log(u)`` for a positive normal float64, without a call or a branch (so it
    vectorizes): ``u = 2^e m`` with ``m`` in [sqrt(2)/2, sqrt(2)), ``log m = 2 atanh(s)``,
    ``s = (m - 1) / (m + 1)``, ``|s| <= 0.172``, by its series to ``s^15`` (relative
    error below 1e-12)."""
    b = _bits(u)
    e = np.float64(np.int64((b >> _52) & _EXPONENT) - 1023)
    m = _float((b & _MANTISSA) | _ONE_BITS)
    big = m > _SQRT2
    m = m * 0.5 if big else m
    e = e + 1.0 if big else e
    s = (m - 1.0) / (m + 1.0)
    t = s * s
    series = 1.0 + t * (1 / 3 + t * (1 / 5 + t * (1 / 7 + t * (1 / 9 + t * (
        1 / 11 + t * (1 / 13 + t / 15))))))
    return e * _LN2 + 2.0 * s * series


@njit(inline="always", cache=True)
def normal_fast(u):  # type: ignore[no-untyped-def]
    """The standard normal quantile of ``u`` in (0, 1) (Acklam's approximation): the tail
    formula (``u < 0.02425`` or ``u > 0.97575``) and the central one are both computed and
    one is selected, with no call, so that a loop of it vectorizes."""
    q = math.sqrt(-2.0 * fast_log(min(u, 1.0 - u)))
    tail = (((((_C[0] * q + _C[1]) * q + _C[2]) * q + _C[3]) * q + _C[4]) * q + _C[5]) / (
        (((_D[0] * q + _D[1]) * q + _D[2]) * q + _D[3]) * q + 1.0)
    tail = tail if u < 0.5 else -tail
    c = u - 0.5
    r = c * c
    central = (((((_A[0] * r + _A[1]) * r + _A[2]) * r + _A[3]) * r + _A[4]) * r + _A[5]) * c / (
        ((((_B[0] * r + _B[1]) * r + _B[2]) * r + _B[3]) * r + _B[4]) * r + 1.0)
    return tail if (u < _P_LOW or u > 1.0 - _P_LOW) else central


@njit(inline="always", cache=True)
def _binomial_inverse(n, p, u):  # type: ignore[no-untyped-def]
    """Binomial(n, p) for p <= 0.5 by sequential search of the CDF with uniform ``u``."""
    q = 1.0 - p
    prob = q ** n
    cdf = prob
    k = 0
    ratio = p / q
    while u > cdf and k < n:
        prob *= (n - k) / (k + 1.0) * ratio
        k += 1
        cdf += prob
    return k


@njit(cache=True)
def binomial(n, p, u, c0, c1, c2, stream, k0, k1):  # type: ignore[no-untyped-def]
    """Binomial(``n``, ``p``) successes: the first chunk of up to ``BINOMIAL_CHUNK`` trials
    from uniform ``u``, chunk ``k >= 1`` from Philox at counter ``(c0, c1, c2, 2 k + stream)``
    (``stream`` 0 or 1, so two draws at one counter never share a chunk's uniform)."""
    flip = p > 0.5
    pp = 1.0 - p if flip else p
    total = 0
    left = n
    chunk = 0
    while left > 0:
        m = left if left < BINOMIAL_CHUNK else BINOMIAL_CHUNK
        if chunk > 0:
            r = philox4x32(c0, c1, c2, np.uint64(2 * chunk + stream), k0, k1)
            u = uniform(r[0])
        total += _binomial_inverse(m, pp, u)
        left -= m
        chunk += 1
    return n - total if flip else total
