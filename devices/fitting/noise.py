"""Noise estimates from the one-step residuals of a fit: method of moments, then the Gaussian
MA(1) likelihood (the method is in the doc of :mod:`devices.fitting.fit`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.linalg import cho_solve_banded, cholesky_banded
from scipy.optimize import brentq, minimize, nnls

from .core import _Data, _Params
from .laws import _law_slopes, _pulses_to_far_bound, branch_law, get_fit_law

#: Minimum number of one-step residuals (and of consecutive pairs of them) for noise estimates.
MIN_NOISE_STEPS = 20


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
            if get_fit_law(model).reaches_bound:  # keep clear of the bound by a margin of pulses
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
    """Weighted least squares ``a theta ~ y`` with ``theta >= 0``: non-negative least squares
    on the system scaled by ``sqrt(w)``."""
    sw = np.sqrt(w)
    return np.asarray(nnls(a * sw[:, None], y * sw)[0], dtype=np.float64)
