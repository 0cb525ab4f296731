"""One statistical test per non-ideality of :class:`devices.SimulatedCrossbar`.

Every test is seeded and checks that its effect is present *and* of the size that the
formulas in ``devices/sim/physics.py`` and ``devices/sim/simulated.py`` predict, with tolerances
tight enough that a missing (or wrongly scaled) effect fails. Expected values are computed
here from the documented formulas, not by calling the code under test. Per-device
parameters are observed through behaviour (twin arrays with the same seed but another
initial state share their devices: ``init`` does not change the device draws).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats
from torch import Tensor

from devices import DeviceModel, SimulatedCrossbar

pytestmark = pytest.mark.usefixtures("single_thread")

F64 = torch.float64
TRUNC_STD = float(stats.truncnorm(-3, 3).std())
"""Std of a standard normal truncated at +-3 sigma (device-to-device draws)."""
G_MIN, G_MAX = 10e-6, 100e-6
RANGE = G_MAX - G_MIN


def _xbar(
    model: DeviceModel,
    rows: int = 40,
    cols: int = 50,
    *,
    seed: int = 0,
    init: str = "mid",
    dtype: torch.dtype = F64,
    scheme: str = "push_pull",
) -> SimulatedCrossbar:
    return SimulatedCrossbar(rows, cols, model, seed=seed, init=init, dtype=dtype, scheme=scheme)  # type: ignore[arg-type]


def _device_counts(x: SimulatedCrossbar, plus: int, minus: int) -> Tensor:
    """``plus`` pulses on every G+ and ``minus`` on every G- (signed: > 0 SET, < 0 RESET)."""
    counts = torch.empty(2, x.rows, x.cols, dtype=torch.int64)
    counts[0], counts[1] = plus, minus
    return counts


def _bounds(model: DeviceModel, **kw) -> tuple[Tensor, Tensor]:
    """Per-device (g_lo, g_hi) of the array ``_xbar(model, **kw)`` describes, seen through twins."""
    lo = _xbar(model, init="min", **kw).conductances()
    hi = _xbar(model, init="max", **kw).conductances()
    return lo, hi


def _rel(a: float, b: float) -> float:
    return abs(a / b - 1.0)


MODELS = {
    "linear": DeviceModel(g_min=G_MIN, g_max=G_MAX, step_model="linear", dw_min=0.9e-6, up_down=0.1),
    "exponential": DeviceModel(
        g_min=G_MIN, g_max=G_MAX, step_model="exponential", dw_min=RANGE / 128, nu_up=2.0, nu_down=3.0
    ),
    "soft_bounds": DeviceModel(g_min=G_MIN, g_max=G_MAX, step_model="soft_bounds", dw_min=2e-6, up_down=-0.1),
}


# -- bounds ------------------------------------------------------------------------------------
@pytest.mark.parametrize("law", list(MODELS))
def test_bounds_saturate_after_many_pulses(law: str) -> None:
    model = MODELS[law].replace(
        dw_min=RANGE / 50, dw_min_std=0.3, g_min_dtod=0.02, g_max_dtod=0.05, up_down=0.0
    )
    lo, hi = _bounds(model, rows=10, cols=20, seed=3)
    x = _xbar(model, 10, 20, seed=3)
    eps = 1e-12 * G_MAX
    for direction in (+1, -1):
        for _ in range(60):  # 1200 pulses: 24 full ranges
            x.pulse_devices(_device_counts(x, 20 * direction, -20 * direction))
            g = x.conductances()
            assert bool((g >= lo - eps).all()) and bool((g <= hi + eps).all()), "a device left its bounds"
        top, bottom = (0, 1) if direction > 0 else (1, 0)
        # Saturated at the device's own bounds (soft bounds only approach them: 0.983^1200 ~ 1e-9).
        torch.testing.assert_close(g[top], hi[top], rtol=0, atol=1e-6 * RANGE)
        torch.testing.assert_close(g[bottom], lo[bottom], rtol=0, atol=1e-6 * RANGE)
    # The bounds really are device-specific (the d2d spread is there).
    assert float(hi.std()) > 0.02 * RANGE


# -- step laws ---------------------------------------------------------------------------------
def test_linear_step_is_dw_min_times_one_plus_minus_up_down() -> None:
    model = DeviceModel(g_min=G_MIN, g_max=G_MAX, step_model="linear", dw_min=1e-6, up_down=0.25)
    x = _xbar(model, 4, 5)
    g0 = x.conductances()
    x.pulse_devices(_device_counts(x, 1, -1))
    g1 = x.conductances()
    torch.testing.assert_close(g1[0] - g0[0], torch.full_like(g0[0], 1.25e-6), rtol=1e-9, atol=0)
    torch.testing.assert_close(g1[1] - g0[1], torch.full_like(g0[1], -0.75e-6), rtol=1e-9, atol=0)
    x.pulse_devices(_device_counts(x, 7, -7))
    g8 = x.conductances()
    torch.testing.assert_close(g8[0] - g1[0], torch.full_like(g0[0], 7 * 1.25e-6), rtol=1e-9, atol=0)
    torch.testing.assert_close(g8[1] - g1[1], torch.full_like(g0[1], -7 * 0.75e-6), rtol=1e-9, atol=0)
    # A push_pull weight update moves the weight by SET + RESET step per pulse.
    w0 = x.conductances()
    x.apply_pulses(torch.full((4, 5), 3, dtype=torch.int64))
    w1 = x.conductances()
    torch.testing.assert_close(
        (w1[0] - w1[1]) - (w0[0] - w0[1]), torch.full_like(g0[0], 6e-6), rtol=1e-9, atol=0
    )


def _first_step(law: str, u: float, dp: float, nu: float) -> float:
    """Normalized step of one noise-free pulse from ``u`` (documented closed forms)."""
    if law == "linear":
        return dp
    if law == "soft_bounds":
        return (1 - u) * dp
    c = 1 - math.exp(-nu)
    return (1 / c - u) * (1 - math.exp(-nu * dp))


@pytest.mark.parametrize("law", list(MODELS))
def test_asymmetry_up_down(law: str) -> None:
    up_down = 0.25
    nu = 2.0 if law == "exponential" else 0.0
    model = MODELS[law].replace(up_down=up_down, nu_up=nu, nu_down=nu)
    x = _xbar(model, 4, 5)
    g0 = x.conductances()
    x.pulse_devices(_device_counts(x, 1, -1))
    d = x.conductances() - g0
    ratio = float((d[0] / -d[1]).mean())
    dp = model.dw_min / RANGE
    expected = _first_step(law, 0.5, dp * (1 + up_down), nu) / _first_step(law, 0.5, dp * (1 - up_down), nu)
    assert expected > 1.5
    assert _rel(ratio, expected) < 1e-6, f"SET/RESET step ratio {ratio:.6f}, expected {expected:.6f}"
    assert float((d[0] / -d[1]).std()) < 1e-9


def test_exponential_nonlinearity_follows_closed_form() -> None:
    n_branch = 64
    nu_up, nu_down = 2.0, 3.0
    model = DeviceModel(
        g_min=G_MIN,
        g_max=G_MAX,
        step_model="exponential",
        dw_min=RANGE / n_branch,
        nu_up=nu_up,
        nu_down=nu_down,
    )
    dp = 1.0 / n_branch
    for branch, nu, init, sign in (("SET", nu_up, "min", +1), ("RESET", nu_down, "max", -1)):
        x = _xbar(model, 3, 4, init=init)
        traj = [x.conductances()[0]]
        for _ in range(n_branch):
            x.pulse_devices(_device_counts(x, sign, 0))
            traj.append(x.conductances()[0])
        g = torch.stack(traj)  # (n_branch + 1, rows, cols)
        w = (g - G_MIN) / RANGE
        progress = w if sign > 0 else 1 - w  # advance along the branch, 0 -> 1
        p = torch.arange(n_branch + 1, dtype=F64).reshape(-1, 1, 1) * dp
        expected = (1 - torch.exp(-nu * p)) / (1 - math.exp(-nu))
        torch.testing.assert_close(progress, expected.expand_as(progress), rtol=0, atol=1e-9)
        steps = progress.diff(dim=0)
        first, last = float(steps[0].mean()), float(steps[-1].mean())
        predicted_ratio = math.exp(nu * (1 - dp))
        assert _rel(first / last, predicted_ratio) < 1e-6, f"{branch}: first/last step {first / last:.4f}"
        assert first / last > 5  # a strong, visible nonlinearity
        # Full range in exactly 1/dp pulses: not before, and not later.
        assert float(progress[n_branch - 1].max()) < 1 - 0.5 * last
        torch.testing.assert_close(progress[n_branch], torch.ones_like(progress[0]), rtol=0, atol=1e-9)
        # The same 1/dp pulses in one call land on the bound too.
        y = _xbar(model, 3, 4, init=init)
        y.pulse_devices(_device_counts(y, sign * n_branch, 0))
        torch.testing.assert_close(y.conductances()[0], g[-1], rtol=0, atol=1e-9 * G_MAX)


def test_soft_bounds_step_is_proportional_to_distance_to_bound() -> None:
    model = MODELS["soft_bounds"].replace(up_down=0.2)
    x = _xbar(model, 20, 20, init="random")
    g0 = x.conductances()
    x.pulse_devices(_device_counts(x, 1, -1))
    d = x.conductances() - g0
    set_rate = d[0] / (G_MAX - g0[0])  # SET step / distance to g_max
    reset_rate = -d[1] / (g0[1] - G_MIN)  # RESET step / distance to g_min
    torch.testing.assert_close(set_rate, torch.full_like(set_rate, model.dw_up / RANGE), rtol=1e-6, atol=0)
    torch.testing.assert_close(
        reset_rate, torch.full_like(reset_rate, model.dw_down / RANGE), rtol=1e-6, atol=0
    )
    # The starting states were spread out, so constant steps would have failed the above.
    assert float(d[0].max() / d[0].min()) > 5


# -- cycle-to-cycle noise ----------------------------------------------------------------------
def _step_slope(law: str, u: float, dp: float, nu: float) -> float:
    """d(step)/d(a) at a = 1 pulse: maps pulse-space noise to conductance noise (delta method)."""
    if law == "linear":
        return dp
    if law == "soft_bounds":
        return -(1 - u) * (1 - dp) * math.log1p(-dp)
    c = 1 - math.exp(-nu)
    return (1 / c - u) * nu * dp * math.exp(-nu * dp)


@pytest.mark.parametrize("law", list(MODELS))
def test_cycle_to_cycle_noise_of_single_pulse_steps(law: str) -> None:
    std = 0.3
    model = MODELS[law].replace(dw_min_std=std)
    x = _xbar(model, 40, 50, seed=11)
    g0 = x.conductances()
    x.pulse_devices(_device_counts(x, 1, -1))
    d = (x.conductances() - g0) / RANGE
    for i, (dp, nu, sign) in enumerate(
        ((model.dw_up / RANGE, model.nu_up, 1), (model.dw_down / RANGE, model.nu_down, -1))
    ):
        steps = sign * d[i].flatten()
        mean_expected = _first_step(law, 0.5, dp, nu)
        std_expected = std * _step_slope(law, 0.5, dp, nu)
        assert abs(float(steps.mean()) - mean_expected) < 4 * std_expected / math.sqrt(steps.numel())
        assert _rel(float(steps.std()), std_expected) < 0.10, (
            f"{law} branch {i}: step std {float(steps.std()):.4g}, expected {std_expected:.4g}"
        )


# -- device-to-device variation ----------------------------------------------------------------
def test_device_to_device_spread_of_bounds() -> None:
    model = DeviceModel(g_min=G_MIN, g_max=G_MAX, g_min_dtod=0.02, g_max_dtod=0.05, dw_min=0.9e-6)
    lo, hi = _bounds(model, rows=40, cols=50, seed=5)
    for name, g, nominal, dtod in (("g_min", lo, G_MIN, 0.02), ("g_max", hi, G_MAX, 0.05)):
        z = (g - nominal) / (dtod * RANGE)
        assert abs(float(z.mean())) < 4 / math.sqrt(z.numel()) * TRUNC_STD, f"{name} draws are biased"
        assert _rel(float(z.std()), TRUNC_STD) < 0.10, f"{name}: spread {float(z.std()):.3f} sigma"
        assert float(z.abs().max()) <= 3.0 + 1e-9, f"{name} draws are not truncated at 3 sigma"
        assert float(z.abs().max()) > 2.5
    assert not torch.equal(lo[0], lo[1]), "the two devices of a pair must be drawn independently"


def test_device_to_device_spread_of_dw_min_and_up_down() -> None:
    dtod, ud_dtod = 0.1, 0.05
    model = DeviceModel(g_min=G_MIN, g_max=G_MAX, dw_min=0.9e-6, dw_min_dtod=dtod, up_down_dtod=ud_dtod)
    x = _xbar(model, 40, 50, seed=6)
    y = _xbar(model, 40, 50, seed=6)
    g0 = x.conductances()
    x.pulse_devices(_device_counts(x, 1, 1))  # SET steps of both devices
    y.pulse_devices(_device_counts(y, -1, -1))  # RESET steps of the same devices
    up = x.conductances() - g0
    down = g0 - y.conductances()
    dw = (up + down) / 2  # = dw_min (1 + dtod z) per device
    ud = (up - down) / (up + down)  # = up_down per device
    z_dw = (dw / model.dw_min - 1) / dtod
    assert abs(float(z_dw.mean())) < 4 / math.sqrt(z_dw.numel())
    assert _rel(float(z_dw.std()), TRUNC_STD) < 0.10, f"dw_min spread {float(z_dw.std()):.3f} sigma"
    assert _rel(float(ud.std()), ud_dtod * TRUNC_STD) < 0.10, f"up_down spread {float(ud.std()):.4f}"


def test_device_to_device_spread_of_nu() -> None:
    n_branch, nu, nu_dtod = 64, 2.0, 0.3
    model = DeviceModel(
        g_min=G_MIN,
        g_max=G_MAX,
        step_model="exponential",
        dw_min=RANGE / n_branch,
        nu_up=nu,
        nu_down=nu,
        nu_dtod=nu_dtod,
    )
    x = _xbar(model, 40, 50, seed=8, init="min")
    g0 = x.conductances()
    x.pulse_devices(_device_counts(x, 1, 0))
    first = x.conductances() - g0
    x.pulse_devices(_device_counts(x, n_branch - 2, 0))
    g1 = x.conductances()
    x.pulse_devices(_device_counts(x, 1, 0))
    last = x.conductances() - g1
    # first / last step = exp(nu (1 - dp)) on the SET branch (see the nonlinearity test).
    nu_est = torch.log(first[0] / last[0]) / (1 - 1 / n_branch)
    assert abs(float(nu_est.mean()) - nu) < 4 * nu_dtod / math.sqrt(nu_est.numel())
    assert _rel(float(nu_est.std()), nu_dtod * TRUNC_STD) < 0.10, f"nu spread {float(nu_est.std()):.4f}"


def test_same_seed_same_array_and_noise_different_seed_different() -> None:
    gen = torch.Generator().manual_seed(1)
    counts = torch.randint(-3, 4, (16, 12), generator=gen)
    v = torch.rand(5, 16, generator=gen)

    def run(seed: int) -> list[Tensor]:
        x = SimulatedCrossbar(16, 12, "rram", seed=seed)
        out = [x.conductances()]
        x.apply_pulses(counts)
        out += [x.conductances(), x.read_forward(v), x.read_conductances()]
        return out

    a, b, c = run(42), run(42), run(43)
    for ta, tb in zip(a, b, strict=True):
        assert torch.equal(ta, tb)
    for ta, tc in zip(a, c, strict=True):
        assert float((ta != tc).float().mean()) > 0.9
    # Only cycle-to-cycle noise on identical devices: different seeds still differ after a pulse.
    model = DeviceModel(dw_min_std=0.3)
    g = [SimulatedCrossbar(8, 8, model, seed=s) for s in (1, 2)]
    assert torch.equal(g[0].conductances(), g[1].conductances())
    for y in g:
        y.apply_pulses(torch.ones(8, 8, dtype=torch.int64))
    assert float((g[0].conductances() != g[1].conductances()).float().mean()) > 0.9


# -- read noise --------------------------------------------------------------------------------
def test_read_noise_of_single_devices_is_relative() -> None:
    sigma = 0.05
    model = DeviceModel(g_min=G_MIN, g_max=G_MAX, read_noise_std=sigma)
    x = _xbar(model, 10, 10, init="random", seed=2)
    g = x.conductances()
    reads = torch.stack([x.read_conductances() for _ in range(200)])
    assert torch.equal(x.conductances(), g), "reads must not disturb the state"
    z = (reads - g) / (sigma * g)
    assert abs(float(z.mean())) < 4 / math.sqrt(z.numel())
    assert _rel(float(z.std()), 1.0) < 0.03
    # Relative, not additive: low and high conductances each see sigma * G.
    low = g < g.median()
    assert _rel(float(z[:, low].std()), 1.0) < 0.05 and _rel(float(z[:, ~low].std()), 1.0) < 0.05
    assert float(g[~low].mean() / g[low].mean()) > 2
    # Fresh noise at every read.
    assert not torch.equal(reads[0], reads[1])


def test_array_read_noise_matches_per_device_formula() -> None:
    sigma = 0.05
    model = DeviceModel(g_min=G_MIN, g_max=G_MAX, read_noise_std=sigma)
    x = _xbar(model, 20, 8, init="random", seed=4)
    g = x.conductances()
    gen = torch.Generator().manual_seed(3)
    v = torch.rand(4, 20, generator=gen, dtype=F64) * 0.2  # analog amplitudes: V^2 weighting matters
    v[0, ::2] = 0.0
    k = 1500
    i = x.read_forward(v.repeat(k, 1)).reshape(k, 4, 8)
    exact = v @ (g[0] - g[1])
    predicted_std = sigma * (v.square() @ (g[0].square() + g[1].square())).sqrt()  # docstring formula
    z = (i - exact) / predicted_std
    assert abs(float(z.mean())) < 4 / math.sqrt(z.numel())
    assert _rel(float(z.std()), 1.0) < 0.03
    per_entry = z.std(dim=0)
    assert float((per_entry - 1).abs().max()) < 0.15
    # The same spread as summing independently noisy device reads (Monte Carlo of the definition).
    mc = torch.stack([v @ (r[0] - r[1]) for r in (x.read_conductances() for _ in range(k))])
    z_mc = (mc - exact) / predicted_std
    assert _rel(float(z_mc.std()), 1.0) < 0.03
    assert stats.ks_2samp(z.flatten().numpy(), z_mc.flatten().numpy()).pvalue > 0.01
    # Backward reads use the transposed formula.
    e = torch.rand(3, 8, generator=gen, dtype=F64) * 0.2
    ib = x.read_backward(e.repeat(k, 1)).reshape(k, 3, 20)
    zb = (ib - e @ (g[0] - g[1]).T) / (sigma * (e.square() @ (g[0].square() + g[1].square()).T).sqrt())
    assert _rel(float(zb.std()), 1.0) < 0.03


# -- stuck devices -----------------------------------------------------------------------------
def test_stuck_devices_fraction_and_behaviour() -> None:
    off, on = 0.05, 0.03
    model = DeviceModel(g_min=G_MIN, g_max=G_MAX, dw_min=0.5e-6, stuck_off_fraction=off, stuck_on_fraction=on)
    x = _xbar(model, 40, 50, seed=9)
    g0 = x.conductances()
    n = g0.numel()
    is_off = g0 == G_MIN
    is_on = g0 == G_MAX
    for frac, mask in ((off, is_off), (on, is_on)):
        expected, sd = n * frac, math.sqrt(n * frac * (1 - frac))
        assert abs(int(mask.sum()) - expected) < 4 * sd, f"{int(mask.sum())} stuck, expected {expected:.0f}"
    stuck = is_off | is_on
    gen = torch.Generator().manual_seed(0)
    x.reset_counters()
    sent = 0
    for _ in range(10):
        counts = torch.randint(1, 6, (2, 40, 50), generator=gen) * (
            torch.randint(0, 2, (2, 40, 50), generator=gen) * 2 - 1
        )
        x.pulse_devices(counts)
        sent += int(counts.abs().sum())
    g1 = x.conductances()
    assert torch.equal(g1[stuck], g0[stuck]), "stuck devices moved"
    assert float((g1[~stuck] != g0[~stuck]).float().mean()) > 0.95
    assert x.counters.set_pulses + x.counters.reset_pulses == sent, "pulses sent to stuck devices are counted"
    # Program-and-verify reports exactly the stuck devices as failed.
    targets = G_MIN + RANGE * (0.2 + 0.6 * torch.rand(2, 40, 50, generator=gen, dtype=F64))
    res = x.program_and_verify(targets, tolerance=0.4e-6, max_pulses=400, max_pulses_per_iteration=64)
    assert torch.equal(res.failed, stuck)


# -- quantization ------------------------------------------------------------------------------
def test_n_levels_quantization() -> None:
    levels = 9
    model = DeviceModel(g_min=G_MIN, g_max=G_MAX, dw_min=1e-6, n_levels=levels)
    gen = torch.Generator().manual_seed(0)
    for m, expect_quantized in ((model, True), (model.replace(n_levels=0), False)):
        x = _xbar(m, 40, 50, init="random", seed=1)
        for _ in range(3):
            x.pulse_devices(torch.randint(-20, 21, (2, 40, 50), generator=gen))
        level = (x.conductances() - G_MIN) / RANGE * (levels - 1)
        on_grid = (level - level.round()).abs() < 1e-9
        distinct = torch.unique(level.round(decimals=9)).numel()
        if expect_quantized:
            assert bool(on_grid.all())
            assert distinct == levels
        else:  # control: the check above has power (devices off the bounds are off the grid)
            assert not bool(on_grid.all()) and distinct > 1000


# -- drift -------------------------------------------------------------------------------------
def test_drift_power_law_and_restart_on_pulse() -> None:
    nu, t0 = 0.05, 2.0
    model = DeviceModel(g_min=G_MIN, g_max=G_MAX, dw_min=1e-6, drift_nu=nu, drift_t0=t0)
    x = _xbar(model, 6, 8, init="random", seed=1)
    g0 = x.conductances()
    v = torch.rand(3, 6, generator=torch.Generator().manual_seed(0), dtype=F64)
    for t in (1.0, 10.0, 1000.0):
        x.advance_time(t - x.time)
        factor = ((t + t0) / t0) ** -nu
        torch.testing.assert_close(x.conductances(), g0 * factor, rtol=1e-9, atol=0)
        torch.testing.assert_close(x.read_forward(v), v @ (g0[0] - g0[1]) * factor, rtol=1e-9, atol=1e-18)
    assert ((1000 + t0) / t0) ** -nu < 0.75  # a visible effect
    # A pulse re-programs the devices it touches: from the drifted value, with a fresh clock.
    t1 = x.time
    touched = torch.zeros(2, 6, 8, dtype=torch.bool)
    touched[0, :3] = True
    x.pulse_devices(touched.to(torch.int64))
    # (Drift may carry a device below g_min; the written state saturates at the bounds.)
    g_prog = (g0 * ((t1 + t0) / t0) ** -nu + 1e-6).clamp(G_MIN, G_MAX)
    torch.testing.assert_close(x.conductances()[touched], g_prog[touched], rtol=1e-9, atol=0)
    x.advance_time(500.0)
    t = x.time
    g = x.conductances()
    torch.testing.assert_close(g[touched], g_prog[touched] * ((t - t1 + t0) / t0) ** -nu, rtol=1e-9, atol=0)
    torch.testing.assert_close(
        g[~touched],
        g0[~touched] * ((t + t0) / t0) ** -nu,
        rtol=1e-9,
        atol=0,
        msg=lambda m: "untouched devices must keep drifting on their original curve: " + m,
    )


def test_drift_exponent_device_to_device_spread() -> None:
    nu, dtod, t0 = 0.05, 0.01, 1.0
    model = DeviceModel(drift_nu=nu, drift_nu_dtod=dtod, drift_t0=t0)
    x = _xbar(model, 40, 50, init="random", seed=2)
    g0 = x.conductances()
    x.advance_time(1e4)
    nu_est = -torch.log(x.conductances() / g0) / math.log((1e4 + t0) / t0)
    assert abs(float(nu_est.mean()) - nu) < 4 * dtod / math.sqrt(nu_est.numel())
    assert _rel(float(nu_est.std()), dtod * TRUNC_STD) < 0.10


# -- abrupt reset ------------------------------------------------------------------------------
def test_abrupt_reset_sends_device_to_g_min_in_one_pulse() -> None:
    model = DeviceModel(
        g_min=1e-6, g_max=25e-6, step_model="exponential", dw_min=24e-6 / 64, nu_up=3.0, abrupt_reset=True
    )
    x = _xbar(model, 10, 10, init="random", seed=3)
    g0 = x.conductances()
    counts = torch.zeros(2, 10, 10, dtype=torch.int64)
    counts[0, :5] = -1  # one RESET on G+
    counts[1, :5] = 1  # one SET on G-
    x.pulse_devices(counts)
    g1 = x.conductances()
    assert bool((g1[0, :5] == 1e-6).all()), "one RESET pulse must amorphize the device"
    assert bool((g1[1, :5] > g0[1, :5]).all()) and float((g1[1, :5] - g0[1, :5]).max()) < 0.2 * 24e-6
    torch.testing.assert_close(g1[:, 5:], g0[:, 5:], rtol=1e-12, atol=0)
    # push_pull weight update: the RESET device of every pulsed pair is amorphized.
    x.apply_pulses(torch.ones(10, 10, dtype=torch.int64))
    assert bool((x.conductances()[1] == 1e-6).all())
    # Control: without abrupt_reset one RESET pulse is a small step.
    y = _xbar(model.replace(abrupt_reset=False), 10, 10, init="random", seed=3)
    y.pulse_devices(counts)
    assert float((g0[0, :5] - y.conductances()[0, :5]).max()) < 0.2 * 24e-6


# -- multi-pulse calls vs single pulses --------------------------------------------------------
KS_MODELS = {
    "linear": MODELS["linear"].replace(dw_min_std=0.3),
    "exponential": MODELS["exponential"].replace(dw_min_std=0.3),
    "soft_bounds": MODELS["soft_bounds"].replace(dw_min_std=0.3),
}
KS_ROWS, KS_COLS = 40, 50  # 2000 devices per branch
MEAN_Z = 4.0
"""Means must agree within this many standard errors of their difference."""
STD_RTOL = 0.10
"""Stds must agree within this relative tolerance (its standard error is ~2.2% here)."""


def _after_pulses(model: DeviceModel, n: int, calls: int, seed: int) -> Tensor:
    """Conductances ``(2, N)`` after ``n`` push_pull pulses per cell, split over ``calls`` equal calls."""
    x = SimulatedCrossbar(KS_ROWS, KS_COLS, model, seed=seed, init="mid")
    per_call = torch.full((KS_ROWS, KS_COLS), n // calls, dtype=torch.int64)
    for _ in range(calls):
        x.apply_pulses(per_call)
    return x.conductances().reshape(2, -1).double()


def _compare(a: Tensor, b: Tensor) -> tuple[float, float, float]:
    """KS p-value, mean difference in standard errors, and std ratio of two samples."""
    p = float(stats.ks_2samp(a.numpy(), b.numpy()).pvalue)
    se = math.sqrt(float(a.var()) / a.numel() + float(b.var()) / b.numel())
    return p, abs(float(a.mean() - b.mean())) / se, float(a.std() / b.std())


@pytest.mark.parametrize("n", [2, 5, 20])
@pytest.mark.parametrize("law", list(KS_MODELS))
def test_multi_pulse_call_equals_single_pulses_in_distribution(law: str, n: int) -> None:
    """n pulses in one call vs n calls of one pulse, 2000 cells each, push_pull from mid-range.

    Criteria: a two-sample KS test on the weights G+ - G- (p > 0.01; one test per case, so a
    change of the noise stream has a ~1% chance per case of a false alarm), and per branch
    (G+ took SET pulses, G- RESET pulses) means within MEAN_Z standard errors and stds
    within STD_RTOL. A negative control with 1.5x the cycle-to-cycle noise must be rejected.
    """
    model = KS_MODELS[law]
    multi = _after_pulses(model, n, calls=1, seed=100 + n)
    single = _after_pulses(model, n, calls=n, seed=200 + n)
    start = _after_pulses(model, 0, calls=1, seed=0)
    p, _, _ = _compare(multi[0] - multi[1], single[0] - single[1])
    assert p > 0.01, f"{law}, n={n}: weights differ in distribution, KS p = {p:.3g}"
    for branch in (0, 1):
        moved = float((single[branch] - start[branch]).mean())
        assert abs(moved) > 0.3 * n * model.dw_min * (1 - abs(model.up_down)), (
            "the pulses must move the devices"
        )
        _, mean_z, std_ratio = _compare(multi[branch], single[branch])
        assert mean_z < MEAN_Z, f"{law}, n={n}, branch {branch}: means differ by {mean_z:.2f} SE"
        assert abs(std_ratio - 1) < STD_RTOL, f"{law}, n={n}, branch {branch}: std ratio {std_ratio:.3f}"
    # Negative control: the same criteria reject 1.5x the cycle-to-cycle noise.
    louder = _after_pulses(model.replace(dw_min_std=1.5 * model.dw_min_std), n, calls=1, seed=300 + n)
    p, _, _ = _compare(louder[0] - louder[1], single[0] - single[1])
    assert p < 0.01, f"negative control not rejected by KS (p = {p:.3g})"
    for branch in (0, 1):
        _, _, std_ratio = _compare(louder[branch], single[branch])
        assert abs(std_ratio - 1) > STD_RTOL, (
            f"negative control not rejected by the std check ({std_ratio:.3f})"
        )


def test_multi_pulse_equivalence_is_not_trivial() -> None:
    """Sanity of the test above: the n-pulse spread grows like sqrt(n), as documented."""
    model = KS_MODELS["linear"]
    spread = {n: float(_after_pulses(model, n, 1, seed=n)[0].std()) for n in (2, 20)}
    assert _rel(spread[20] / spread[2], math.sqrt(10)) < 0.1
    expected = model.dw_min_std * math.sqrt(20) * model.dw_up
    assert _rel(spread[20], expected) < 0.1
    assert np.isfinite(spread[2])
