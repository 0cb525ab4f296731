"""Fit a :class:`~devices.sim.physics.DeviceModel` step model to a pulse-response trace.

:func:`fit_trace` takes a :class:`~devices.fitting.characterize.Trace` (simulated, or measured
and read with :func:`~devices.fitting.characterize.read_trace_csv`) and fits one of the step
models of :mod:`devices.sim.steps` (``linear``, ``soft_bounds`` or ``exponential``) by
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

import numpy as np

from .characterize import Trace
from .core import _Data, _fit_core, _Params, _predict, _prepare, _r2
from .laws import _pulses_to_far_bound, branch_law, get_fit_law, law_has_nu
from .noise import _Steps
from .result import DeviceFit, FitResult

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
    get_fit_law(model)  # ValueError for a law that cannot be fitted
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
                dw_down=q.dp_down * q.span, nu_up=q.nu_up if law_has_nu(model) else 0.0,
                nu_down=q.nu_down if law_has_nu(model) else 0.0, r2_set=dc.r2_set,
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
        nu_up=p.nu_up if law_has_nu(model) else 0.0,
        nu_down=p.nu_down if law_has_nu(model) else 0.0,
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
        level = 1.0 if get_fit_law(model).reaches_bound else 0.98
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
