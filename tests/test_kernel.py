"""The compiled pulse kernel against the torch reference, and its random numbers."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from scipy import special, stats

from devices import SimulatedCrossbar
from devices.sim.accel import resolve_kernel
from devices.sim.presets import get_preset

numba = pytest.importorskip("numba")
from devices.sim.counter_rng import binomial, normal_fast, philox4x32  # noqa: E402
from devices.sim.kernel import expm1_neg  # noqa: E402

U = np.uint64


def test_philox_matches_random123_known_answers() -> None:
    # Random123's kat_vectors for philox4x32-10.
    assert [int(v) for v in philox4x32(U(0), U(0), U(0), U(0), U(0), U(0))] == [
        0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]
    got = philox4x32(U(0x243F6A88), U(0x85A308D3), U(0x13198A2E), U(0x03707344), U(0xA4093822), U(0x299F31D0))
    assert [int(v) for v in got] == [0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1]


def test_normal_quantile_is_accurate_over_the_whole_range() -> None:
    tail = np.logspace(-9.6, -1, 400)
    u = np.concatenate([tail, np.linspace(0.01, 0.99, 999), 1 - tail])
    got = np.array([normal_fast(float(x)) for x in u])
    want = special.ndtri(u)
    assert np.max(np.abs(got - want) / np.maximum(np.abs(want), 1e-3)) < 1.2e-9


def test_expm1_series_error_bound() -> None:
    x = np.concatenate([np.logspace(-8, math.log10(64), 3000), np.linspace(0, 64, 3000),
                        -np.logspace(-8, -1, 200)])
    x = x.astype(np.float32)
    got = np.array([expm1_neg(v) for v in x], dtype=np.float64)
    want = np.expm1(-x.astype(np.float64))
    rel = np.abs(got - want) / np.maximum(np.abs(want), 1e-30)
    assert rel.max() < 4e-7
    assert expm1_neg(np.float32(1e4)) == pytest.approx(-1.0, abs=1e-7)  # capped, no overflow


@pytest.mark.parametrize("n, p", [(5, 0.942), (3, 0.3), (600, 0.7)])
def test_binomial_by_inversion_has_the_binomial_distribution(n: int, p: float) -> None:
    draws = 4000
    xs = np.array([philox4x32(U(i), U(1), U(0), U(0), U(7), U(9))[0] for i in range(draws)])
    u = (xs.astype(np.float64) + 0.5) / 2**32
    k = np.array([binomial(n, p, float(ui), U(i), U(1), U(0), 0, U(7), U(9)) for i, ui in enumerate(u)])
    assert k.min() >= 0 and k.max() <= n
    # Chi-square over bins with expected count >= 20.
    support = np.arange(n + 1)
    expected = stats.binom.pmf(support, n, p) * draws
    keep = expected >= 20
    observed = np.bincount(k, minlength=n + 1)
    f_obs, f_exp = observed[keep], expected[keep]
    if not keep.all():
        f_obs, f_exp = np.append(f_obs, observed[~keep].sum()), np.append(f_exp, expected[~keep].sum())
    assert stats.chisquare(f_obs, f_exp * f_obs.sum() / f_exp.sum()).pvalue > 1e-3


# -- kernel against the torch reference ---------------------------------------------------------------
def _session(x: SimulatedCrossbar, seed: int = 1) -> torch.Tensor:
    """Full and block updates with mixed signs; returns the final true conductances."""
    gen = torch.Generator().manual_seed(seed)
    for _ in range(4):
        x.apply_pulses(torch.randint(-3, 4, (x.rows, x.cols), generator=gen))
        rows = torch.randperm(x.rows, generator=gen)[: x.rows // 3]
        cols = torch.randperm(x.cols, generator=gen)[: x.cols // 2]
        block = torch.randint(-2, 3, (rows.numel(), cols.numel()), generator=gen)
        x.apply_pulses(block, rows=rows, cols=cols)
    return x.conductances()


NOISE_FREE = {
    "ideal": get_preset("ideal"),
    "binary_ideal": get_preset("binary_ideal"),
    "levels_stuck": get_preset("ideal").replace(n_levels=64, stuck_off_fraction=0.05, stuck_on_fraction=0.05,
                                                g_min=10e-6, g_min_dtod=0.02, dw_min_dtod=0.1, up_down=0.2),
    "abrupt_reset": get_preset("ideal").replace(abrupt_reset=True),
}


@pytest.mark.parametrize("scheme", ["push_pull", "set_only", "dep_only"])
@pytest.mark.parametrize("name", sorted(NOISE_FREE))
def test_noise_free_devices_end_in_exactly_the_reference_state(name: str, scheme: str) -> None:
    model = NOISE_FREE[name]
    ref = SimulatedCrossbar(30, 20, model, seed=4, scheme=scheme, kernel="torch")  # type: ignore[arg-type]
    fast = SimulatedCrossbar(30, 20, model, seed=4, scheme=scheme, kernel="numba")  # type: ignore[arg-type]
    assert torch.equal(_session(ref), _session(fast))
    assert ref.counters == fast.counters
    v = torch.rand(5, 30, generator=torch.Generator().manual_seed(2)) * ref.v_read
    assert torch.equal(ref.read_forward(v), fast.read_forward(v))  # the read cache agrees too


def test_noise_free_nonlinear_law_agrees_to_float32_precision() -> None:
    model = get_preset("rram").replace(dw_min_std=0.0, read_noise_std=0.0)
    ref, fast = (SimulatedCrossbar(30, 20, model, seed=4, kernel=k) for k in ("torch", "numba"))
    start = ref.conductances()
    a, b = _session(ref), _session(fast)
    assert torch.allclose(a, b, rtol=2e-6, atol=0) and not torch.equal(a, start)


NOISY = {
    "linear_c2c": get_preset("ideal").replace(dw_min=1e-6, dw_min_std=0.5),
    "rram": get_preset("rram"),
    "soft_bounds_c2c": get_preset("ideal").replace(step_model="soft_bounds", dw_min=2e-6, dw_min_std=0.4),
    "switch_linear": get_preset("ideal").replace(dw_min=1e-6, switch_probability=0.6),
    "binary_rram": get_preset("binary_rram"),
    "pcm_drift_abrupt": get_preset("pcm"),
}


def _moves(model: object, kernel: str, scheme: str, design: str = "single") -> np.ndarray:
    """Conductance changes of every device: after one update of +2 on every cell (the
    noise dominates the spread) or after :func:`_session` (mixed signs, block updates)."""
    x = SimulatedCrossbar(100, 80, model, seed=4, scheme=scheme, kernel=kernel)  # type: ignore[arg-type]
    if x.model.drift_nu > 0:
        x.advance_time(5.0)
    start = x.conductances()
    if design == "single":
        x.apply_pulses(torch.full((100, 80), 2, dtype=torch.int64))
        end = x.conductances()
    else:
        end = _session(x)
    moved = (end - start).flatten().numpy()
    return moved[moved != 0] if scheme != "push_pull" and design == "single" else moved


@pytest.mark.parametrize("scheme", ["push_pull", "set_only", "dep_only"])
@pytest.mark.parametrize("name", sorted(NOISY))
def test_noisy_devices_move_as_the_reference_in_distribution(name: str, scheme: str) -> None:
    model = NOISY[name]
    for design in ("single", "session"):
        ref, fast = _moves(model, "torch", scheme, design), _moves(model, "numba", scheme, design)
        assert stats.ks_2samp(ref, fast).pvalue > 1e-3, design
        assert ref.std() > 0  # the noise is really there


@pytest.mark.parametrize("name, changed", [
    ("linear_c2c", {"dw_min_std": 0.6}),
    ("rram", {"dw_min_std": 0.4}),
    ("switch_linear", {"switch_probability": 0.65}),
])
def test_the_distribution_test_detects_a_small_change(name: str, changed: dict[str, float]) -> None:
    # Power check: the same KS test on the same sizes rejects a model a little off.
    ref = _moves(NOISY[name].replace(**changed), "torch", "push_pull")
    fast = _moves(NOISY[name], "numba", "push_pull")
    assert stats.ks_2samp(ref, fast).pvalue < 1e-3


def test_same_seed_same_result_with_one_and_two_threads() -> None:
    threads = torch.get_num_threads()
    try:
        results = []
        for n in (1, 2):
            torch.set_num_threads(n)
            results.append(_session(SimulatedCrossbar(64, 48, "rram", seed=8, kernel="numba")))
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(results[0], results[1])


def test_resume_with_the_kernel_is_exact() -> None:
    a = SimulatedCrossbar(20, 12, "rram", seed=3, kernel="numba")
    _session(a, 0)
    state = a.state_dict()
    expected = _session(a, 1)
    b = SimulatedCrossbar(20, 12, "rram", seed=11, kernel="numba")
    b.load_state_dict(state)
    assert torch.equal(_session(b, 1), expected)


def test_missing_numba_falls_back_to_torch_with_a_logged_warning() -> None:
    code = ("import sys; sys.modules['numba'] = None\n"
            "from devices import SimulatedCrossbar\n"
            "x = SimulatedCrossbar(4, 3, 'rram')\n"
            "print(x.kernel)\n"
            "try:\n    SimulatedCrossbar(4, 3, 'rram', kernel='numba')\n"
            "except ValueError as err:\n    print('refused:', err)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    lines = out.stdout.splitlines()
    assert lines[0] == "torch"
    assert lines[1].startswith("refused: kernel = 'numba' cannot run: Numba is not importable")
    assert "use the torch reference" in out.stderr


def test_forcing_the_kernel_where_it_cannot_run_is_refused() -> None:
    with pytest.raises(ValueError, match="runs on the CPU in float32"):
        SimulatedCrossbar(4, 3, "ideal", dtype=torch.float64, kernel="numba")
    with pytest.raises(ValueError, match="kernel = 'fast'"):
        SimulatedCrossbar(4, 3, "ideal", kernel="fast")
    assert resolve_kernel("auto", torch.device("cpu"), torch.float64) == "torch"


cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@cuda
def test_on_a_gpu_the_torch_simulator_runs_and_matches_the_cpu() -> None:
    gpu = SimulatedCrossbar(30, 20, "ideal", seed=4, device="cuda")
    assert gpu.kernel == "torch"
    cpu = SimulatedCrossbar(30, 20, "ideal", seed=4, kernel="torch")
    counts = torch.randint(-3, 4, (30, 20), generator=torch.Generator().manual_seed(0))
    gpu.apply_pulses(counts.cuda())
    cpu.apply_pulses(counts)
    assert torch.allclose(gpu.conductances().cpu(), cpu.conductances(), rtol=1e-6, atol=0)
    with pytest.raises(ValueError, match="runs on the CPU"):
        SimulatedCrossbar(4, 3, "ideal", device="cuda", kernel="numba")
