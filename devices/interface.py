"""The crossbar interface that every array implements, simulated or instrument-backed.

A crossbar has ``rows x cols`` cells; each cell stores a weight as a differential
pair of conductances, ``G+`` (index 0) and ``G-`` (index 1), so per-device tensors
have shape ``(2, rows, cols)``. Units: volts (V), amperes (A), siemens (S), seconds (s).

Update schemes (``scheme``), for a signed per-cell count ``n`` from :meth:`Crossbar.apply_pulses`:

``push_pull`` (default)
    ``n > 0``: ``n`` SET pulses on ``G+`` and ``n`` RESET pulses on ``G-``;
    ``n < 0``: ``|n|`` RESET pulses on ``G+`` and ``|n|`` SET pulses on ``G-``.
    Both devices move the weight the same way; no refresh is ever needed.
``set_only``
    ``n > 0``: ``n`` SET pulses on ``G+``; ``n < 0``: ``|n|`` SET pulses on ``G-``
    (Burr et al. 2015, Ambrogio et al. 2018). Suits devices with an abrupt RESET;
    pairs saturate and need an occasional refresh (program-and-verify).
``dep_only``
    The mirror image: ``n > 0``: ``n`` RESET pulses on ``G-``; ``n < 0``: ``|n|`` RESET
    pulses on ``G+`` (devices whose SET is abrupt or unreliable, e.g. OxRAM; paper 003's
    authors' ``dep_only``). Pairs saturate low and need the same refresh.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

Scheme = Literal["push_pull", "set_only", "dep_only"]
SCHEMES: tuple[str, ...] = ("push_pull", "set_only", "dep_only")


@dataclass
class OpCounters:
    """Operation counts since the last reset: the raw material for energy estimates."""

    vector_reads: int = 0
    """Input vectors applied to the array (forward plus transposed reads)."""
    macs: int = 0
    """Multiply-accumulates performed by those reads (one per weight per vector)."""
    cell_reads: int = 0
    """Single-device reads (conductance read-outs, program-and-verify)."""
    set_pulses: int = 0
    """SET pulses applied to devices (stuck devices included: the pulse is sent)."""
    reset_pulses: int = 0
    """RESET pulses applied to devices."""
    verify_iterations: int = 0
    """Read-then-pulse iterations of program-and-verify."""

    def as_dict(self) -> dict[str, int]:
        """The counters as a plain dict."""
        return dataclasses.asdict(self)

    def copy(self) -> OpCounters:
        """An independent snapshot."""
        return dataclasses.replace(self)


@dataclass
class VerifyResult:
    """Outcome of :meth:`Crossbar.program_and_verify`."""

    failed: Tensor
    """Bool ``(2, rows, cols)``: devices still outside tolerance when the loop stopped."""
    error: Tensor
    """Final ``G_read - G_target`` per device, S."""
    pulses: Tensor
    """Pulses spent per device (SET plus RESET)."""
    iterations: int
    """Read-then-pulse iterations performed."""

    @property
    def n_failed(self) -> int:
        """Number of devices that missed their target."""
        return int(self.failed.sum().item())


class Crossbar(ABC):
    """A ``rows x cols`` array of differential conductance pairs."""

    rows: int
    cols: int
    scheme: Scheme
    counters: OpCounters
    device: torch.device
    dtype: torch.dtype

    # -- what an implementation provides -------------------------------------
    @property
    @abstractmethod
    def g_bounds(self) -> tuple[float, float]:
        """Nominal ``(g_min, g_max)`` of one device, S."""

    @property
    @abstractmethod
    def nominal_steps(self) -> tuple[float, float]:
        """Nominal ``(SET step, RESET step)`` of one pulse, S (used by program-and-verify)."""

    @property
    @abstractmethod
    def v_read(self) -> float:
        """Read voltage for a binary '1' input, V."""

    @abstractmethod
    def read_forward(self, voltages: Tensor) -> Tensor:
        """Apply ``voltages`` (V, shape ``(batch, rows)``) on the rows; return the
        differential column currents ``I+ - I-`` (A, shape ``(batch, cols)``)."""

    @abstractmethod
    def read_backward(self, voltages: Tensor) -> Tensor:
        """Apply ``voltages`` (V, shape ``(batch, cols)``) on the columns; return the
        differential row currents (A, shape ``(batch, rows)``): the transposed read."""

    @abstractmethod
    def pulse_devices(self, counts: Tensor) -> None:
        """Per-device pulses: integer ``counts`` of shape ``(2, rows, cols)``;
        positive = that many SET pulses, negative = RESET pulses, 0 = untouched."""

    @abstractmethod
    def read_conductances(self) -> Tensor:
        """Read every device one by one: ``(2, rows, cols)`` conductances, S (with read noise)."""

    # -- shared behaviour -----------------------------------------------------
    def apply_pulses(
        self, counts: Tensor, *, rows: Tensor | None = None, cols: Tensor | None = None
    ) -> None:
        """Step-wise weight update: signed integer ``counts`` turned into device pulses
        by :attr:`scheme` (see module doc).

        Without ``rows``/``cols``, ``counts`` has shape ``(rows, cols)``. With them
        (1-D integer index tensors, each defaulting to all), ``counts`` has shape
        ``(len(rows), len(cols))`` and only that block of cells is pulsed: the sparse
        update of a single sample, whose binary input selects a few rows."""
        counts, block = self._check_block(counts, rows, cols)
        if block is not None:
            full = torch.zeros((self.rows, self.cols), dtype=counts.dtype, device=self.device)
            full[block[0][:, None], block[1][None, :]] = counts
            counts = full
        if self.scheme == "push_pull":
            per_device = torch.stack((counts, -counts))
        elif self.scheme == "dep_only":
            per_device = torch.stack((counts.clamp(max=0), (-counts).clamp(max=0)))
        else:
            per_device = torch.stack((counts.clamp(min=0), (-counts).clamp(min=0)))
        self.pulse_devices(per_device)

    @property
    def max_pulses_per_update(self) -> int | None:
        """The most pulses one device may get in one :meth:`pulse_devices` call (None: no limit)."""
        return None

    def read_weights(self) -> Tensor:
        """Read-out of the differential weights ``G+ - G-`` (S, shape ``(rows, cols)``)."""
        g = self.read_conductances()
        return g[0] - g[1]

    def program_and_verify(
        self,
        targets: Tensor,
        *,
        tolerance: float,
        max_pulses: int = 200,
        max_iterations: int = 100,
        max_pulses_per_iteration: int = 16,
    ) -> VerifyResult:
        """Program every device to ``targets`` (S, shape ``(2, rows, cols)``) by
        read-then-pulse iterations until each is within ``tolerance`` (S).

        Each device may receive at most ``max_pulses`` pulses in total; devices that
        are still outside the tolerance when their budget or ``max_iterations`` runs
        out are reported in ``VerifyResult.failed`` (stuck devices end up there).
        """
        targets = self._check_tensor(targets, (2, self.rows, self.cols), "targets")
        if not tolerance > 0:  # also refuses NaN
            raise ValueError(f"tolerance = {tolerance!r} S: must be > 0")
        for name, value in (
            ("max_pulses", max_pulses),
            ("max_iterations", max_iterations),
            ("max_pulses_per_iteration", max_pulses_per_iteration),
        ):
            if int(value) != value or value < 1:
                raise ValueError(f"{name} = {value!r}: must be a positive integer")
        limit = self.max_pulses_per_update
        if limit is not None and max_pulses_per_iteration > limit:
            raise ValueError(f"max_pulses_per_iteration = {max_pulses_per_iteration}: this array allows "
                             f"at most {limit} pulses per device in one update: nothing was sent")
        if not bool(torch.isfinite(targets).all()):
            raise ValueError("targets: conductances must be finite")
        if bool((targets < 0).any()):
            raise ValueError("targets: conductances must be >= 0 S")
        step_up, step_down = self.nominal_steps
        spent = torch.zeros_like(targets, dtype=torch.int64)
        iterations = 0
        g = self.read_conductances()
        for _ in range(max_iterations):
            error = targets - g
            todo = (error.abs() > tolerance) & (spent < max_pulses)
            if not bool(todo.any()):
                break
            step = torch.where(error > 0, step_up, step_down)
            n = torch.round(error / step).clamp(-max_pulses_per_iteration, max_pulses_per_iteration)
            n = torch.where(n == 0, torch.sign(error), n).to(torch.int64)
            remaining = max_pulses - spent
            n = torch.maximum(torch.minimum(n, remaining), -remaining)
            n = torch.where(todo, n, torch.zeros_like(n))
            self.pulse_devices(n)
            spent += n.abs()
            iterations += 1
            self.counters.verify_iterations += 1
            g = self.read_conductances()
        error = g - targets
        return VerifyResult(
            failed=error.abs() > tolerance, error=error, pulses=spent, iterations=iterations
        )

    def description(self) -> dict[str, Any]:
        """What this array is, for run records (JSON-serializable). Subclasses add their
        device model or instrument identities."""
        g_min, g_max = self.g_bounds
        return {"kind": type(self).__name__, "rows": self.rows, "cols": self.cols,
                "scheme": self.scheme, "g_min_S": g_min, "g_max_S": g_max, "v_read_V": self.v_read}

    def drain_operations(self) -> np.ndarray | None:
        """Instrument operations journaled since the last call (``devices.hil.journal``
        rows), or None for arrays that keep no journal."""
        return None

    def close(self) -> None:  # noqa: B027 - optional hook, nothing to release by default
        """Release the array (instrument-backed arrays: safe state). Idempotent."""

    def snapshot_conductances(self) -> Tensor:
        """Conductances ``(2, rows, cols)`` (S) for a run's trace file. By default a
        measured read-out (:meth:`read_conductances`); a simulator may return its exact
        state instead, without disturbing its random draws."""
        return self.read_conductances()

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint keeps of this array. A physical array keeps its state in the
        devices themselves, so by default only the operation counters are saved."""
        return {"counters": self.counters.as_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        self.counters = OpCounters(**state["counters"])

    def reset_counters(self) -> OpCounters:
        """Zero the counters; return what they held."""
        old = self.counters
        self.counters = OpCounters()
        return old

    # -- validation helpers ---------------------------------------------------
    def _check_tensor(self, x: Tensor, shape: tuple[int, ...], name: str) -> Tensor:
        if not isinstance(x, Tensor):
            raise TypeError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
        if tuple(x.shape) != shape:
            raise ValueError(f"{name}: expected shape {shape}, got {tuple(x.shape)}")
        return x.to(device=self.device, dtype=self.dtype)

    def _check_voltages(self, v: Tensor, width: int, side: str) -> Tensor:
        if not isinstance(v, Tensor):
            raise TypeError(f"voltages: expected a torch.Tensor, got {type(v).__name__}")
        if v.dim() != 2 or v.shape[1] != width:
            raise ValueError(
                f"voltages on the {side}: expected shape (batch, {width}), got {tuple(v.shape)}"
            )
        return v.to(device=self.device, dtype=self.dtype)

    def _check_block(
        self, counts: Tensor, rows: Tensor | None, cols: Tensor | None
    ) -> tuple[Tensor, tuple[Tensor, Tensor] | None]:
        """Validate a (possibly block) count tensor; return it and the block index."""
        if rows is None and cols is None:
            return self._check_counts(counts, (self.rows, self.cols)), None
        index = []
        for name, idx, size in (("rows", rows, self.rows), ("cols", cols, self.cols)):
            if idx is None:
                idx = torch.arange(size, device=self.device)
            if not isinstance(idx, Tensor) or idx.dim() != 1 or idx.dtype.is_floating_point:
                raise ValueError(f"{name}: expected a 1-D integer index tensor")
            idx = idx.to(device=self.device, dtype=torch.int64)
            if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= size):
                raise ValueError(f"{name}: indices must lie in [0, {size})")
            index.append(idx)
        counts = self._check_counts(counts, (index[0].numel(), index[1].numel()))
        return counts, (index[0], index[1])

    def _check_counts(self, counts: Tensor, shape: tuple[int, ...]) -> Tensor:
        if not isinstance(counts, Tensor):
            raise TypeError(f"counts: expected a torch.Tensor, got {type(counts).__name__}")
        if counts.dtype.is_floating_point or counts.dtype.is_complex or counts.dtype == torch.bool:
            raise TypeError(f"counts: expected an integer tensor, got dtype {counts.dtype}")
        if tuple(counts.shape) != shape:
            raise ValueError(f"counts: expected shape {shape}, got {tuple(counts.shape)}")
        # int64: negating unsigned (uint8) counts would wrap around.
        return counts.to(device=self.device, dtype=torch.int64)
