"""The contract every :class:`devices.Crossbar` implementation must honour.

Parametrized over ``tests/crossbar_factories.py``. Only the public interface is used, so
noisy implementations are checked statistically: repeated reads give a mean and its
standard error, and a comparison passes if it agrees within ``Z`` standard errors (plus a
float-rounding allowance). For noise-free (``exact``) implementations the standard errors
are zero and the comparisons are exact up to rounding.
"""

from __future__ import annotations

import inspect
import math

import numpy as np
import pytest
import torch
from crossbar_factories import CrossbarFactory
from torch import Tensor

from devices import Crossbar, OpCounters, VerifyResult

pytestmark = pytest.mark.usefixtures("single_thread")

Z = 6.0
"""Agreement threshold in standard errors (one false alarm in ~1e9 per comparison)."""
K_READS = 24
"""Repeated reads behind every statistical mean."""
ROWS, COLS = 12, 10


def _make(
    factory: CrossbarFactory, rows: int = ROWS, cols: int = COLS, scheme: str = "push_pull"
) -> Crossbar:
    if rows > factory.max_shape[0] or cols > factory.max_shape[1]:
        pytest.skip(f"{factory.name} offers at most {factory.max_shape}")
    return factory(rows, cols, scheme)


def _programmed(
    factory: CrossbarFactory, gen: torch.Generator, rows: int = ROWS, cols: int = COLS
) -> Crossbar:
    """A crossbar whose weights are spread out (fresh arrays may hold all-zero weights)."""
    x = _make(factory, rows, cols)
    x.apply_pulses(torch.randint(-20, 21, (rows, cols), generator=gen))
    return x


def _scale(x: Crossbar) -> float:
    """Largest possible column current of a read with every input at v_read, A."""
    return x.v_read * x.g_bounds[1] * max(x.rows, x.cols)


def _atol(x: Crossbar) -> float:
    """Float-rounding allowance for currents (float32 sums of ~rows terms)."""
    return 1e-5 * _scale(x)


def _binary(gen: torch.Generator, batch: int, width: int, v: float, p: float = 0.5) -> Tensor:
    return (torch.rand(batch, width, generator=gen) < p).to(torch.float32) * v


def _mean_read(read, v: Tensor, k: int = K_READS) -> tuple[Tensor, Tensor]:
    """Mean and standard error of ``k`` repeated reads of every vector of ``v`` (one call)."""
    out = read(v.repeat(k, 1)).double().reshape(k, v.shape[0], -1)
    return out.mean(0), out.std(0) / math.sqrt(k)


def _mean_conductances(x: Crossbar, k: int = K_READS) -> tuple[Tensor, Tensor]:
    """Mean and standard error of ``k`` read-outs of every device, ``(2, rows, cols)``, S."""
    g = torch.stack([x.read_conductances().double() for _ in range(k)])
    return g.mean(0), g.std(0) / math.sqrt(k)


def _assert_agree(a: Tensor, b: Tensor, se: Tensor, atol: float, what: str) -> None:
    """``|a - b| <= Z se + atol`` everywhere, with a readable failure."""
    excess = (a - b).abs() - (Z * se + atol)
    if bool((excess > 0).any()):
        i = int(excess.argmax())
        raise AssertionError(
            f"{what}: {int((excess > 0).sum())} of {excess.numel()} entries disagree; worst at flat index "
            f"{i}: {a.flatten()[i].item():.4g} vs {b.flatten()[i].item():.4g} "
            f"(allowed {Z} x {se.flatten()[i].item():.3g} + {atol:.3g})"
        )


# -- shapes and dtypes ---------------------------------------------------------------
def test_read_shapes_and_dtypes(factory: CrossbarFactory, gen: torch.Generator) -> None:
    x = _make(factory)
    assert isinstance(x, Crossbar)
    assert (x.rows, x.cols) == (ROWS, COLS)
    assert x.dtype.is_floating_point
    g_min, g_max = x.g_bounds
    assert 0 <= g_min < g_max
    up, down = x.nominal_steps
    assert 0 < up < g_max - g_min and 0 < down < g_max - g_min
    assert x.v_read > 0

    for batch in (1, 5):
        i_f = x.read_forward(_binary(gen, batch, ROWS, x.v_read))
        assert isinstance(i_f, Tensor) and i_f.shape == (batch, COLS) and i_f.dtype == x.dtype
        i_b = x.read_backward(_binary(gen, batch, COLS, x.v_read))
        assert isinstance(i_b, Tensor) and i_b.shape == (batch, ROWS) and i_b.dtype == x.dtype
        assert bool(torch.isfinite(i_f).all()) and bool(torch.isfinite(i_b).all())

    g = x.read_conductances()
    assert isinstance(g, Tensor) and g.shape == (2, ROWS, COLS) and g.dtype == x.dtype
    assert bool(torch.isfinite(g).all())
    # Mid-range devices: every read-out lies well inside [0, 2 g_max] even with read noise.
    assert bool((g > -0.1 * g_max).all()) and bool((g < 2 * g_max).all())
    w = x.read_weights()
    assert w.shape == (ROWS, COLS) and w.dtype == x.dtype


def test_input_dtype_does_not_change_result(factory: CrossbarFactory, gen: torch.Generator) -> None:
    x = _programmed(factory, gen)
    v = _binary(gen, 3, ROWS, x.v_read)
    i32 = x.read_forward(v)
    i64 = x.read_forward(v.double())
    assert i64.dtype == x.dtype
    if factory.exact:
        torch.testing.assert_close(i64, i32, rtol=0, atol=_atol(x))


def test_zero_voltages_give_zero_current(factory: CrossbarFactory) -> None:
    x = _make(factory)
    i_f = x.read_forward(torch.zeros(4, ROWS))
    i_b = x.read_backward(torch.zeros(4, COLS))
    assert float(i_f.abs().max()) <= factory.current_atol
    assert float(i_b.abs().max()) <= factory.current_atol


# -- linearity and consistency -----------------------------------------------------------
@pytest.mark.parametrize("side", ["forward", "backward"])
def test_read_is_linear_in_voltage(factory: CrossbarFactory, gen: torch.Generator, side: str) -> None:
    x = _programmed(factory, gen)
    read = x.read_forward if side == "forward" else x.read_backward
    width = ROWS if side == "forward" else COLS
    # Two disjoint binary patterns and their union: superposition with hardware-friendly inputs.
    mask = torch.rand(6, width, generator=gen) < 0.5
    pick = torch.rand(6, width, generator=gen) < 0.5
    v1 = (mask & pick).float() * x.v_read
    v2 = (mask & ~pick).float() * x.v_read
    m1, s1 = _mean_read(read, v1)
    m2, s2 = _mean_read(read, v2)
    m12, s12 = _mean_read(read, v1 + v2)
    _assert_agree(m1 + m2, m12, (s1**2 + s2**2 + s12**2).sqrt(), 2 * _atol(x), "I(V1) + I(V2) vs I(V1 + V2)")
    # Homogeneity: half the voltage, half the current.
    mh, sh = _mean_read(read, 0.5 * (v1 + v2))
    _assert_agree(2 * mh, m12, (4 * sh**2 + s12**2).sqrt(), 2 * _atol(x), "2 I(V/2) vs I(V)")
    # The effect is not trivially zero: the currents are of the size of V @ W.
    assert float(m12.abs().max()) > 1e-3 * _scale(x)


def test_read_forward_matches_read_conductances(factory: CrossbarFactory, gen: torch.Generator) -> None:
    x = _programmed(factory, gen)
    g, g_se = _mean_conductances(x)
    w, w_se = g[0] - g[1], (g_se[0] ** 2 + g_se[1] ** 2).sqrt()
    v = _binary(gen, 8, ROWS, x.v_read).double()
    i_mean, i_se = _mean_read(x.read_forward, v.float())
    predicted = v @ w
    predicted_se = (v.square() @ w_se.square()).sqrt()
    _assert_agree(
        i_mean, predicted, (i_se**2 + predicted_se**2).sqrt(), _atol(x), "read_forward vs V @ (G+ - G-)"
    )
    assert float(predicted.abs().max()) > 1e-3 * _scale(x), "weights too small for a meaningful check"


def test_read_backward_is_transposed_read(factory: CrossbarFactory, gen: torch.Generator) -> None:
    x = _programmed(factory, gen)
    g, g_se = _mean_conductances(x)
    w, w_se = g[0] - g[1], (g_se[0] ** 2 + g_se[1] ** 2).sqrt()
    e = _binary(gen, 8, COLS, x.v_read).double()
    i_mean, i_se = _mean_read(x.read_backward, e.float())
    predicted = e @ w.T
    predicted_se = (e.square() @ w_se.T.square()).sqrt()
    _assert_agree(i_mean, predicted, (i_se**2 + predicted_se**2).sqrt(), _atol(x), "read_backward vs E @ W.T")
    assert float(predicted.abs().max()) > 1e-3 * _scale(x), "weights too small for a meaningful check"
    # Unit vectors pick single rows / columns: forward column j of row i == backward row i of column j.
    eye_r = torch.eye(ROWS) * x.v_read
    eye_c = torch.eye(COLS) * x.v_read
    f_mean, f_se = _mean_read(x.read_forward, eye_r)  # (rows, cols): v_read * W
    b_mean, b_se = _mean_read(x.read_backward, eye_c)  # (cols, rows): v_read * W.T
    _assert_agree(f_mean, b_mean.T, (f_se**2 + b_se.T**2).sqrt(), _atol(x), "forward vs transposed backward")


# -- weight updates ---------------------------------------------------------------------
def _region_counts(rows: int, cols: int, n: int) -> Tensor:
    """``+n`` on the first third of the rows, ``-n`` on the second, 0 on the rest."""
    counts = torch.zeros(rows, cols, dtype=torch.int64)
    third = rows // 3
    counts[:third] = n
    counts[third : 2 * third] = -n
    return counts


def _device_change(x: Crossbar, update) -> tuple[Tensor, Tensor]:
    """Mean per-device change of the read-out around ``update()`` and its standard error."""
    before, se_b = _mean_conductances(x)
    update()
    after, se_a = _mean_conductances(x)
    return after - before, (se_a**2 + se_b**2).sqrt()


def _moved(delta: Tensor, se: Tensor, sign: int, factory: CrossbarFactory) -> Tensor:
    """Bool: the change has the given sign, beyond read noise (or exactly, for exact arrays)."""
    if factory.exact:
        return sign * delta > 0
    return sign * delta > 3 * se


def _unmoved(delta: Tensor, se: Tensor, factory: CrossbarFactory, g_max: float) -> Tensor:
    if factory.exact:
        return delta.abs() <= 1e-6 * g_max
    return delta.abs() <= Z * se + 1e-6 * g_max


@pytest.mark.parametrize("scheme", ["push_pull", "set_only", "dep_only"])
def test_apply_pulses_moves_weight_with_sign_of_count(factory: CrossbarFactory, scheme: str) -> None:
    rows, cols = 24, 16
    x = _make(factory, rows, cols, scheme)
    counts = _region_counts(rows, cols, 5)
    delta, se = _device_change(x, lambda: x.apply_pulses(counts))
    dw = delta[0] - delta[1]
    dw_se = (se[0] ** 2 + se[1] ** 2).sqrt()
    pos, neg, zero = counts > 0, counts < 0, counts == 0
    # Noisy arrays may hold a few stuck devices; an exact array must move every cell.
    need = 1.0 if factory.exact else 0.9
    up = _moved(dw, dw_se, +1, factory)
    down = _moved(dw, dw_se, -1, factory)
    assert float(up[pos].float().mean()) >= need, f"only {float(up[pos].float().mean()):.2%} of +5 cells rose"
    assert float(down[neg].float().mean()) >= need, (
        f"only {float(down[neg].float().mean()):.2%} of -5 cells fell"
    )
    assert bool(_unmoved(dw, dw_se, factory, x.g_bounds[1])[zero].all()), "cells with count 0 changed"
    # On average, clearly.
    assert float(dw[pos].mean()) > Z * float(dw_se[pos].square().mean().sqrt()) / math.sqrt(int(pos.sum()))
    assert float(dw[neg].mean()) < -Z * float(dw_se[neg].square().mean().sqrt()) / math.sqrt(int(neg.sum()))


@pytest.mark.parametrize("scheme", ["push_pull", "set_only", "dep_only"])
def test_scheme_decides_which_device_moves(factory: CrossbarFactory, scheme: str) -> None:
    """push_pull: n > 0 SETs G+ and RESETs G-, n < 0 the reverse; set_only: n > 0 SETs G+ only,
    n < 0 SETs G- only; dep_only: n > 0 RESETs G- only, n < 0 RESETs G+ only (devices/interface.py)."""
    rows, cols = 24, 16
    x = _make(factory, rows, cols, scheme)
    counts = _region_counts(rows, cols, 5)
    delta, se = _device_change(x, lambda: x.apply_pulses(counts))
    pos, neg = counts > 0, counts < 0
    need = 1.0 if factory.exact else 0.9
    g_max = x.g_bounds[1]

    def frac(ok: Tensor, where: Tensor) -> float:
        return float(ok[where].float().mean())

    gp, gm = (delta[0], se[0]), (delta[1], se[1])
    if scheme == "dep_only":
        assert frac(_moved(*gm, -1, factory), pos) >= need, "dep_only, n > 0: G- was not RESET"
        assert frac(_moved(*gp, -1, factory), neg) >= need, "dep_only, n < 0: G+ was not RESET"
        assert bool(_unmoved(*gp, factory, g_max)[pos].all()), "dep_only, n > 0: G+ must not move"
        assert bool(_unmoved(*gm, factory, g_max)[neg].all()), "dep_only, n < 0: G- must not move"
        return
    # G+ always rises for n > 0 and G- always rises for n < 0 (a SET pulse in both schemes).
    assert frac(_moved(*gp, +1, factory), pos) >= need, "n > 0: G+ did not rise"
    assert frac(_moved(*gm, +1, factory), neg) >= need, "n < 0: G- did not rise"
    if scheme == "push_pull":
        assert frac(_moved(*gm, -1, factory), pos) >= need, "push_pull, n > 0: G- was not RESET"
        assert frac(_moved(*gp, -1, factory), neg) >= need, "push_pull, n < 0: G+ was not RESET"
    else:
        assert bool(_unmoved(*gm, factory, g_max)[pos].all()), (
            f"set_only, n > 0: G- must not move, but moved {float(gm[0][pos].mean()):.3g} S on average"
        )
        assert bool(_unmoved(*gp, factory, g_max)[neg].all()), (
            f"set_only, n < 0: G+ must not move, but moved {float(gp[0][neg].mean()):.3g} S on average"
        )


@pytest.mark.parametrize("scheme", ["push_pull", "set_only", "dep_only"])
def test_apply_pulses_counters_per_scheme(
    factory: CrossbarFactory, gen: torch.Generator, scheme: str
) -> None:
    x = _make(factory, scheme=scheme)
    counts = torch.randint(-3, 4, (ROWS, COLS), generator=gen)
    x.reset_counters()
    x.apply_pulses(counts)
    total = int(counts.abs().sum())
    expected = OpCounters(set_pulses=0 if scheme == "dep_only" else total,
                          reset_pulses=0 if scheme == "set_only" else total)
    assert x.counters == expected
    x.apply_pulses(torch.zeros(ROWS, COLS, dtype=torch.int64))
    assert x.counters == expected, "zero counts must not count pulses"


@pytest.mark.parametrize("scheme", ["push_pull", "set_only", "dep_only"])
def test_block_update_equals_full_update_with_zeros(
    factory: CrossbarFactory, gen: torch.Generator, scheme: str
) -> None:
    """``apply_pulses(counts, rows=..., cols=...)`` pulses only that block of cells."""
    if "rows" not in inspect.signature(Crossbar.apply_pulses).parameters:
        pytest.skip("this interface version has no block updates")
    rows, cols = torch.tensor([1, 4, 7, 10]), torch.tensor([0, 2, 3, 9])
    block = torch.randint(-3, 4, (4, 4), generator=gen)
    block[0, 0] = 3
    full = torch.zeros(ROWS, COLS, dtype=torch.int64)
    full[rows[:, None], cols[None, :]] = block
    x, y = _make(factory, scheme=scheme), _make(factory, scheme=scheme)
    y.apply_pulses(full)
    delta, se = _device_change(x, lambda: x.apply_pulses(block, rows=rows, cols=cols))
    assert (
        x.counters.set_pulses == y.counters.set_pulses and x.counters.reset_pulses == y.counters.reset_pulses
    )
    outside = full == 0
    assert bool(_unmoved(delta, se, factory, x.g_bounds[1])[:, outside].all()), (
        "cells outside the block moved"
    )
    if factory.exact:
        torch.testing.assert_close(
            x.read_conductances(), y.read_conductances(), rtol=0, atol=1e-6 * x.g_bounds[1]
        )
    # Only rows or only cols: the other defaults to all.
    z = _make(factory, scheme=scheme)
    z.apply_pulses(torch.ones(2, COLS, dtype=torch.int64), rows=torch.tensor([0, 5]))
    assert (z.counters.reset_pulses if scheme == "dep_only" else z.counters.set_pulses) == 2 * COLS
    with pytest.raises((TypeError, ValueError), match="rows"):
        z.apply_pulses(block, rows=torch.tensor([1, 4, 7, ROWS]), cols=cols)
    with pytest.raises((TypeError, ValueError), match="cols"):
        z.apply_pulses(block, rows=rows, cols=torch.tensor([0.0, 1.0, 2.0, 3.0]))
    with pytest.raises(ValueError, match="counts"):
        z.apply_pulses(block[:3], rows=rows, cols=cols)


def test_apply_pulses_zero_counts_leave_array_unchanged(factory: CrossbarFactory) -> None:
    x = _make(factory)
    delta, se = _device_change(x, lambda: x.apply_pulses(torch.zeros(ROWS, COLS, dtype=torch.int64)))
    assert bool(_unmoved(delta, se, factory, x.g_bounds[1]).all())


def test_pulse_devices_directions_and_counters(factory: CrossbarFactory) -> None:
    x = _make(factory, 24, 16)
    counts = torch.zeros(2, 24, 16, dtype=torch.int64)
    counts[0, :8] = 4  # SET G+
    counts[1, 8:16] = -4  # RESET G-
    x.reset_counters()
    delta, se = _device_change(x, lambda: x.pulse_devices(counts))
    need = 1.0 if factory.exact else 0.9
    assert float(_moved(delta, se, +1, factory)[counts > 0].float().mean()) >= need
    assert float(_moved(delta, se, -1, factory)[counts < 0].float().mean()) >= need
    assert bool(_unmoved(delta, se, factory, x.g_bounds[1])[counts == 0].all())
    assert x.counters.set_pulses == int(counts.clamp(min=0).sum())
    assert x.counters.reset_pulses == int((-counts).clamp(min=0).sum())


@pytest.mark.parametrize("dtype", [torch.int8, torch.int16, torch.int32, torch.uint8], ids=str)
def test_every_integer_count_dtype_behaves_like_int64(factory: CrossbarFactory, dtype: torch.dtype) -> None:
    counts = torch.zeros(2, ROWS, COLS, dtype=torch.int64)
    counts[0, :4] = 3
    if dtype != torch.uint8:
        counts[1, 4:8] = -2
    ref = _make(factory)
    ref.pulse_devices(counts)
    x = _make(factory)
    x.pulse_devices(counts.to(dtype))
    assert x.counters == ref.counters, f"{dtype} counts were counted differently from int64 counts"
    if factory.exact:
        torch.testing.assert_close(x.read_conductances(), ref.read_conductances(), rtol=0, atol=0)


# -- program and verify -------------------------------------------------------------------
def test_program_and_verify_reaches_targets_on_ideal_array(
    factory: CrossbarFactory, gen: torch.Generator
) -> None:
    if not factory.ideal:
        pytest.skip("reaching every target is only promised by ideal arrays")
    x = _make(factory)
    g_min, g_max = x.g_bounds
    r = g_max - g_min
    targets = g_min + r * (0.1 + 0.8 * torch.rand(2, ROWS, COLS, generator=gen))
    tol = 0.75 * max(x.nominal_steps)
    res = x.program_and_verify(targets, tolerance=tol, max_pulses=2000, max_pulses_per_iteration=64)
    assert isinstance(res, VerifyResult)
    assert res.n_failed == 0
    assert float(res.error.abs().max()) <= tol
    assert float((x.read_conductances().double() - targets.double()).abs().max()) <= tol + 1e-6 * g_max


def test_program_and_verify_result_is_consistent(factory: CrossbarFactory, gen: torch.Generator) -> None:
    x = _make(factory)
    g_min, g_max = x.g_bounds
    r = g_max - g_min
    targets = g_min + r * (0.2 + 0.6 * torch.rand(2, ROWS, COLS, generator=gen))
    tol = 0.05 * r
    max_pulses, max_iter = 300, 60
    before = x.reset_counters()
    assert isinstance(before, OpCounters)
    res = x.program_and_verify(targets, tolerance=tol, max_pulses=max_pulses, max_iterations=max_iter)
    shape = (2, ROWS, COLS)
    assert res.failed.shape == shape and res.failed.dtype == torch.bool
    assert res.error.shape == shape and res.error.dtype.is_floating_point
    assert res.pulses.shape == shape and not res.pulses.dtype.is_floating_point
    assert torch.equal(res.failed, res.error.abs() > tol)
    assert res.n_failed == int(res.failed.sum())
    assert bool((res.pulses >= 0).all()) and bool((res.pulses <= max_pulses).all())
    assert 0 <= res.iterations <= max_iter
    c = x.counters
    assert c.verify_iterations == res.iterations
    assert c.set_pulses + c.reset_pulses == int(res.pulses.sum())
    assert c.cell_reads == 2 * ROWS * COLS * (res.iterations + 1)
    assert c.vector_reads == 0 and c.macs == 0
    # Most devices reach a 5%-of-range tolerance even on a noisy array (stuck ones may not).
    assert res.n_failed <= (0 if factory.ideal else 0.05 * res.failed.numel())
    # An independent, averaged read-out confirms the successful devices. The loop accepted a
    # device on one noisy read, so allow 4 single-read standard deviations on top of tolerance.
    g, g_se = _mean_conductances(x)
    one_read_std = g_se * math.sqrt(K_READS)
    off = (g - targets.double()).abs() - (tol + 4 * one_read_std + Z * g_se + 1e-6 * g_max)
    assert float((off[~res.failed] > 0).float().mean()) <= (0 if factory.exact else 0.01)


def test_program_and_verify_reports_unreachable_targets(
    factory: CrossbarFactory, gen: torch.Generator
) -> None:
    x = _make(factory)
    g_min, g_max = x.g_bounds
    r = g_max - g_min
    targets = g_min + r * (0.3 + 0.4 * torch.rand(2, ROWS, COLS, generator=gen))
    unreachable = torch.zeros(2, ROWS, COLS, dtype=torch.bool)
    unreachable[:, :3] = True
    targets[unreachable] = 1.5 * g_max
    max_pulses = 400
    res = x.program_and_verify(
        targets, tolerance=0.05 * r, max_pulses=max_pulses, max_pulses_per_iteration=64
    )
    assert bool(res.failed[unreachable].all()), "unreachable targets must be reported as failed"
    assert bool((res.error[unreachable] < -0.05 * r).all())
    assert bool((res.pulses[unreachable] == max_pulses).all()), "the budget of unreachable devices is spent"
    if factory.ideal:
        assert not bool(res.failed[~unreachable].any())


def test_program_and_verify_respects_pulse_budget(factory: CrossbarFactory) -> None:
    x = _make(factory)
    g_min, g_max = x.g_bounds
    targets = torch.full((2, ROWS, COLS), g_min + 0.95 * (g_max - g_min))
    res = x.program_and_verify(
        targets, tolerance=0.01 * (g_max - g_min), max_pulses=5, max_pulses_per_iteration=2
    )
    assert int(res.pulses.max()) == 5
    assert res.iterations == 3  # 2 + 2 + 1 pulses, then every budget is spent
    # Five pulses cannot cross 45% of the range (a stuck-on device might happen to sit there).
    assert res.n_failed >= (res.failed.numel() if factory.exact else 0.95 * res.failed.numel())


# -- counters --------------------------------------------------------------------------------
def test_counters_count_exactly(factory: CrossbarFactory, gen: torch.Generator) -> None:
    x = _make(factory)
    x.reset_counters()
    assert x.counters == OpCounters()
    n = ROWS * COLS
    x.read_forward(_binary(gen, 7, ROWS, x.v_read))
    assert x.counters == OpCounters(vector_reads=7, macs=7 * n)
    x.read_backward(_binary(gen, 5, COLS, x.v_read))
    assert x.counters == OpCounters(vector_reads=12, macs=12 * n)
    x.read_conductances()
    x.read_weights()
    assert x.counters == OpCounters(vector_reads=12, macs=12 * n, cell_reads=4 * n)
    counts = torch.randint(-2, 3, (2, ROWS, COLS), generator=gen)
    x.pulse_devices(counts)
    n_set, n_reset = int(counts.clamp(min=0).sum()), int((-counts).clamp(min=0).sum())
    expected = OpCounters(
        vector_reads=12, macs=12 * n, cell_reads=4 * n, set_pulses=n_set, reset_pulses=n_reset
    )
    assert x.counters == expected
    assert x.counters.as_dict() == {
        "vector_reads": 12,
        "macs": 12 * n,
        "cell_reads": 4 * n,
        "set_pulses": n_set,
        "reset_pulses": n_reset,
        "verify_iterations": 0,
    }


def test_reset_counters_returns_snapshot_and_zeroes(factory: CrossbarFactory, gen: torch.Generator) -> None:
    x = _make(factory)
    x.read_forward(_binary(gen, 3, ROWS, x.v_read))
    old = x.reset_counters()
    assert old.vector_reads == 3 and old.macs == 3 * ROWS * COLS
    assert x.counters == OpCounters()
    x.read_forward(_binary(gen, 2, ROWS, x.v_read))
    assert old.vector_reads == 3, "the returned counters must not keep counting"
    assert x.counters.vector_reads == 2
    snap = x.counters.copy()
    x.read_forward(_binary(gen, 2, ROWS, x.v_read))
    assert snap.vector_reads == 2 and x.counters.vector_reads == 4


# -- argument errors ---------------------------------------------------------------------------
def _bad_calls(x: Crossbar):
    r, c = x.rows, x.cols
    ok_targets = torch.full((2, r, c), 0.5 * sum(x.g_bounds))
    yield "float counts", lambda: x.apply_pulses(torch.ones(r, c)), TypeError, "counts"
    yield "bool counts", lambda: x.apply_pulses(torch.ones(r, c, dtype=torch.bool)), TypeError, "counts"
    yield "list counts", lambda: x.apply_pulses([[1] * c] * r), TypeError, "counts"
    yield "numpy counts", lambda: x.apply_pulses(np.ones((r, c), dtype=np.int64)), TypeError, "counts"
    yield (
        "counts shape",
        lambda: x.apply_pulses(torch.ones(r, c + 1, dtype=torch.int64)),
        ValueError,
        "counts",
    )
    yield (
        "counts transposed",
        lambda: x.apply_pulses(torch.ones(c, r, dtype=torch.int64)),
        ValueError,
        "counts",
    )
    yield "device counts float", lambda: x.pulse_devices(torch.ones(2, r, c)), TypeError, "counts"
    yield (
        "device counts shape",
        lambda: x.pulse_devices(torch.ones(r, c, dtype=torch.int64)),
        ValueError,
        "counts",
    )
    yield "forward width", lambda: x.read_forward(torch.ones(2, r + 1)), ValueError, "voltages"
    yield "forward 1-D", lambda: x.read_forward(torch.ones(r)), ValueError, "voltages"
    yield "forward 3-D", lambda: x.read_forward(torch.ones(1, 2, r)), ValueError, "voltages"
    yield "forward list", lambda: x.read_forward([[0.1] * r]), TypeError, "voltages"
    yield "forward numpy", lambda: x.read_forward(np.ones((2, r))), TypeError, "voltages"
    yield "backward width", lambda: x.read_backward(torch.ones(2, r)), ValueError, "voltages"
    yield "backward 1-D", lambda: x.read_backward(torch.ones(c)), ValueError, "voltages"
    yield "targets shape", lambda: x.program_and_verify(ok_targets[0], tolerance=1e-6), ValueError, "targets"
    yield (
        "targets numpy",
        lambda: x.program_and_verify(ok_targets.numpy(), tolerance=1e-6),
        TypeError,
        "targets",
    )
    yield "targets negative", lambda: x.program_and_verify(-ok_targets, tolerance=1e-6), ValueError, "targets"
    yield (
        "targets nan",
        lambda: x.program_and_verify(ok_targets * math.nan, tolerance=1e-6),
        ValueError,
        "targets",
    )
    yield "tolerance 0", lambda: x.program_and_verify(ok_targets, tolerance=0.0), ValueError, "tolerance"
    yield (
        "tolerance nan",
        lambda: x.program_and_verify(ok_targets, tolerance=math.nan),
        ValueError,
        "tolerance",
    )
    yield (
        "max_pulses 0",
        lambda: x.program_and_verify(ok_targets, tolerance=1e-6, max_pulses=0),
        ValueError,
        "max_pulses",
    )
    yield (
        "max_iterations 1.5",
        lambda: x.program_and_verify(ok_targets, tolerance=1e-6, max_iterations=1.5),
        ValueError,
        "max_iterations",
    )


class _SizeOnly:
    """Just enough of a crossbar to list the cases of ``_bad_calls`` (nothing is called)."""

    rows, cols, g_bounds = 3, 2, (0.0, 1.0)


_BAD_NAMES = [name for name, *_ in _bad_calls(_SizeOnly())]  # type: ignore[arg-type]


@pytest.mark.parametrize("case", _BAD_NAMES)
def test_bad_arguments_raise_clear_errors_without_side_effects(factory: CrossbarFactory, case: str) -> None:
    # Non-square on purpose, so that a transposed shape is wrong too.
    x = _make(factory, 6, 4)
    _, call, exc, argument = next(item for item in _bad_calls(x) if item[0] == case)
    before = x.counters.copy()
    with pytest.raises(exc, match=argument):
        call()
    assert x.counters == before, "a rejected call must not count anything"
