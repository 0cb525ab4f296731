"""Fitting a DeviceModel to a pulse-response trace (devices.fitting): round trips through the
simulator with known truths, negative controls, device-to-device spreads and preset files."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from devices import DeviceModel, SimulatedCrossbar, get_preset, save_preset_file
from devices.fitting import FitResult, branch_law, fit_trace
from devices.fitting.characterize import (
    Trace,
    characterization_crossbar,
    potentiation_depression,
    read_trace_csv,
)
from devices.sim.steps import depress, potentiate

G_MIN, G_MAX = 10e-6, 100e-6
RANGE = G_MAX - G_MIN
BASE = {"g_min": G_MIN, "g_max": G_MAX, "dw_min": 0.9e-6, "up_down": 0.2,
        "dw_min_std": 0.2, "read_noise_std": 0.01}
TRUTHS = {
    "exponential": DeviceModel(step_model="exponential", nu_up=1.0, nu_down=2.0, **BASE),
    "linear": DeviceModel(step_model="linear", **BASE),
    "soft_bounds": DeviceModel(step_model="soft_bounds", **BASE),
}
PULSES, CYCLES = 200, 12


def _trace(model: DeviceModel, seed: int = 0, **kw) -> Trace:
    kw = {"pulses": PULSES, "cycles": CYCLES, **kw}
    return potentiation_depression(model, seed=seed, **kw)


def _check(res: FitResult, truth: DeviceModel) -> list[str]:
    """The round-trip tolerances; returns the failures (empty = all within tolerance).

    g_min, g_max within 5% of the range; dw_up, dw_down within 10%; nu within 0.3 (absolute);
    dw_min_std within 0.07 (absolute); read_noise_std within a factor 2; R^2 > 0.95 per branch.
    """
    bad = []
    for name in ("g_min", "g_max"):
        if abs(getattr(res, name) - getattr(truth, name)) > 0.05 * truth.g_range:
            bad.append(f"{name} {getattr(res, name):.4g} vs {getattr(truth, name):.4g}")
    for name in ("dw_up", "dw_down"):
        if abs(getattr(res, name) / getattr(truth, name) - 1) > 0.10:
            bad.append(f"{name} {getattr(res, name):.4g} vs {getattr(truth, name):.4g}")
    for name in ("nu_up", "nu_down"):
        if abs(getattr(res, name) - getattr(truth, name)) > 0.3:
            bad.append(f"{name} {getattr(res, name):.3f} vs {getattr(truth, name):.3f}")
    if res.dw_min_std is None or abs(res.dw_min_std - truth.dw_min_std) > 0.07:
        bad.append(f"dw_min_std {res.dw_min_std} vs {truth.dw_min_std}")
    if res.read_noise_std is None or not (
        0.5 * truth.read_noise_std <= res.read_noise_std <= 2 * truth.read_noise_std
    ):
        bad.append(f"read_noise_std {res.read_noise_std} vs {truth.read_noise_std}")
    for name in ("r2_set", "r2_reset"):
        if not getattr(res, name) > 0.95:
            bad.append(f"{name} {getattr(res, name):.4f}")
    return bad


# -- the numpy laws are those of devices.sim.steps -----------------------------------------------------


@pytest.mark.parametrize("model", ["linear", "soft_bounds", "exponential"])
def test_branch_law_matches_devices_steps(model: str) -> None:
    gen = torch.Generator().manual_seed(5)
    u = torch.rand(500, generator=gen, dtype=torch.float64)
    a = torch.randint(0, 80, (500,), generator=gen).to(torch.float64)
    dp = 0.002 + 0.05 * torch.rand(500, generator=gen, dtype=torch.float64)
    nu = 5.0 * torch.rand(500, generator=gen, dtype=torch.float64) if model == "exponential" else 0 * u
    up = branch_law(u.numpy(), a.numpy(), dp.numpy(), nu.numpy(), model)
    np.testing.assert_allclose(up, potentiate(u, a, dp, nu, model).numpy(), rtol=1e-12, atol=1e-15)
    down = 1.0 - branch_law(1.0 - u.numpy(), a.numpy(), dp.numpy(), nu.numpy(), model)
    np.testing.assert_allclose(down, depress(u, a, dp, nu, model).numpy(), rtol=1e-12, atol=1e-12)
    assert np.ptp(up - u.numpy()) > 0.1  # the inputs really move the state


# -- round trips ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def exponential_fit() -> FitResult:
    return fit_trace(_trace(TRUTHS["exponential"], seed=11), "exponential")


@pytest.mark.parametrize("model", list(TRUTHS))
def test_round_trip_recovers_the_truth(model: str, exponential_fit: FitResult) -> None:
    """Simulate 1 device, 200 pulses per branch, 12 cycles, c2c 0.2, read noise 0.01, up_down 0.2
    (and nu_up 1, nu_down 2 for exponential); fit the same law. Tolerances: g_min and g_max
    within 5% of the range, dw_up and dw_down within 10%, nu within 0.3, dw_min_std within 0.07,
    read_noise_std within 0.5x-2x, R^2 > 0.95 on both branches."""
    truth = TRUTHS[model]
    res = exponential_fit if model == "exponential" else fit_trace(_trace(truth, seed=11), model)
    assert _check(res, truth) == []
    assert _within_3se(truth.dw_min_std, res.dw_min_std, res.dw_min_std_range)
    assert _within_3se(truth.read_noise_std, res.read_noise_std, res.read_noise_std_range)
    assert res.step_model == model and res.n_points == CYCLES * 2 * (PULSES + 1)
    assert res.n_set_branches == res.n_reset_branches == CYCLES
    assert res.n_noise_steps > 500 and res.device_fits == () and res.g_min_dtod is None
    if model != "exponential":
        assert res.nu_up == res.nu_down == 0.0
    m = res.to_device_model()
    assert m.step_model == model
    assert m.dw_min == pytest.approx((res.dw_up + res.dw_down) / 2, rel=1e-12)
    assert m.up_down == pytest.approx((res.dw_up - res.dw_down) / (res.dw_up + res.dw_down), rel=1e-12)
    assert m.dw_up == pytest.approx(res.dw_up, rel=1e-12)
    assert m.dw_down == pytest.approx(res.dw_down, rel=1e-12)
    assert (m.dw_min_std, m.read_noise_std) == (res.dw_min_std, res.read_noise_std)
    assert model in m.source and "fit_trace" in m.source and "R^2" in m.source


def test_the_tolerances_reject_a_wrong_truth(exponential_fit: FitResult) -> None:
    """The round-trip check is not vacuous: against a truth that differs in one parameter
    (the same trace, compared with a modified model) it fails on exactly that parameter."""
    truth, res = TRUTHS["exponential"], exponential_fit
    assert _check(res, truth) == []
    for change, name in (
        ({"g_max": G_MAX + 0.08 * RANGE}, "g_max"),
        ({"up_down": 0.05}, "dw_up"),
        ({"nu_down": 1.5}, "nu_down"),
        ({"dw_min_std": 0.1}, "dw_min_std"),
        ({"read_noise_std": 0.03}, "read_noise_std"),
    ):
        failures = _check(res, truth.replace(**change))
        assert any(f.startswith(name) for f in failures), (change, failures)


def _within_3se(value: float, estimate: float, bounds: tuple[float, float] | None) -> bool:
    assert bounds is not None
    lo, hi = bounds
    return estimate - 3 * (estimate - lo) - 1e-9 <= value <= estimate + 3 * (hi - estimate) + 1e-9


@pytest.mark.parametrize(
    ("c2c", "read"), [(0.0, 0.0), (0.4, 0.0), (0.0, 0.01), (0.3, 0.02)], ids=["none", "c2c", "read", "both"]
)
def test_noise_estimates_follow_the_true_noise(c2c: float, read: float) -> None:
    """Noise estimates track the truth, including zero: dw_min_std within 0.07 absolute and
    read_noise_std within 0.5x-2x of the truth (or below 0.002 when the truth is 0). With no
    noise at all both estimates are below 1e-6, so they are not constants of the method.
    Where the truth is not 0, it lies within 3 reported standard errors of the estimate."""
    truth = TRUTHS["linear"].replace(dw_min_std=c2c, read_noise_std=read)
    res = fit_trace(_trace(truth, seed=5, cycles=8), "linear")
    assert res.dw_min_std is not None and res.read_noise_std is not None
    assert abs(res.dw_min_std - c2c) <= 0.07, res.dw_min_std
    if c2c > 0:
        assert _within_3se(c2c, res.dw_min_std, res.dw_min_std_range), (res.dw_min_std, res.dw_min_std_range)
    if read > 0:
        assert _within_3se(read, res.read_noise_std, res.read_noise_std_range), res.read_noise_std_range
    if read == 0:
        assert res.read_noise_std < 0.002, res.read_noise_std
    else:
        assert 0.5 * read <= res.read_noise_std <= 2 * read, res.read_noise_std
    if c2c == read == 0:
        assert res.dw_min_std < 1e-6 and res.read_noise_std < 1e-6
        assert res.r2_set > 0.999999 and res.r2_reset > 0.999999
        assert abs(res.g_max - G_MAX) < 1e-6 * RANGE and abs(res.dw_up / truth.dw_up - 1) < 1e-6


def test_fitted_model_reproduces_its_own_prediction() -> None:
    """FitResult.predict and to_device_model agree: a noise-free simulation of the fitted
    DeviceModel follows predict() (relative tolerance 1e-6, float64 simulation)."""
    res = fit_trace(_trace(TRUTHS["exponential"], seed=3, cycles=4), "exponential")
    clean = res.to_device_model(dw_min_std=0.0, read_noise_std=0.0)
    tr = potentiation_depression(clean, pulses=PULSES, cycles=1)
    set_g = tr.conductance_S[tr.polarity == "set"]
    reset_g = tr.conductance_S[tr.polarity == "reset"]
    n = np.arange(PULSES + 1)
    np.testing.assert_allclose(set_g, res.predict(set_g[0], n, "set"), rtol=1e-6)
    np.testing.assert_allclose(reset_g, res.predict(reset_g[0], n, "reset"), rtol=1e-6)
    assert set_g[-1] == pytest.approx(res.g_max, rel=1e-6)


def test_wrong_model_fits_worse_and_linear_data_gives_nu_near_zero() -> None:
    """Negative controls: the linear law fitted to strongly nonlinear data (nu 1 / 2) loses
    R^2 against the exponential law; the exponential law fitted to linear data finds
    nu below 0.3, so nu is measured, not inherited from the start values (0.3, 1.5, 4)."""
    tr = _trace(TRUTHS["exponential"], seed=2, cycles=6)
    good, bad = fit_trace(tr, "exponential"), fit_trace(tr, "linear")
    assert bad.rms_residual_S > 1.5 * good.rms_residual_S
    assert bad.r2_reset < good.r2_reset
    lin = fit_trace(_trace(TRUTHS["linear"], seed=2, cycles=6), "exponential")
    assert lin.nu_up < 0.3 and lin.nu_down < 0.3


def test_lab_style_trace_through_csv(tmp_path: Path) -> None:
    """Pulse-0 rows dropped, cycles truncated to different lengths (120-200 pulses), written
    and read back as CSV: the round-trip tolerances still hold."""
    truth = TRUTHS["exponential"]
    tr = _trace(truth, seed=7)
    keep_to = {c: 120 + 7 * c for c in range(CYCLES)}
    keep = (tr.pulse > 0) & (tr.pulse <= np.array([keep_to[c] for c in tr.cycle.tolist()]))
    lab = tr.take(keep)
    lab.to_csv(tmp_path / "lab.csv")
    back = read_trace_csv(tmp_path / "lab.csv")
    res = fit_trace(back, "exponential")
    assert _check(res, truth) == []
    assert res.n_points == int(keep.sum()) and res.trace_source == str(tmp_path / "lab.csv")


def test_set_only_trace_copies_the_set_law() -> None:
    truth = TRUTHS["linear"]
    tr = _trace(truth, seed=1, cycles=4)
    res = fit_trace(tr.take(tr.polarity == "set"), "linear")
    assert abs(res.dw_up / truth.dw_up - 1) < 0.1
    assert res.dw_down == res.dw_up and math.isnan(res.r2_reset) and res.n_reset_branches == 0
    assert any("no RESET reads" in n for n in res.notes)
    assert "R^2 RESET = n/a" in res.summary()


# -- several devices ----------------------------------------------------------------------------------


def test_device_to_device_spreads_match_the_simulated_draws() -> None:
    """6 devices with g_min_dtod 0.03, g_max_dtod 0.05, dw_min_dtod 0.1: each device's fitted
    g_min/g_max is within 1% of the range of its true (drawn) value and dw_min within 5%;
    the reported spreads are within 20% (relative) of the spreads of the actual draws.
    The c2c and read-noise tolerances of the single-device round trip still hold."""
    truth = TRUTHS["exponential"].replace(g_min_dtod=0.03, g_max_dtod=0.05, dw_min_dtod=0.1)
    d = 6
    res = fit_trace(_trace(truth, seed=4, cycles=3, devices=d), "exponential")
    x = characterization_crossbar(truth, devices=d, seed=4)
    lo, hi = x.g_lo[0, :, 0].numpy(), x.g_hi[0, :, 0].numpy()
    dw = (0.5 * (x.dp_up + x.dp_down))[0, :, 0].numpy() * (hi - lo)
    fits = res.device_fits
    assert [f.device for f in fits] == list(range(d))
    np.testing.assert_allclose([f.g_min for f in fits], lo, atol=0.01 * RANGE)
    np.testing.assert_allclose([f.g_max for f in fits], hi, atol=0.01 * RANGE)
    np.testing.assert_allclose([f.dw_min for f in fits], dw, rtol=0.05)
    span = np.mean(hi - lo)
    true_spreads = (np.std(lo, ddof=1) / span, np.std(hi, ddof=1) / span, np.std(dw, ddof=1) / dw.mean())
    got = (res.g_min_dtod, res.g_max_dtod, res.dw_min_dtod)
    np.testing.assert_allclose(got, true_spreads, rtol=0.2)
    assert abs(res.dw_min_std - 0.2) < 0.07 and 0.005 < res.read_noise_std < 0.02
    m = res.to_device_model()
    # g_min_dtod is capped so that g_min - 3 sigma stays >= 0 (DeviceModel's validity rule).
    cap = 0.999 * res.g_min / (3 * (res.g_max - res.g_min))
    assert res.g_min_dtod > cap and m.g_min_dtod == pytest.approx(cap)
    assert "g_min_dtod capped" in m.source
    assert (m.g_max_dtod, m.dw_min_dtod) == pytest.approx(got[1:])
    assert m.stuck_off_fraction == m.stuck_on_fraction == 0.0
    assert "device-to-device" in res.summary() and "6 devices fitted separately" in res.summary()


def test_identical_devices_give_small_spreads_and_stuck_devices_are_left_out() -> None:
    """Without device-to-device variation the spreads are below 0.005 (g) and 0.03 (dw) -- a
    control for the previous test. A device that never moves is reported as stuck (off)
    and left out, so the fit of the others is unaffected (round-trip tolerances)."""
    truth = TRUTHS["linear"]
    tr = _trace(truth, seed=9, cycles=3, devices=3)
    res = fit_trace(tr, "linear")
    assert res.g_min_dtod < 0.005 and res.g_max_dtod < 0.005 and res.dw_min_dtod < 0.03
    g = tr.conductance_S.copy()
    dead = tr.device == 2
    g[dead] = G_MIN * (1 + 0.01 * np.random.default_rng(0).standard_normal(int(dead.sum())))
    stuck = Trace(tr.device, tr.cycle, tr.pulse, tr.polarity, np.abs(g), source="with a dead device")
    res = fit_trace(stuck, "linear")
    assert res.stuck_devices == (2,)
    assert res.stuck_off_fraction == pytest.approx(1 / 3) and res.stuck_on_fraction == 0.0
    assert len(res.device_fits) == 2 and _check(res, truth) == []
    assert res.to_device_model().stuck_off_fraction == pytest.approx(1 / 3)
    assert "stuck devices: [2]" in res.summary()


# -- output ------------------------------------------------------------------------------------------


def test_preset_file_round_trip(tmp_path: Path) -> None:
    res = fit_trace(_trace(TRUTHS["soft_bounds"], seed=1, cycles=4), "soft_bounds")
    model = res.to_device_model()
    path = save_preset_file(model, tmp_path / "fitted.toml", meta=res.meta())
    loaded = get_preset(str(path))
    assert loaded == model
    x = SimulatedCrossbar(4, 3, path, seed=0)
    g0 = x.conductances()
    x.apply_pulses(torch.ones((4, 3), dtype=torch.int64))
    assert bool((x.conductances()[0] > g0[0]).all())
    text = path.read_text()
    assert "[meta]" in text and 'model = "soft_bounds"' in text and "r2_set = " in text


def test_summary_reports_parameters_with_units() -> None:
    res = fit_trace(_trace(TRUTHS["exponential"], seed=2, cycles=3), "exponential")
    text = res.summary()
    for needle in ("g_min   = ", "g_max   = ", "uS", "S per SET pulse", "nu_up", "nu_down",
                   "R^2 SET = 0.9", "R^2 RESET = 0.9", "dw_min_std", "read_noise_std", "up_down"):
        assert needle in text, needle
    assert "device-to-device" not in text  # a single device


def test_fit_errors() -> None:
    tr = _trace(TRUTHS["linear"], seed=0, pulses=5, cycles=1)
    with pytest.raises(ValueError, match="unknown step model 'cubic'"):
        fit_trace(tr, "cubic")
    flat = Trace(tr.device, tr.cycle, tr.pulse, tr.polarity, np.full(len(tr), 3e-5))
    with pytest.raises(ValueError, match="never changes"):
        fit_trace(flat, "linear")
    with pytest.raises(ValueError, match="too few"):
        fit_trace(tr.take(tr.pulse <= 1), "linear")
    with pytest.raises(TypeError, match="Trace"):
        fit_trace(tr.conductance_S, "linear")  # type: ignore[arg-type]


def test_sparse_reads_and_wrong_units_are_reported() -> None:
    """Reads every 5th pulse still fit the law (dw within 10%) but give no one-step residuals,
    so the noise is reported as not estimated (None, 0 in the DeviceModel); conductances
    in microsiemens written as siemens are flagged."""
    truth = TRUTHS["exponential"]
    tr = _trace(truth, seed=4, cycles=4)
    res = fit_trace(tr.take(tr.pulse % 5 == 0), "exponential")
    assert abs(res.dw_up / truth.dw_up - 1) < 0.1 and abs(res.dw_down / truth.dw_down - 1) < 0.1
    assert res.dw_min_std is None and res.read_noise_std is None and res.n_noise_steps == 0
    assert "noise: not estimated" in res.summary()
    m = res.to_device_model()
    assert m.dw_min_std == 0.0 and m.read_noise_std == 0.0 and "noise not estimated" in m.source
    assert not any("siemens" in n for n in res.notes)
    micro = Trace(tr.device, tr.cycle, tr.pulse, tr.polarity, tr.conductance_S * 1e6)
    assert any("really in siemens" in n for n in fit_trace(micro, "exponential").notes)
