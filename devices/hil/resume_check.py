"""Does an array still hold the conductances recorded for it? (resuming on instruments)

A physical array is not rolled back by a checkpoint: on resume its devices are compared
with a reference (a run's last conductance snapshot), allowing for what legitimately
happened since (pulses applied after the reference) and for read noise.

**Rule.** A device (G+ or G- of one cell) that received ``s`` SET and ``r`` RESET pulses
since the reference is expected at ``G_ref + d``, ``d = s dw_up - r dw_down`` (the nominal
steps, :attr:`Crossbar.nominal_steps`, S), and is *beyond tolerance* when

    |G_now - G_ref - d| > base_steps step + net_fraction |d| + c2c_steps step sqrt(s + r)
                          + noise_sigmas read_noise_std sqrt(G_now^2 + G_ref^2)

with ``step = max(dw_up, dw_down)`` and ``read_noise_std`` the relative read noise of the
array's nominal device model (0 when it has none). ``net_fraction |d|`` covers step-size
variation, nonlinearity and a bound reached on the way (with 1.0, anything between
``G_ref`` and ``G_ref + 2 d``), ``c2c_steps sqrt(s + r)`` the cycle-to-cycle noise of the
pulses. The array passes when at most ``floor(max_fraction * checked)`` devices are
beyond tolerance. Defaults (:class:`CheckRule`): 2 steps, 1.0, 1 step, 4 sigma, 2 %. A
difference smaller than that (e.g. a restart that lost only a few pulses per device on a
noisy array) cannot be told from read noise.

**Sample.** Arrays of up to ``max_devices`` devices (default 4096) are read whole. Larger
ones are read on whole word lines (an instrument reads a word line in one pass): the
``max_devices // (2 cols)`` lines (at least one) drawn without replacement by
``numpy.random.default_rng(seed)``, where the caller passes the layer index as ``seed``, so
every check of that array reads the same lines.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..interface import Crossbar, VerifyResult


@dataclass(frozen=True)
class CheckRule:
    """Tolerances of :func:`check_array` (see the module doc)."""

    base_steps: float = 2.0
    """Allowed for every device, in nominal steps."""
    net_fraction: float = 1.0
    """Allowed fraction of the expected change ``|d|`` since the reference."""
    c2c_steps: float = 1.0
    """Allowed nominal steps per square root of the pulses since the reference."""
    noise_sigmas: float = 4.0
    """Allowed read noise, in standard deviations of the difference of two reads."""
    max_fraction: float = 0.02
    """Fraction of the checked devices that may be beyond tolerance."""
    max_devices: int = 4096
    """Arrays with more devices are checked on a sample of word lines."""

    def __post_init__(self) -> None:
        for name in ("base_steps", "net_fraction", "c2c_steps", "noise_sigmas", "max_fraction"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} = {value!r}: must be a finite number >= 0")
        if self.max_fraction >= 1 or self.max_devices < 2:
            raise ValueError("max_fraction must be < 1 and max_devices >= 2")

    def text(self) -> str:
        """The rule in words, for messages."""
        return (f"expected G_ref + journaled pulses since, tolerance {self.base_steps:g} steps + "
                f"{self.net_fraction:g} x the expected change + {self.c2c_steps:g} step x sqrt(pulses) + "
                f"{self.noise_sigmas:g} sigma read noise; up to {100 * self.max_fraction:g} % beyond it")


@dataclass
class ArrayCheck:
    """Outcome of :func:`check_array`."""

    checked: int
    """Devices compared."""
    lines: int
    """Word lines read (all of them unless the array was sampled)."""
    rows: int
    """Word lines of the array."""
    beyond: int
    """Devices beyond their tolerance."""
    allowed: int
    """Devices that may be beyond it."""
    median_beyond_s: float
    """Median ``|G_now - G_ref - d|`` of the devices beyond tolerance, S (NaN if none)."""
    median_s: float
    """Median ``|G_now - G_ref - d|`` of all checked devices, S."""
    step_s: float
    """The nominal step of the rule, S."""

    @property
    def passed(self) -> bool:
        return self.beyond <= self.allowed

    def describe(self) -> str:
        """``272 devices read, 0 beyond tolerance (median |dG| 0.41 uS)`` style."""
        sample = f" (a sample: {self.lines} of {self.rows} word lines)" if self.lines < self.rows else ""
        text = f"{self.beyond} of {self.checked} devices{sample} beyond tolerance"
        if self.beyond:
            text += f" (median |dG| {1e6 * self.median_beyond_s:.3g} uS there"
        else:
            text += f" (median |dG| {1e6 * self.median_s:.3g} uS"
        return text + f", step {1e6 * self.step_s:.3g} uS)"


def sample_rows(rows: int, cols: int, max_devices: int, seed: int) -> list[int]:
    """The word lines to read (see the module doc): all, or a seeded sample."""
    if 2 * rows * cols <= max_devices:
        return list(range(rows))
    k = max(1, max_devices // (2 * cols))
    return sorted(int(i) for i in np.random.default_rng(seed).choice(rows, size=k, replace=False))


def read_rows(crossbar: Crossbar, rows: list[int]) -> Tensor:
    """Conductances ``(2, len(rows), cols)`` of the devices on ``rows``, S: an instrument-backed
    array reads only those lines, any other array reads all and keeps them."""
    from .crossbar import InstrumentCrossbar

    if isinstance(crossbar, InstrumentCrossbar) and len(rows) < crossbar.rows:
        g = crossbar.read_conductances(rows)
    else:
        g = crossbar.read_conductances()
    return g.detach().to(torch.float64).cpu()[:, rows]


def _read_noise(crossbar: Crossbar) -> float:
    model = getattr(crossbar, "model", None)
    return float(getattr(model, "read_noise_std", 0.0) or 0.0)


def check_array(crossbar: Crossbar, reference: Tensor, set_pulses: Tensor, reset_pulses: Tensor,
                rule: CheckRule = CheckRule(), seed: int = 0) -> ArrayCheck:
    """Read ``crossbar`` (all, or the sampled word lines) and compare it with ``reference``
    (S, ``(2, rows, cols)``), given the SET and RESET pulses (``(2, rows, cols)`` each) every
    device received since the reference was taken. Reads are counted and journaled by the array."""
    shape = (2, crossbar.rows, crossbar.cols)
    for name, t in (("reference", reference), ("set_pulses", set_pulses), ("reset_pulses", reset_pulses)):
        if tuple(t.shape) != shape:
            raise ValueError(f"{name} must have shape {shape}, got {tuple(t.shape)}")
    rows = sample_rows(crossbar.rows, crossbar.cols, rule.max_devices, seed)
    now = read_rows(crossbar, rows)
    ref = reference.detach().to(torch.float64).cpu()[:, rows]
    s, r = (t.detach().to(torch.float64).cpu()[:, rows].abs() for t in (set_pulses, reset_pulses))
    dw_up, dw_down = crossbar.nominal_steps
    step, change = max(dw_up, dw_down), s * dw_up - r * dw_down
    noise = rule.noise_sigmas * _read_noise(crossbar) * torch.sqrt(now.square() + ref.square())
    allowed = step * (rule.base_steps + rule.c2c_steps * (s + r).sqrt()) + rule.net_fraction * change.abs()
    allowed += noise
    diff = (now - ref - change).abs()
    beyond = ~(diff <= allowed)  # a NaN read counts as beyond
    checked = diff.numel()
    return ArrayCheck(
        checked=checked, lines=len(rows), rows=crossbar.rows, beyond=int(beyond.sum()),
        allowed=int(rule.max_fraction * checked),
        median_beyond_s=float(diff[beyond].median()) if bool(beyond.any()) else math.nan,
        median_s=float(diff.nan_to_num(math.inf).median()), step_s=step,
    )


def reprogram_array(crossbar: Crossbar, reference: Tensor, rule: CheckRule = CheckRule()) -> VerifyResult:
    """Program-and-verify every device of ``crossbar`` towards ``reference`` (S), to within
    ``step * base_steps / 2`` plus twice the read noise at ``g_max`` (S), with at most as
    many pulses per iteration as the bench's limits allow (16 otherwise)."""
    step = max(crossbar.nominal_steps)
    g_min, g_max = crossbar.g_bounds
    tolerance = step * max(rule.base_steps / 2, 1.0) + 2 * _read_noise(crossbar) * g_max
    per_iteration = 16
    bench = getattr(crossbar, "bench", None)
    if bench is not None:
        per_iteration = min(per_iteration, int(bench.settings.limits.max_pulses_per_cell))
    span = math.ceil((g_max - g_min) / step)
    return crossbar.program_and_verify(
        reference.detach().to(torch.float64).clamp(min=0.0).to(crossbar.dtype), tolerance=tolerance,
        max_pulses=4 * span + 16, max_iterations=max(100, 2 * span // per_iteration + 20),
        max_pulses_per_iteration=per_iteration,
    )
