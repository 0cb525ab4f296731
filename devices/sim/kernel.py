"""The fused, compiled pulse update of :class:`~devices.sim.simulated.SimulatedCrossbar` (Numba).

What the torch reference (``SimulatedCrossbar._step``) does in about 25 elementwise
passes - failed pulses (binomial), cycle-to-cycle step noise, the step law, abrupt
RESET, bounds, quantization, stuck devices, drift bookkeeping and the read cache -
is one compiled loop nest over the rows of the block, chunks of rows in parallel
threads. Each row runs in short passes over its cells, each branch-free so that it
vectorizes: random numbers (Philox and the normal quantile), binomial pulse failures
(scalar, only where pulses may fail), effective pulses, the exponential laws' decay,
the new states, the read cache. Every random value comes from
:mod:`devices.sim.counter_rng` at counter ``(cell, update, 0, 0)``, so results do not
depend on the thread count. The switches that decide which passes run (additive or
exponential law, failing pulses, cycle-to-cycle noise, drift) are compile-time
constants (:func:`pulse_kernel` compiles one kernel per set), so each model runs only
the passes it needs.

Floating-point operations are those of the reference, in the same order and precision
(float32), except two cheap forms:

* ``expm1(-x)`` of the exponential laws: the degree-7 Taylor polynomial of ``x / 128``
  (truncation below 1e-19 for ``x <= 1``), brought back by seven doublings
  ``e <- e (e + 2)``, all in float32; ``x`` is capped at 64 (``exp(-64) < 2e-28``).
  Relative error at most 3 float32 ulp (4e-7), tested against ``math.expm1`` on [0, 64];
* the normal deviates by inversion (:func:`devices.sim.counter_rng.normal_fast`).

Noise-free linear and binary devices therefore end in exactly the reference's
conductances. Importing this module needs Numba; :mod:`devices.sim.accel` decides
whether it is used.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

import numpy as np
from numba import get_num_threads, njit, prange

from ..interface import SCHEMES
from .accel import as_numpy, kernel_key, restore_threads, set_threads
from .counter_rng import binomial, normal_fast, philox4x32, uniform
from .steps import get_step_law

EXPM1_REDUCTION = 7
EXPM1_CAP = 64.0

_F0 = np.float32(0.0)
_F1 = np.float32(1.0)


_SERIES = tuple(np.float32(1.0 / f) for f in (2, 6, 24, 120, 720, 5040))
_CAP = np.float32(EXPM1_CAP)
_SCALE = np.float32(2.0 ** -EXPM1_REDUCTION)
_F2 = np.float32(2.0)


@njit(inline="always", cache=True)
def expm1_neg(x):  # type: ignore[no-untyped-def]
    """``expm1(-x)`` in float32 by the reduced Taylor series (module doc); no branch, no call."""
    y = -min(x, _CAP) * _SCALE
    e = y * (_F1 + y * (_SERIES[0] + y * (_SERIES[1] + y * (_SERIES[2] + y * (_SERIES[3] + y * (
        _SERIES[4] + y * _SERIES[5]))))))
    # EXPM1_REDUCTION = 7 squarings, written out so that no inner loop stops vectorization.
    e = e * (e + _F2)
    e = e * (e + _F2)
    e = e * (e + _F2)
    e = e * (e + _F2)
    e = e * (e + _F2)
    e = e * (e + _F2)
    e = e * (e + _F2)
    return e


@njit(inline="always", cache=True)
def _device(g_old, g_lo, inv_span, span, mid0, half0, flag, pulses, decay, direction, law_additive, abrupt,
            levels, any_stuck):  # type: ignore[no-untyped-def]
    """New conductance (S, float32) of one device after ``pulses`` effective pulses in
    ``direction`` (+1 SET, -1 RESET); ``decay``: ``expm1(-rate * pulses)`` of a nonlinear
    law. Scalars only, so the caller's loop vectorizes."""
    w = (g_old - g_lo) * inv_span
    first = mid0 + direction * half0
    if law_additive:
        w = w + first * pulses
    else:
        w = w - (first - w) * decay
    w = min(max(w, _F0), _F1)
    if abrupt:
        w = w * _F0 if direction < 0 else w
    if levels > 0:
        step = np.float32(levels - 1)
        w = np.float32(np.rint(w * step)) / step
    if any_stuck:
        w = w if flag == 0 else (_F0 if flag == 1 else _F1)
    return g_lo + w * span


#: The compile-time switches of :func:`pulse_kernel`, in order: those that decide which
#: passes run (each set costs a compilation, 5-10 s, once per machine: Numba caches it).
SWITCHES = ("law_additive", "switch", "noisy", "drift")


@functools.cache
def pulse_kernel(law_additive: bool, switch: bool, noisy: bool, drift: bool) -> Any:
    """The kernel compiled for one set of :data:`SWITCHES`. ``law_additive``: the step law
    adds ``v a`` (else an exponential approach); ``switch``: pulses may fail
    (``p_switch < 1``); ``noisy``: cycle-to-cycle noise (``c2c > 0``); ``drift``: the
    devices drift (no read cache kept). Runtime flags: ``contiguous`` (the block's
    columns are ``0, 1, ...``), ``scheme`` (index in :data:`devices.interface.SCHEMES`:
    0 push_pull, 1 set_only, 2 dep_only), ``abrupt``, ``any_stuck``."""
    write_cache = not drift

    def pulse_block(counts, row_idx, col_idx, contiguous, n_cols, scheme, g, g_lo, inv_span, span, mid0,
                    half0, mid1, half1, flags, t_prog, drift_nu, cache, p_switch, c2c, abrupt, levels,
                    any_stuck, clock, t0, k0, k1, counter, threads):  # type: ignore[no-untyped-def]
        # Pulse cells (row_idx[r], col_idx[c]) by the signed counts[r, c]; per-device arrays
        # flat (device d of cell i at d * rows * cols + i), the read cache as rows of
        # [G+ - G- | G+^2 + G-^2] (2 n_cols each). Returns sum |counts|.
        n_cells = g.shape[0] // 2
        width = counts.shape[1]
        push_pull = scheme == 0
        one_way = _F1 if scheme == 1 else -_F1  # the direction of set_only's or dep_only's pulses
        c_lo, c_hi = counter[0], counter[1]
        n_rows = counts.shape[0]
        n_chunks = min(n_rows, 4 * threads)  # scratch is allocated once per chunk of rows
        partial = np.zeros(n_chunks, dtype=np.int64)
        for chunk in prange(n_chunks):
            z = np.empty(2 * width, dtype=np.float64)  # normals (noisy)
            u = np.empty(2 * width, dtype=np.float64)  # uniforms of the switch
            a = np.empty(2 * width, dtype=np.float32)  # pulses that took effect (switch)
            p = np.empty(width, dtype=np.float32)  # effective (noisy) pulses of one device
            e = np.zeros(width, dtype=np.float32)  # expm1(-rate * p) of one device
            for r in range(chunk * n_rows // n_chunks, (chunk + 1) * n_rows // n_chunks):
                base = row_idx[r] * n_cols
                if noisy or switch:
                    for c in range(width):  # pass 1: vectorizes
                        cell = base + (c if contiguous else col_idx[c])
                        x0, x1, x2, x3 = philox4x32(np.uint64(cell), c_lo, c_hi, np.uint64(0), k0, k1)
                        if noisy:
                            z[c], z[width + c] = normal_fast(uniform(x0)), normal_fast(uniform(x1))
                        if switch:
                            u[c], u[width + c] = uniform(x2), uniform(x3)
                    if switch:
                        for c in range(width):
                            m = abs(np.int64(counts[r, c]))
                            cell = base + (c if contiguous else col_idx[c])
                            for dev in range(2):
                                k = dev * width + c
                                a[k] = np.float32(binomial(m, p_switch, u[k], np.uint64(cell),
                                                           c_lo, c_hi, dev, k0, k1)) if m else _F0
                total = 0
                for c in range(width):
                    total += abs(np.int64(counts[r, c]))
                for dev in range(2):  # pass 3, split into loops that each vectorize
                    sg = _F1 if dev == 0 else -_F1
                    for c in range(width):  # 3a: effective pulses
                        k = dev * width + c
                        pulses = a[k] if switch else np.float32(abs(np.int64(counts[r, c])))
                        if noisy:
                            pulses = pulses + c2c * np.sqrt(pulses) * np.float32(z[k])
                        p[c] = pulses
                    if not law_additive:  # 3b: expm1(-rate * pulses) of the exponential laws
                        for c in range(width):
                            i = dev * n_cells + base + (c if contiguous else col_idx[c])
                            direction = sg * (_F1 if counts[r, c] > 0 else -_F1) if push_pull else one_way
                            e[c] = (mid1[i] + direction * half1[i]) * p[c]
                        for c in range(width):
                            e[c] = expm1_neg(e[c])
                    for c in range(width):  # 3c: the new states
                        n = np.int64(counts[r, c])
                        i = dev * n_cells + base + (c if contiguous else col_idx[c])
                        # set_only pulses G+ for n > 0 and G- for n < 0; dep_only the other device.
                        own = (n > 0) if dev == 0 else (n < 0)
                        pulsed = n != 0 and (push_pull or own == (scheme == 1))
                        direction = sg * (_F1 if n > 0 else -_F1) if push_pull else one_way
                        g_old = g[i]
                        if drift:
                            g_old = g_old * ((clock - t_prog[i] + t0) / t0) ** (-drift_nu[i])
                            t_prog[i] = clock if pulsed else t_prog[i]
                        g_new = _device(g_old, g_lo[i], inv_span[i], span[i], mid0[i], half0[i], flags[i],
                                        p[c], e[c], direction, law_additive, abrupt, levels, any_stuck)
                        g[i] = g_new if pulsed else g[i]
                if write_cache:  # the read cache [G+ - G- | G+^2 + G-^2], rows of 2 n_cols
                    for c in range(width):
                        col = c if contiguous else col_idx[c]
                        gp, gm = g[base + col], g[n_cells + base + col]
                        at = 2 * base + col
                        cache[at] = gp - gm
                        cache[at + n_cols] = gp * gp + gm * gm
                partial[chunk] += total
        return partial.sum()

    return njit(parallel=True, cache=True)(pulse_block)


#: One kernel launch at a time: Numba's fallback threading layer must not be entered
#: from two threads at once (a Dask thread pool may run several arrays).
_LAUNCH = threading.Lock()


class FusedPulses:
    """The kernel bound to one :class:`~devices.sim.simulated.SimulatedCrossbar`: numpy views
    of its per-device state (shared memory, updated in place) and the call."""

    def __init__(self, xbar: Any) -> None:
        self.xbar = xbar
        key = kernel_key(xbar.seed)
        self.k0, self.k1 = np.uint64(key[0]), np.uint64(key[1])
        self.all_rows = np.arange(xbar.rows, dtype=np.int64)
        self.all_cols = np.arange(xbar.cols, dtype=np.int64)
        self._bound: tuple[Any, Any] = (None, None)  # the state tensors the views are of
        self._views: tuple[Any, ...] = ()

    def _state_views(self) -> tuple[Any, ...]:
        x = self.xbar
        if self._bound[0] is not x.g or self._bound[1] is not x.t_prog:
            # first call, or the torch path replaced a state tensor
            self._bound = (x.g, x.t_prog)
            self._views = tuple(as_numpy(t) for t in (
                x.g, x.g_lo, x._inv_span, x._span, x._coef_mid[0], x._coef_half[0], x._coef_mid[1],
                x._coef_half[1], x._flags, x.t_prog, x.drift_nu))
        return self._views

    def apply(self, counts: Any, rows: Any, cols: Any, update: int) -> int:
        """Pulse the block ``counts[r, c]`` at ``(rows[r], cols[c])`` (numpy int arrays;
        None = every row or column) as update number ``update``; returns ``sum |counts|``."""
        x, m = self.xbar, self.xbar.model
        drift = m.drift_nu > 0
        if drift:
            x._cache = None
            cache = self.all_rows.astype(np.float32)  # unused placeholder
        else:
            cache = as_numpy(x._effective())
        counter = np.array([update & 0xFFFFFFFF, (update >> 32) & 0xFFFFFFFF], dtype=np.uint64)
        run = pulse_kernel(get_step_law(m.step_model).additive, m.switch_probability < 1, m.dw_min_std > 0,
                           drift)
        with _LAUNCH:
            threads = set_threads()
            try:
                return int(run(
                    counts, self.all_rows if rows is None else rows, self.all_cols if cols is None else cols,
                    cols is None, x.cols, SCHEMES.index(x.scheme), *self._state_views(), cache,
                    float(m.switch_probability), np.float32(m.dw_min_std), m.abrupt_reset, int(m.n_levels),
                    x._any_stuck, np.float32(x.time), np.float32(m.drift_t0), self.k0, self.k1, counter,
                    get_num_threads()))
            finally:
                restore_threads(threads)


def update_traffic_bytes(model: Any, cells: int, count_itemsize: int = 8) -> int:
    """Bytes the kernel moves for an update of ``cells`` pulsed cells (the memory-traffic
    floor: per cell its count, per device the state read and written and the parameters
    its law reads, per cell the read cache written; the same for every scheme, since both
    devices' state is read)."""
    law_additive = get_step_law(model.step_model).additive
    per_device = 8 + 4 * 5 + (0 if law_additive else 8)  # g (r/w); g_lo, 1/span, span, coefficients
    if model.stuck_off_fraction or model.stuck_on_fraction:
        per_device += 1  # flags
    if model.drift_nu > 0:
        per_device += 8 + 4  # t_prog (r/w), drift_nu
    cache = 0 if model.drift_nu > 0 else 8
    return cells * (count_itemsize + 2 * per_device + cache)
