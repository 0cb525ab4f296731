"""A simulated crossbar of noisy analog memristors (vectorized torch, any torch device).

Non-idealities, each from :class:`devices.sim.physics.DeviceModel`:

* bounded, nonlinear, asymmetric steps (``step_model``, ``nu_up``/``nu_down``, ``up_down``);
* cycle-to-cycle step noise on every pulse (``dw_min_std``);
* device-to-device variation of ``g_min``, ``g_max``, ``dw_min``, ``up_down``, ``nu``
  and ``drift_nu``, drawn once per device from ``seed`` (normal, truncated at 3 sigma);
* read noise: every read sees each device as ``G (1 + read_noise_std xi)``, fresh ``xi``
  per device and read. For an array read this is summed exactly in distribution:
  ``I_j = sum_i V_i W_ij + read_noise_std sqrt(sum_i V_i^2 (G+_ij^2 + G-_ij^2)) xi_j``;
* stuck devices at ``g_min`` or ``g_max`` (they ignore pulses, which are still counted);
* pulses that fail: each takes effect with probability ``switch_probability``;
* two-state devices (``step_model='binary'``: one effective pulse switches), optional
  retention failure (``retention_tau``: devices fall to ``g_min`` as the clock runs);
* optional quantization to ``n_levels`` per device, applied on every write;
* optional power-law drift ``G(t) = G_prog ((t - t_prog + t0) / t0)^(-drift_nu)``, where
  the clock only moves through :meth:`SimulatedCrossbar.advance_time` and a pulse
  re-programs (restarts the drift of) the devices it touches.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..interface import SCHEMES, Crossbar, OpCounters, Scheme
from .accel import resolve_kernel
from .draws import INIT_STATES, draw_devices
from .physics import DeviceModel
from .presets import resolve_model
from .steps import advance, law_coefficients

#: A pulse update computes only the pulsed cells when they are fewer than this fraction
#: of the selected ones (gathering them costs more than a dense pass beyond it).
SPARSE_FRACTION = 0.4


class SimulatedCrossbar(Crossbar):
    """``rows x cols`` differential pairs of simulated memristors.

    Args:
        rows, cols: array size.
        model: a :class:`DeviceModel`, a preset name or a preset file (default ``rram``).
        seed: fixes device-to-device draws, stuck devices and all later noise.
        scheme: ``push_pull``, ``set_only`` or ``dep_only`` (see :mod:`devices.interface`).
        init: initial state of every device: ``mid`` (default), ``min``, ``max``
            or ``random`` (uniform between the device's own bounds).
        init_spread: with ``init='mid'``, each device starts uniformly within
            ``0.5 +- init_spread / 2`` of its normalized range (0 = exactly mid).
        device, dtype: where and in which precision the state lives.
        kernel: the pulse update's implementation, ``auto``, ``numba`` or ``torch``
            (see :mod:`devices.sim.accel`; None: ``$BSL_KERNEL`` or ``auto``).
    """

    def __init__(
        self,
        rows: int,
        cols: int,
        model: DeviceModel | str | Path | None = None,
        *,
        seed: int = 0,
        scheme: Scheme = "push_pull",
        init: str = "mid",
        init_spread: float = 0.0,
        device: str | torch.device | None = None,
        dtype: torch.dtype = torch.float32,
        kernel: str | None = None,
    ) -> None:
        for name, value in (("rows", rows), ("cols", cols)):
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
                raise ValueError(f"{name} = {value!r}: must be a positive integer")
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
            raise ValueError(f"seed = {seed!r}: must be a non-negative integer")
        if scheme not in SCHEMES:
            raise ValueError(f"scheme = {scheme!r}: must be one of {SCHEMES}")
        if init not in INIT_STATES:
            raise ValueError(f"init = {init!r}: must be one of {INIT_STATES}")
        if not 0.0 <= init_spread <= 1.0:
            raise ValueError(f"init_spread = {init_spread!r}: must lie in [0, 1]")
        if not dtype.is_floating_point:
            raise ValueError(f"dtype = {dtype}: must be a floating-point dtype")
        self.rows, self.cols = int(rows), int(cols)
        self.model = resolve_model(model)
        self.scheme = scheme
        self.seed = int(seed)
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.dtype = dtype
        self.kernel = resolve_kernel(kernel, self.device, dtype)
        self._fused: Any = None
        self._updates = 0  # apply_pulses calls so far: the kernel's random counter
        self.counters = OpCounters()
        self.time = 0.0
        seeds = np.random.SeedSequence(self.seed).generate_state(2)
        self._noise = torch.Generator(device=self.device)
        self._noise.manual_seed(int(seeds[1]))
        self._draw_devices(int(seeds[0]), init, init_spread)
        self._cache: Tensor | None = None

    # -- construction ---------------------------------------------------------
    def _draw_devices(self, seed: int, init: str, init_spread: float) -> None:
        d = draw_devices(self.model, (2, self.rows, self.cols), seed, init, init_spread, self._kw)
        self.g_lo, self.g_hi, self.drift_nu = d["g_lo"], d["g_hi"], d["drift_nu"]
        self.dp_up, self.dp_down = d["dp_up"], d["dp_down"]
        self.nu_up, self.nu_down = d["nu_up"], d["nu_down"]
        self.stuck_off, self.stuck_on, w0 = d["stuck_off"], d["stuck_on"], d["w0"]
        self._prepare_laws()
        self.g = self.g_lo + self._settle(w0, self._free, self._stuck_high) * self._span
        self.t_prog = torch.zeros_like(self.g)

    def _prepare_laws(self) -> None:
        """Per-device constants derived from the drawn parameters (not state).

        A device's law coefficients are stored as ``mid + s * half`` with ``s = +1`` for
        SET and ``-1`` for RESET, so that an update selects them with one multiply."""
        law = self.model.step_model
        self._span = self.g_hi - self.g_lo
        self._inv_span = 1.0 / self._span
        up = law_coefficients(self.dp_up, self.nu_up, law, True)
        down = law_coefficients(self.dp_down, self.nu_down, law, False)
        self._coef_mid = ((up[0] + down[0]) / 2, (up[1] + down[1]) / 2)
        self._coef_half = ((up[0] - down[0]) / 2, (up[1] - down[1]) / 2)
        free = ~(self.stuck_off | self.stuck_on)
        self._any_stuck = not bool(free.all())
        self._free = free.to(self.dtype)
        self._stuck_high = self.stuck_on.to(self.dtype)
        self._flags = self.stuck_off.to(torch.uint8) + 2 * self.stuck_on.to(torch.uint8)
        self._fused = None  # the kernel's views of the old tensors are stale

    # -- interface --------------------------------------------------------------
    @property
    def g_bounds(self) -> tuple[float, float]:
        return (self.model.g_min, self.model.g_max)

    @property
    def nominal_steps(self) -> tuple[float, float]:
        return (self.model.dw_up, self.model.dw_down)

    @property
    def v_read(self) -> float:
        return self.model.v_read

    def read_forward(self, voltages: Tensor) -> Tensor:
        v = self._check_voltages(voltages, self.rows, "rows")
        both, c = self._effective(), self.cols
        return self._read(v, both[:, :c], both[:, c:])

    def read_backward(self, voltages: Tensor) -> Tensor:
        v = self._check_voltages(voltages, self.cols, "columns")
        both, c = self._effective(), self.cols
        return self._read(v, both[:, :c].T, both[:, c:].T)

    def read_conductances(self) -> Tensor:
        g = self._drifted()
        self.counters.cell_reads += g.numel()
        sigma = self.model.read_noise_std
        if sigma > 0:
            return g * (1.0 + sigma * torch.randn(g.shape, generator=self._noise, **self._kw))
        return g.clone()

    def pulse_devices(self, counts: Tensor) -> None:
        counts = self._check_counts(counts, (2, self.rows, self.cols))
        n_set = int(counts.clamp(min=0).sum().item())
        n_reset = int((-counts).clamp(min=0).sum().item())
        if n_set or n_reset:
            self._step(counts.abs().to(self.dtype), counts.sign().to(self.dtype), None)
        self.counters.set_pulses += n_set
        self.counters.reset_pulses += n_reset

    def apply_pulses(
        self, counts: Tensor, *, rows: Tensor | None = None, cols: Tensor | None = None
    ) -> None:
        # Same semantics as Crossbar.apply_pulses, without materializing per-device
        # integer counts, and touching only the selected block: the hot path.
        counts, block = self._check_block(counts, rows, cols)
        self._updates += 1
        if self.kernel == "numba":
            self._apply_fused(counts, block)
            return
        magnitude = counts.abs()
        total = int(magnitude.sum().item())
        if total == 0:
            return
        flat = None
        if block is not None:
            flat = (block[0][:, None] * self.cols + block[1][None, :]).flatten()
            counts, magnitude = counts.flatten(), magnitude.flatten()
        if int(torch.count_nonzero(magnitude)) < SPARSE_FRACTION * magnitude.numel():
            # Only the cells that receive pulses are computed.
            touched = torch.nonzero(magnitude.flatten()).flatten()
            flat = touched if flat is None else flat[touched]
            counts, magnitude = counts.flatten()[touched], magnitude.flatten()[touched]
        pulses = magnitude.to(self.dtype)
        sign = counts.sign().to(self.dtype)
        if self.scheme == "push_pull":
            # G+ moves in the count's direction, G- the opposite way.
            self._step(torch.stack((pulses, pulses)), torch.stack((sign, -sign)), flat)
        else:
            # set_only: SET pulses on G+ for positive counts, on G- for negative ones;
            # dep_only: RESET pulses on the other device of the pair.
            way = 1.0 if self.scheme == "set_only" else -1.0
            on = torch.stack(((way * sign > 0).to(self.dtype), (way * sign < 0).to(self.dtype)))
            self._step(pulses * on, way * on, flat)
        self._count_pulses(total)

    def _count_pulses(self, total: int) -> None:
        """Count an update of ``total`` (sum of ``|counts|``) pulses per device by scheme."""
        if self.scheme != "dep_only":
            self.counters.set_pulses += total
        if self.scheme != "set_only":
            self.counters.reset_pulses += total

    def _apply_fused(self, counts: Tensor, block: tuple[Tensor, Tensor] | None) -> None:
        if self._fused is None:
            from .kernel import FusedPulses

            self._fused = FusedPulses(self)
        rows, cols = (None, None) if block is None else (block[0].numpy(), block[1].numpy())
        self._count_pulses(self._fused.apply(np.ascontiguousarray(counts.numpy()), rows, cols,
                                             self._updates - 1))

    def _step(self, pulses: Tensor, direction: Tensor, flat: Tensor | None) -> None:
        """Move devices by ``pulses`` (float counts, >= 0); ``direction`` is +1 (SET),
        -1 (RESET) or 0 per device. Both are ``(2, rows, cols)``, or ``(2, n)`` for the
        ``n`` cells at the flat (row-major) indices ``flat``."""
        m = self.model

        def sub(t: Tensor) -> Tensor:
            if flat is None:
                return t
            return t.reshape(2, -1).index_select(1, flat).view_as(direction)

        a = pulses
        if m.switch_probability < 1:  # each pulse takes effect with this probability
            a = torch.binomial(a, torch.full_like(a, m.switch_probability), generator=self._noise)
        if m.dw_min_std > 0:
            noise = torch.randn(a.shape, generator=self._noise, **self._kw)
            a = a + m.dw_min_std * a.sqrt() * noise
        g_lo = sub(self.g_lo)
        g = sub(self._drifted() if m.drift_nu > 0 else self.g)
        w = (g - g_lo) * sub(self._inv_span)
        first = sub(self._coef_mid[0]) + direction * sub(self._coef_half[0])
        rate = sub(self._coef_mid[1]) + direction * sub(self._coef_half[1])
        w = advance(w, a, first, rate, m.step_model)
        if m.abrupt_reset:
            w = w * (direction > -0.5).to(self.dtype)
        if m.n_levels or self._any_stuck:
            w = self._settle(w, sub(self._free), sub(self._stuck_high))
        # A device that receives no pulse keeps its conductance exactly.
        moved = pulses > 0
        g_new = torch.where(moved, g_lo + w * sub(self._span), sub(self.g))
        if m.drift_nu > 0:
            # A pulse re-programs the device: its drift restarts from the new state.
            t_new = torch.where(moved, torch.full_like(g_new, self.time), sub(self.t_prog))
            self.t_prog = self._put(self.t_prog, t_new, flat)
        self.g = self._put(self.g, g_new, flat)
        if flat is not None and self._cache is not None and m.drift_nu <= 0:
            # Block update: refresh only the touched cells of the read cache [G+ - G- | G+^2 + G-^2].
            both, at = self._cache.view(-1), (flat // self.cols) * (2 * self.cols) + flat % self.cols
            both.index_copy_(0, at, (g_new[0] - g_new[1]).reshape(-1))
            both.index_copy_(0, at + self.cols, (g_new[0].square() + g_new[1].square()).reshape(-1))
        else:
            self._cache = None

    @staticmethod
    def _put(full: Tensor, part: Tensor, flat: Tensor | None) -> Tensor:
        """``part`` as the new state, or scattered into ``full`` at flat cell indices."""
        if flat is None:
            return part
        full.view(2, -1).index_copy_(1, flat, part.reshape(2, -1))
        return full

    # -- simulator extras -------------------------------------------------------
    def advance_time(self, seconds: float) -> None:
        """Let ``seconds`` (s) pass on the simulated clock (drift acts on reads)."""
        if not seconds >= 0:
            raise ValueError(f"seconds = {seconds!r}: must be >= 0")
        self.time += float(seconds)
        self._cache = None
        tau = self.model.retention_tau
        if tau > 0 and seconds > 0:  # retention failure: a device falls to its g_min
            lost = torch.rand(self.g.shape, generator=self._noise, **self._kw) < -math.expm1(-seconds / tau)
            self.g = torch.where(lost & self._free.bool(), self.g_lo, self.g)

    def conductances(self) -> Tensor:
        """The true (noise-free, drifted) conductances ``(2, rows, cols)``, S. Not counted
        as reads: this is the simulator's omniscient view, for analysis and tests."""
        return self._drifted().clone()

    def description(self) -> dict[str, Any]:
        return {**super().description(), "seed": self.seed, "dtype": str(self.dtype).replace("torch.", ""),
                "model": self.model.to_dict()}

    def snapshot_conductances(self) -> Tensor:
        """The exact device state (:meth:`conductances`): snapshots never draw read noise,
        so recording a run does not change its random stream."""
        return self.conductances()

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly where this array is (for checkpoints)."""
        return {
            "model": self.model.to_dict(),
            "rows": self.rows, "cols": self.cols, "seed": self.seed, "scheme": self.scheme,
            "time": self.time, "counters": self.counters.as_dict(), "updates": self._updates,
            "noise_rng": self._noise.get_state(),
            **{k: getattr(self, k).clone() for k in _STATE_TENSORS},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (same shape and model)."""
        if (state["rows"], state["cols"]) != (self.rows, self.cols):
            raise ValueError(
                f"state is for a {state['rows']}x{state['cols']} array, this one is "
                f"{self.rows}x{self.cols}"
            )
        if DeviceModel.from_dict(state["model"]) != self.model:
            raise ValueError("state was saved with a different device model")
        if state["scheme"] != self.scheme:
            raise ValueError(
                f"state was saved with scheme {state['scheme']!r}, this array uses scheme {self.scheme!r}"
            )
        for k in _STATE_TENSORS:
            # A copy: the kernel updates the state in place, the saved state must stay as it was.
            setattr(self, k, state[k].to(device=self.device, dtype=getattr(self, k).dtype, copy=True))
        self.time = float(state["time"])
        self._updates = int(state.get("updates", 0))  # absent in older checkpoints
        self.seed = int(state["seed"])  # the kernel's random key continues the saved array's
        self.counters = OpCounters(**state["counters"])
        self._noise.set_state(state["noise_rng"])
        self._prepare_laws()
        self._cache = None

    # -- internals ----------------------------------------------------------------
    @property
    def _kw(self) -> dict[str, Any]:
        return {"device": self.device, "dtype": self.dtype}

    def _settle(self, w: Tensor, free: Tensor, stuck_high: Tensor) -> Tensor:
        """Normalized state as written: quantized to ``n_levels``, stuck devices pinned."""
        levels = self.model.n_levels
        if levels:
            w = torch.round(w * (levels - 1)) / (levels - 1)
        return w * free + stuck_high

    def _drifted(self) -> Tensor:
        if self.model.drift_nu <= 0:
            return self.g
        t0 = self.model.drift_t0
        age = (self.time - self.t_prog + t0) / t0
        return self.g * age.pow(-self.drift_nu)

    def _effective(self) -> Tensor:
        """The read cache ``(rows, 2 cols)``: ``[G+ - G- | G+^2 + G-^2]`` (S, S^2)."""
        if self._cache is None:
            g = self._drifted()
            self._cache = torch.cat((g[0] - g[1], g[0].square() + g[1].square()), dim=1)
        return self._cache

    def _read(self, v: Tensor, w: Tensor, g_sq: Tensor) -> Tensor:
        """Currents ``v @ w`` (A) with read noise of variance ``sigma^2 v^2 @ g_sq``."""
        batch = v.shape[0]
        self.counters.vector_reads += batch
        self.counters.macs += batch * w.shape[0] * w.shape[1]
        current = v @ w
        sigma = self.model.read_noise_std
        if sigma > 0:
            spread = (v.square() @ g_sq).sqrt_()
            current += sigma * spread * torch.randn(current.shape, generator=self._noise, **self._kw)
        return current


_STATE_TENSORS = (
    "g", "t_prog", "g_lo", "g_hi", "dp_up", "dp_down", "nu_up", "nu_down",
    "drift_nu", "stuck_off", "stuck_on",
)
