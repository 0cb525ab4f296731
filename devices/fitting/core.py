"""The least-squares core of a fit: a trace prepared by branch, the parameter vector and the
fit of one parameter set to every branch (:func:`scipy.optimize.least_squares`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares

from .characterize import Trace
from .laws import NU_MAX, branch_law, law_has_nu

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
        if law_has_nu(model):
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
        nus = (0.3, 1.5, 4.0) if law_has_nu(model) else (0.0,)
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
