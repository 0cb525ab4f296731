"""Fit a :class:`~devices.physics.DeviceModel` step model to a pulse-response trace.

:func:`fit_trace` takes a :class:`~devices.characterize.Trace` (simulated, or measured
and read with :func:`~devices.characterize.read_trace_csv`) and fits one of the step
models of :mod:`devices.steps` (``linear``, ``soft_bounds`` or ``exponential``) by
nonlinear least squares (:func:`scipy.optimize.least_squares`):

* every branch (one SET or RESET sweep of one device in one cycle) is predicted by the
  model's closed-form ``n``-pulse law, started from the branch's first measured point,
  and compared with its measured points;
* the parameters are the bounds ``g_min`` and ``g_max`` (S), the SET and RESET steps
  ``dw_up`` and ``dw_down`` (S) and, for ``exponential``, the nonlinearities
  ``nu_up`` and ``nu_down`` (dimensionless). Their meaning is that of
  :class:`DeviceModel` (``dw_up = dw_min (1 + up_down)``, ...).

The noise is then estimated from the one-step residuals ``e_k = G_{k+1} - f(G_k, 1)``
(``f`` the fitted one-pulse law, applied to the measured ``G_k``). With cycle-to-cycle
step noise ``c_k`` and read noise ``r_k``, ``e_k = c_k + r_{k+1} - f' r_k`` (``f' = df/dG``,
1 for the linear law): the read of ``G_{k+1}`` enters two consecutive residuals with
opposite signs, so the residuals are an MA(1) series, and

* ``cov(e_k, e_{k+1}) = -f' s_read^2``, i.e. ``s_read^2 = -cov(e_k, e_{k+1})`` (read noise);
* ``var(e_k) = s_c2c^2 + (1 + f'^2) s_read^2``, i.e. ``s_c2c^2 = var(e) - 2 s_read^2``
  (cycle-to-cycle noise), floored at 0.

Since the simulator's noises are relative (read noise ``read_noise_std * G``, step noise
``dw_min_std * step``), the variances are modelled per residual: ``s_read^2`` is
``read_noise_std^2 G^2`` at that read and ``s_c2c^2`` is ``dw_min_std^2 d_k^2`` with
``d_k`` the model's step there (exactly: its derivative in the pulse count). The two
unknowns ``dw_min_std`` and ``read_noise_std`` are first solved from these moment
conditions (method of moments, reweighted least squares), then refined by maximizing
the Gaussian likelihood of the residuals under the same MA(1) covariance (tridiagonal),
which uses the data far more efficiently when the read noise dominates the step noise:
with the round-trip test settings the moments estimate of ``dw_min_std`` scatters
several times (3-7x) more from seed to seed.
One-standard-error ranges come from the likelihood's curvature. Only steps away from
the far bound are used (a bound clips the step noise); ``FitResult.dw_min_std`` is thus
``s_c2c / rms(model step)`` and ``read_noise_std`` is ``s_read / rms(G)``.

With two or more devices each device is also fitted on its own; the noise is then
estimated with each device's own parameters, and the device-to-device spreads of
``g_min``, ``g_max`` (as fractions of the range) and ``dw_min`` (relative) are reported.
Devices that barely move are counted as stuck and left out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.linalg import cho_solve_banded, cholesky_banded
from scipy.optimize import brentq, least_squares, minimize

from .characterize import Trace
from .physics import DTOD_TRUNCATION, STEP_MODELS, DeviceModel
from .steps import NU_FLOOR

#: Upper bound of the fitted nonlinearity ``nu`` (beyond it the law is a step function).
NU_MAX = 30.0
#: Minimum number of one-step residuals (and of consecutive pairs of them) for noise estimates.
MIN_NOISE_STEPS = 20


# -- the step laws in numpy (same formulas as devices.steps) ---------------------------------


def branch_law(
    u: np.ndarray | float, n: np.ndarray | float, dp: np.ndarray | float, nu: np.ndarray | float, model: str
) -> np.ndarray:
    """Normalized state after ``n`` pulses towards 1 from ``u`` (numpy twin of
    :func:`devices.steps.potentiate`): ``u`` is ``w`` for SET and ``1 - w`` for RESET,
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


# -- prepared data ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Data:
    g: np.ndarray
    """All reads, S."""
    n: np.ndarray
    """Pulses since the branch's first read, per read."""
    branch: np.ndarray
    """Branch index of each read."""
    reset: np.ndarray
    """Bool per read: RESET branch."""
    start: np.ndarray
    """Index of each branch's first read."""
    branch_reset: np.ndarray
    """Bool per branch."""
    rows: list[np.ndarray]
    """Read indices of every branch, in pulse order."""

    @property
    def fitted(self) -> np.ndarray:
        """Reads that are predictions (not a branch's starting point)."""
        return self.n > 0


def _prepare(trace: Trace) -> _Data:
    groups = trace.branch_rows()
    order = np.concatenate(groups) if groups else np.zeros(0, dtype=np.int64)
    sizes = np.array([len(r) for r in groups], dtype=np.int64)
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1])) if len(sizes) else sizes
    branch = np.repeat(np.arange(len(groups)), sizes)
    pulse = trace.pulse[order]
    n = pulse - pulse[starts][branch] if len(order) else pulse
    reset = trace.polarity[order] == "reset"
    rows = [np.arange(s, s + k) for s, k in zip(starts, sizes, strict=True)]
    return _Data(
        g=trace.conductance_S[order], n=n.astype(np.float64), branch=branch, reset=reset,
        start=starts, branch_reset=reset[starts] if len(starts) else reset, rows=rows,
    )


# -- parameters -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Params:
    g_min: float
    span: float
    dp_up: float
    dp_down: float
    nu_up: float
    nu_down: float

    @property
    def g_max(self) -> float:
        return self.g_min + self.span


def _predict(data: _Data, p: _Params, model: str) -> np.ndarray:
    w0 = (data.g[data.start] - p.g_min) / p.span
    u0 = np.where(data.branch_reset, 1.0 - w0, w0)[data.branch]
    dp = np.where(data.reset, p.dp_down, p.dp_up)
    nu = np.where(data.reset, p.nu_down, p.nu_up)
    u = branch_law(u0, data.n, dp, nu, model)
    return p.g_min + p.span * np.where(data.reset, 1.0 - u, u)


class _Packing:
    """Maps the free parameters of a fit to a scaled vector and back."""

    def __init__(self, model: str, has_set: bool, has_reset: bool, scale: float) -> None:
        self.model, self.scale = model, scale
        self.names = ["g_min", "span"]
        if has_set:
            self.names.append("dp_up")
        if has_reset:
            self.names.append("dp_down")
        if model == "exponential":
            if has_set:
                self.names.append("nu_up")
            if has_reset:
                self.names.append("nu_down")
        lower = {"g_min": 0.0, "span": 1e-3, "dp_up": 1e-7, "dp_down": 1e-7, "nu_up": 0.0, "nu_down": 0.0}
        upper = {"g_min": np.inf, "span": 100.0, "dp_up": 0.999, "dp_down": 0.999,
                 "nu_up": NU_MAX, "nu_down": NU_MAX}
        self.lower = np.array([lower[k] for k in self.names])
        self.upper = np.array([upper[k] for k in self.names])

    def pack(self, p: _Params) -> np.ndarray:
        values = {"g_min": p.g_min / self.scale, "span": p.span / self.scale, "dp_up": p.dp_up,
                  "dp_down": p.dp_down, "nu_up": p.nu_up, "nu_down": p.nu_down}
        x = np.array([values[k] for k in self.names])
        inside = self.lower + 1e-9 * np.maximum(1.0, np.abs(self.lower))
        return np.clip(x, inside, np.where(np.isinf(self.upper), np.inf, self.upper * (1 - 1e-9)))

    def unpack(self, x: np.ndarray) -> _Params:
        v = dict(zip(self.names, x.tolist(), strict=True))
        dp_up = v["dp_up"] if "dp_up" in v else v["dp_down"]
        dp_down = v.get("dp_down", dp_up)
        nu_up = v.get("nu_up", v.get("nu_down", 0.0))
        nu_down = v.get("nu_down", nu_up)
        return _Params(v["g_min"] * self.scale, v["span"] * self.scale, dp_up, dp_down, nu_up, nu_down)


@dataclass(frozen=True)
class _Core:
    params: _Params
    r2_set: float
    r2_reset: float
    rms: float
    n_fitted: int


def _initial_step(data: _Data, reset: bool, span: float) -> float | None:
    """Median over branches of 0.9 travel / pulses to reach 90% of the travel (normalized)."""
    estimates = []
    for i, rows in enumerate(data.rows):
        if data.branch_reset[i] != reset or len(rows) < 2:
            continue
        g = data.g[rows] * (-1.0 if reset else 1.0)
        travel = g.max() - g[0]
        if travel <= 0:
            continue
        k = int(np.argmax(g >= g[0] + 0.9 * travel))
        if data.n[rows][k] > 0:
            estimates.append(0.9 * travel / data.n[rows][k] / span)
    return float(np.median(estimates)) if estimates else None


def _fit_core(data: _Data, model: str, start: _Params | None) -> _Core:
    fitted = data.fitted
    if int(fitted.sum()) < 8:
        raise ValueError(
            f"trace has {int(fitted.sum())} reads after the first of their branch: too few to fit "
            "(need at least 8)"
        )
    g = data.g
    g_lo, g_hi = float(g.min()), float(g.max())
    scale = g_hi - g_lo
    if not scale > 0:
        raise ValueError(f"every read is {g_lo!r} S: the conductance never changes, nothing to fit")
    has_set = bool((fitted & ~data.reset).any())
    has_reset = bool((fitted & data.reset).any())
    packing = _Packing(model, has_set, has_reset, scale)
    if start is None:
        fallback = 1.0 / max(float(data.n.max()), 1.0)
        dp_up = _initial_step(data, False, scale) or _initial_step(data, True, scale) or fallback
        dp_down = _initial_step(data, True, scale) or dp_up
        nus = (0.3, 1.5, 4.0) if model == "exponential" else (0.0,)
        starts = [_Params(g_lo, scale, min(dp_up, 0.5), min(dp_down, 0.5), nu, nu) for nu in nus]
    else:
        starts = [start]

    def residuals(x: np.ndarray) -> np.ndarray:
        return (_predict(data, packing.unpack(x), model)[fitted] - g[fitted]) / scale

    best = None
    for p0 in starts:
        sol = least_squares(
            residuals, packing.pack(p0), bounds=(packing.lower, packing.upper), x_scale="jac",
            method="trf", max_nfev=2000,
        )
        if best is None or sol.cost < best.cost:
            best = sol
    assert best is not None
    params = packing.unpack(best.x)
    pred = _predict(data, params, model)
    return _Core(
        params=params,
        r2_set=_r2(g, pred, fitted & ~data.reset),
        r2_reset=_r2(g, pred, fitted & data.reset),
        rms=float(np.sqrt(np.mean((pred[fitted] - g[fitted]) ** 2))),
        n_fitted=int(fitted.sum()),
    )


def _r2(g: np.ndarray, pred: np.ndarray, mask: np.ndarray) -> float:
    if mask.sum() < 2:
        return float("nan")
    ss_tot = float(np.sum((g[mask] - g[mask].mean()) ** 2))
    ss_res = float(np.sum((g[mask] - pred[mask]) ** 2))
    return 1.0 - ss_res / ss_tot if ss_tot > 0 else float("nan")


# -- noise from one-step residuals ------------------------------------------------------------


@dataclass
class _Steps:
    """One-step residuals away from the bounds, pooled over branches (and devices)."""

    e: list[np.ndarray] = field(default_factory=list)
    """Residual ``G_{k+1} - f(G_k, 1)`` of each usable step, S (mirrored for RESET)."""
    slope_a: list[np.ndarray] = field(default_factory=list)
    """``d f / d a`` at one pulse: the step's sensitivity to its pulse count, S."""
    slope_g: list[np.ndarray] = field(default_factory=list)
    """``f' = d f / d G_k``."""
    g_now: list[np.ndarray] = field(default_factory=list)
    """``G_k``, S."""
    g_next: list[np.ndarray] = field(default_factory=list)
    """``G_{k+1}``, S."""
    linked: list[np.ndarray] = field(default_factory=list)
    """True where the next usable step is ``k + 1`` of the same branch (shares read ``G_{k+1}``)."""

    def add(self, data: _Data, p: _Params, model: str) -> None:
        for i, rows in enumerate(data.rows):
            if len(rows) < 2:
                continue
            reset = bool(data.branch_reset[i])
            dp, nu = (p.dp_down, p.nu_down) if reset else (p.dp_up, p.nu_up)
            g, n = data.g[rows], data.n[rows]
            w = (g - p.g_min) / p.span
            u = 1.0 - w if reset else w
            e = p.span * (u[1:] - branch_law(u[:-1], 1.0, dp, nu, model))
            slope_a, slope_u = _law_slopes(u[:-1], dp, nu, model)
            limit = _pulses_to_far_bound(u[:1], dp, nu, model)[0]
            if model != "soft_bounds":  # keep clear of the bound by a margin of pulses
                limit -= 3.0 + 0.1 / dp + 2.0 * math.sqrt(max(limit, 0.0))
            idx = np.flatnonzero((np.diff(n) == 1) & (n[1:] <= limit))
            self.e.append(e[idx])
            self.slope_a.append(p.span * slope_a[idx])
            self.slope_g.append(slope_u[idx])
            self.g_now.append(g[:-1][idx])
            self.g_next.append(g[1:][idx])
            self.linked.append(np.append(np.diff(idx) == 1, False)[: len(idx)])

    def count(self) -> int:
        """Usable one-step residuals."""
        return int(sum(len(e) for e in self.e))

    def estimate(self) -> dict[str, float] | None:
        """Noise estimates from the MA(1) residuals (see the module doc); None if too few.

        Unknowns: ``s2 = dw_min_std^2`` and ``r2 = read_noise_std^2``. With ``D_k`` the
        squared step sensitivity and ``H_k = G_{k+1}^2 + f'^2 G_k^2``:
        ``var(e_k) = s2 D_k + r2 H_k`` and ``cov(e_k, e_{k+1}) = -r2 f'_{k+1} G_{k+1}^2``.

        1. Method of moments: these two moment conditions, solved by least squares
           reweighted by the inverse variance of each product.
        2. Refinement: the Gaussian likelihood of the residuals under exactly this
           (tridiagonal) covariance, maximized from the moments estimate. The lag-0/lag-1
           moments use the data inefficiently when read noise dominates the step noise
           (with the round-trip test settings their c2c estimate scatters 3-7x more).
        """
        cat = {k: np.concatenate(v) if v else np.zeros(0) for k, v in vars(self).items()}
        n_steps = len(cat["e"])
        linked = cat["linked"].astype(bool)
        if n_steps < MIN_NOISE_STEPS or linked.sum() < MIN_NOISE_STEPS:
            return None
        nxt = np.flatnonzero(linked) + 1
        e = cat["e"] - cat["e"].mean()
        m2 = float(np.mean(e**2))
        d2 = cat["slope_a"] ** 2
        h = cat["g_next"] ** 2 + (cat["slope_g"] * cat["g_now"]) ** 2
        c = cat["slope_g"][nxt] * cat["g_now"][nxt] ** 2  # f' G^2 at the shared read
        d_ref, h_ref = float(np.mean(d2)), float(np.mean(h))
        out = {"n_steps": float(n_steps), "dw_min_std": 0.0, "read_noise_std": 0.0}
        if m2 > 0:
            # Unknowns in units of the residual variance: a = s2 d_ref / m2, b = r2 h_ref / m2.
            a1 = np.stack((d2 / d_ref, h / h_ref), axis=1)
            a2 = np.stack((np.zeros_like(c), -c / h_ref), axis=1)
            theta = _moments(a1, a2, e**2 / m2, e[linked] * e[nxt] / m2, linked, nxt)
            out["dw_min_std_moments"] = math.sqrt(theta[0] * m2 / d_ref)
            out["read_noise_std_moments"] = math.sqrt(theta[1] * m2 / h_ref)
            off = np.zeros(n_steps)
            off[nxt] = -c / h_ref  # covariance of steps (k - 1, k), in the upper band at k
            theta, bounds = _max_likelihood(e / math.sqrt(m2), a1, off, theta)
            units = (m2 / d_ref, m2 / h_ref)
            out["dw_min_std"] = math.sqrt(theta[0] * units[0])
            out["read_noise_std"] = math.sqrt(theta[1] * units[1])
            if bounds is not None:  # one-sigma ranges of the variance estimates, as stds
                for i, name in enumerate(("dw_min_std", "read_noise_std")):
                    out[f"{name}_lo"] = math.sqrt(bounds[0, i] * units[i])
                    out[f"{name}_hi"] = math.sqrt(bounds[1, i] * units[i])
        s2, r2 = out["dw_min_std"] ** 2, out["read_noise_std"] ** 2
        out["s_c2c"] = math.sqrt(s2 * d_ref)
        out["s_read"] = math.sqrt(r2 * float(np.mean(cat["g_next"] ** 2)))
        return out


def _moments(
    a1: np.ndarray, a2: np.ndarray, y1: np.ndarray, y2: np.ndarray, linked: np.ndarray, nxt: np.ndarray
) -> np.ndarray:
    """Iteratively reweighted least squares on the moment conditions ``E[y1] = a1 theta``
    (squared residuals) and ``E[y2] = a2 theta`` (lag-1 products), ``theta >= 0``."""
    a, y = np.concatenate((a1, a2)), np.concatenate((y1, y2))
    w = np.ones_like(y)
    theta = np.zeros(2)
    for _ in range(8):
        theta = _nonneg_wls(a, y, w)
        var = np.maximum(a1 @ theta, 1e-12)
        cov = a2 @ theta
        # Gaussian: var(e_k^2) = 2 var_k^2, var(e_k e_{k+1}) = var_k var_{k+1} + cov^2.
        w = np.concatenate((0.5 / var**2, 1.0 / (var[linked] * var[nxt] + cov**2)))
    return theta


def _max_likelihood(
    z: np.ndarray, a1: np.ndarray, off: np.ndarray, start: np.ndarray
) -> tuple[np.ndarray, np.ndarray | None]:
    """Maximize the Gaussian likelihood of ``z`` with tridiagonal covariance
    ``diag = a1 theta`` and upper band ``off * theta[1]``, over ``theta >= 0``.

    Returns ``theta`` and its one-standard-error range ``[[lo0, lo1], [hi0, hi1]]`` (from
    the curvature of the log-likelihood, by forward differences so that the bound at 0
    is never crossed), or None for the range when it cannot be computed."""
    jitter = 1e-9

    def nll(theta: np.ndarray) -> float:  # -2 log L + const
        band = np.vstack((off * theta[1], a1 @ theta + jitter))
        try:
            chol = cholesky_banded(band)
        except np.linalg.LinAlgError:
            return 1e300
        x = cho_solve_banded((chol, False), z)
        return float(2.0 * np.sum(np.log(chol[1])) + z @ x)

    x0 = np.clip(start, 0.02, 10.0)
    best = minimize(nll, x0, method="L-BFGS-B", bounds=[(0.0, 50.0), (0.0, 50.0)])
    theta = best.x if np.all(np.isfinite(best.x)) and nll(best.x) <= nll(start) else start
    h = 1e-3 * np.maximum(theta, 1e-2)
    f0 = nll(theta)
    hess = np.empty((2, 2))
    for i in range(2):
        ei = np.eye(2)[i] * h[i]
        hess[i, i] = (nll(theta + 2 * ei) - 2 * nll(theta + ei) + f0) / h[i] ** 2
        for j in range(i + 1, 2):
            ej = np.eye(2)[j] * h[j]
            hess[i, j] = hess[j, i] = (
                nll(theta + ei + ej) - nll(theta + ei) - nll(theta + ej) + f0
            ) / (h[i] * h[j])
    # Fisher information = Hessian of -log L = hess / 2: standard errors where the
    # curvature is positive definite. At the bound theta = 0 it need not be: there the
    # range is where -2 log L rises by 1 along that parameter (likelihood ratio).
    lo, hi = np.empty(2), np.empty(2)
    if np.all(np.isfinite(hess)) and np.linalg.det(hess) > 0 and hess[0, 0] > 0:
        se = np.sqrt(np.diag(2.0 * np.linalg.inv(hess)))
        lo, hi = np.maximum(theta - se, 0.0), theta + se
    else:
        for i in range(2):
            step = np.eye(2)[i]
            hi[i] = theta[i] + _rise(lambda t, s=step: nll(theta + t * s) - f0 - 1.0, 1e-3 + theta[i])
            lo[i] = 0.0
            if theta[i] > 0 and nll(theta - theta[i] * step) > f0 + 1.0:
                lo[i] = theta[i] - brentq(lambda t, s=step: nll(theta - t * s) - f0 - 1.0, 0.0, theta[i])
    if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
        return theta, None
    return theta, np.stack((lo, hi))


def _rise(g: Any, t: float) -> float:
    """The first ``t > 0`` where ``g(t) = 0``, for ``g(0) < 0`` (doubling, then bisection)."""
    for _ in range(60):
        if g(t) > 0:
            return float(brentq(g, 0.0, t))
        t *= 2.0
    return float("inf")


def _nonneg_wls(a: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weighted least squares ``a theta ~ y`` with ``theta >= 0`` (two unknowns)."""
    sw = np.sqrt(w)
    theta = np.linalg.lstsq(a * sw[:, None], y * sw, rcond=None)[0]
    if (theta >= 0).all():
        return theta
    best, best_cost = np.zeros(2), float(np.sum(w * y**2))
    for j in (0, 1):
        col = a[:, j]
        denom = float(np.sum(w * col**2))
        t = max(0.0, float(np.sum(w * col * y)) / denom) if denom > 0 else 0.0
        cost = float(np.sum(w * (y - t * col) ** 2))
        if cost < best_cost:
            best, best_cost = np.eye(2)[j] * t, cost
    return best


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
    """Fitted SET step per pulse, S (meaning per step model as in :mod:`devices.physics`)."""
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
            "nu_up": self.nu_up if self.step_model == "exponential" else 0.0,
            "nu_down": self.nu_down if self.step_model == "exponential" else 0.0,
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
            + (f",   nu_up   = {self.nu_up:.3f}" if self.step_model == "exponential" else ""),
            f"  dw_down = {_si(self.dw_down)} per RESET pulse"
            + (f",   nu_down = {self.nu_down:.3f}" if self.step_model == "exponential" else ""),
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


# -- entry point -------------------------------------------------------------------------------


def fit_trace(trace: Trace, model: str = "exponential", *, per_device: bool = True) -> FitResult:
    """Fit the step model ``model`` (``linear``, ``soft_bounds``, ``exponential``) to ``trace``.

    All branches of all devices are fitted together (one parameter set); with two or more
    devices and ``per_device`` each device is also fitted alone, for the device-to-device
    spreads and for the noise estimates. With two or more devices, devices that barely
    move (travel below 10% of the median device's) are counted as stuck and left out.
    See the module doc for the method. Conductances in the result are in siemens.

    Raises:
        ValueError: unknown model, too few reads, or a trace whose conductance never changes.
    """
    if model not in STEP_MODELS:
        raise ValueError(f"unknown step model {model!r}: choose one of {STEP_MODELS}")
    if not isinstance(trace, Trace):
        raise TypeError(f"fit_trace: expected a Trace, got {type(trace).__name__}")
    if len(trace) == 0:
        raise ValueError("the trace is empty: nothing to fit")
    notes: list[str] = []
    devices = trace.devices
    stuck: list[int] = []
    if len(devices) >= 2:
        travel = np.array([np.ptp(trace.conductance_S[trace.device == d]) for d in devices])
        stuck = [int(d) for d, t in zip(devices, travel, strict=True) if t < 0.1 * np.median(travel)]
        if len(stuck) == len(devices):
            stuck = []
    moving = trace.take(~np.isin(trace.device, stuck)) if stuck else trace
    data = _prepare(moving)
    core = _fit_core(data, model, None)
    p = core.params
    has_set = bool((data.fitted & ~data.reset).any())
    has_reset = bool((data.fitted & data.reset).any())
    if not has_reset:
        notes.append("no RESET reads to fit: the RESET step and nonlinearity copy the SET ones")
    if not has_set:
        notes.append("no SET reads to fit: the SET step and nonlinearity copy the RESET ones")
    notes += _saturation_notes(data, p, model)
    if p.g_max > 0.1:
        notes.append(
            f"conductances up to {p.g_max:.3g} S (a resistance below 10 ohm): is conductance_S "
            "really in siemens (not uS)?"
        )
    stuck_off = stuck_on = 0
    if stuck:
        middle = p.g_min + 0.5 * p.span
        stuck_on = sum(float(np.median(trace.conductance_S[trace.device == d])) > middle for d in stuck)
        stuck_off = len(stuck) - stuck_on
        notes.append(f"stuck device(s) left out of the fit: {stuck}")

    device_fits: list[DeviceFit] = []
    steps = _Steps()
    if per_device and len(devices) - len(stuck) >= 2:
        for dev in devices:
            if int(dev) in stuck:
                continue
            sub = _prepare(trace.take(trace.device == dev))
            try:
                dc = _fit_core(sub, model, p)
            except ValueError as exc:
                notes.append(f"device {int(dev)} not fitted alone: {exc}")
                continue
            q = dc.params
            device_fits.append(DeviceFit(
                device=int(dev), g_min=q.g_min, g_max=q.g_max, dw_up=q.dp_up * q.span,
                dw_down=q.dp_down * q.span, nu_up=q.nu_up if model == "exponential" else 0.0,
                nu_down=q.nu_down if model == "exponential" else 0.0, r2_set=dc.r2_set,
                r2_reset=dc.r2_reset, n_points=len(sub.g),
            ))
            steps.add(sub, q, model)
        if len(device_fits) < 2:
            device_fits = []
            steps = _Steps()
    if not device_fits:
        steps.add(data, p, model)
    noise = steps.estimate() or {}
    spreads: dict[str, float | None] = {"g_min_dtod": None, "g_max_dtod": None, "dw_min_dtod": None}
    if device_fits:
        span = np.mean([f.g_max - f.g_min for f in device_fits])
        dw = np.array([f.dw_min for f in device_fits])
        spreads = {
            "g_min_dtod": float(np.std([f.g_min for f in device_fits], ddof=1) / span),
            "g_max_dtod": float(np.std([f.g_max for f in device_fits], ddof=1) / span),
            "dw_min_dtod": float(np.std(dw, ddof=1) / np.mean(dw)),
        }
        notes.append("device-to-device spreads include each device's fitting error (an upper estimate)")
    n_set = int(np.sum(~data.branch_reset))
    return FitResult(
        step_model=model,
        g_min=p.g_min,
        g_max=p.g_max,
        dw_up=p.dp_up * p.span,
        dw_down=p.dp_down * p.span,
        nu_up=p.nu_up if model == "exponential" else 0.0,
        nu_down=p.nu_down if model == "exponential" else 0.0,
        r2_set=core.r2_set,
        r2_reset=core.r2_reset,
        rms_residual_S=core.rms,
        n_points=len(trace),
        n_fitted=core.n_fitted,
        n_set_branches=n_set,
        n_reset_branches=len(data.start) - n_set,
        n_devices=len(devices),
        n_cycles=len(trace.cycles),
        dw_min_std=noise.get("dw_min_std"),
        read_noise_std=noise.get("read_noise_std"),
        s_c2c_S=noise.get("s_c2c"),
        s_read_S=noise.get("s_read"),
        n_noise_steps=steps.count(),
        dw_min_std_range=_range(noise, "dw_min_std"),
        read_noise_std_range=_range(noise, "read_noise_std"),
        dw_min_std_moments=noise.get("dw_min_std_moments"),
        read_noise_std_moments=noise.get("read_noise_std_moments"),
        device_fits=tuple(device_fits),
        stuck_devices=tuple(stuck),
        stuck_off_fraction=stuck_off / len(devices) if len(devices) >= 2 else None,
        stuck_on_fraction=stuck_on / len(devices) if len(devices) >= 2 else None,
        trace_source=trace.source,
        notes=tuple(notes),
        **spreads,
    )


def _range(noise: dict[str, float], name: str) -> tuple[float, float] | None:
    if f"{name}_lo" not in noise:
        return None
    return (noise[f"{name}_lo"], noise[f"{name}_hi"])


def _saturation_notes(data: _Data, p: _Params, model: str) -> list[str]:
    """Warn when no branch shows the plateau of the bound it heads for (the fitted law
    must reach that bound, or 98% of the way for soft bounds, 3 pulses before the branch
    ends): that bound is then extrapolated. Also warn about a poor fit."""
    notes = []
    for reset, bound, pol in ((False, "g_max", "SET"), (True, "g_min", "RESET")):
        branches = [
            i for i, rows in enumerate(data.rows) if data.branch_reset[i] == reset and len(rows) > 1
        ]
        if not branches:
            continue
        dp, nu = (p.dp_down, p.nu_down) if reset else (p.dp_up, p.nu_up)
        w0 = (data.g[data.start[branches]] - p.g_min) / p.span
        u0 = 1.0 - w0 if reset else w0
        n_end = np.array([data.n[data.rows[i][-1]] for i in branches])
        level = 0.98 if model == "soft_bounds" else 1.0
        if not np.any(_pulses_to_far_bound(u0, dp, nu, model, level) + 3.0 <= n_end):
            notes.append(
                f"no {pol} branch reaches a plateau at {bound}: {bound} is extrapolated by the "
                f"{model} law and poorly determined (apply more pulses per branch)"
            )
    for pol, r2 in (("SET", _r2_of(data, p, model, False)), ("RESET", _r2_of(data, p, model, True))):
        if math.isfinite(r2) and r2 < 0.9:
            notes.append(
                f"poor fit of the {pol} branches (R^2 = {r2:.3f}): the {model} law does not describe "
                "them (abrupt switching? another step model?)"
            )
    return notes


def _r2_of(data: _Data, p: _Params, model: str, reset: bool) -> float:
    mask = data.fitted & (data.reset if reset else ~data.reset)
    return _r2(data.g, _predict(data, p, model), mask)


__all__ = ["DeviceFit", "FitResult", "branch_law", "fit_trace"]
