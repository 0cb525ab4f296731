"""Where a layer's weights live: on a crossbar (pulsed) or in a float tensor (software).

Both expose the same three operations in *weight units*: a crossbar's normalized weight
is ``(G+ - G-) / (g_max - g_min)``, in [-1, 1] for nominal devices.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor

from devices import Crossbar


class WeightStore(ABC):
    """A ``rows x cols`` weight matrix that layers read forward and backward."""

    rows: int
    cols: int
    kind: str = ""
    """What holds the weights: ``crossbar``, ``carry`` (two crossbars) or ``float``."""
    arrays: int = 0
    """Crossbars read by every read of the store (0: float weights)."""

    @abstractmethod
    def forward(self, x: Tensor) -> Tensor:
        """``x @ W`` for ``x`` of shape ``(n, rows)``."""

    @abstractmethod
    def backward(self, d: Tensor) -> Tensor:
        """``d @ W.T`` for ``d`` of shape ``(n, cols)``."""

    @abstractmethod
    def weights(self) -> Tensor:
        """A copy of the current weight matrix (read-out), weight units."""

    def pulse(self, counts: Tensor, rows: Tensor | None = None, cols: Tensor | None = None) -> None:
        """Apply signed pulse counts (device stores only)."""
        raise TypeError(f"{type(self).__name__} holds float weights: it cannot be pulsed")

    def add(self, delta: Tensor) -> None:
        """Add a float increment (software stores only)."""
        raise TypeError(f"{type(self).__name__} lives on devices: it only takes pulses")

    def counters(self) -> dict[str, int]:
        """Device operation counters summed over the store's arrays (empty for float weights)."""
        return {}

    def pulse_totals(self) -> tuple[int, int]:
        """SET and RESET pulses applied so far (cheap: called after every batch)."""
        return 0, 0

    @abstractmethod
    def reads(self) -> tuple[int, int]:
        """Input vectors applied so far, ``(forward, transposed)``: one per row of the input
        of :meth:`forward` (:meth:`backward`); on a crossbar an all-zero input performs no
        read and counts none. Saved in :meth:`state_dict`."""

    @abstractmethod
    def description(self) -> dict[str, Any]:
        """What holds the weights (JSON-serializable), for run records."""

    def drain_events(self) -> list[tuple[str, str]]:
        """``(kind, message)`` events since the last call (e.g. verify failures)."""
        return []

    def drain_operations(self) -> np.ndarray | None:
        """Instrument operations since the last call (``devices.hil.journal`` rows), if any."""
        return None

    def close(self) -> None:  # noqa: B027 - optional hook, nothing to release by default
        """Release what holds the weights (instruments go to their safe state)."""

    @abstractmethod
    def snapshot(self) -> dict[str, np.ndarray]:
        """Named ``rows x cols`` arrays for the trace file: conductances ``g_plus``,
        ``g_minus`` (S) for device stores, ``weight`` (weight units) for float ones."""

    @abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Everything a checkpoint needs to continue exactly from here."""

    @abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""


def _pair(g: Tensor, prefix: str = "") -> dict[str, np.ndarray]:
    """A ``(2, rows, cols)`` conductance tensor as named float64 arrays (S)."""
    g = g.detach().cpu().double()
    return {f"{prefix}g_plus": g[0].numpy(), f"{prefix}g_minus": g[1].numpy()}


class CrossbarStore(WeightStore):
    """Weights held by a :class:`devices.Crossbar`; inputs become read voltages.

    Inputs are scaled so that the largest ``|x|`` of a batch maps to the read voltage
    (binary inputs are plain read pulses), and currents are converted back to weight
    units by ``I / (V_read (g_max - g_min))``.
    """

    kind = "crossbar"
    arrays = 1

    def __init__(self, crossbar: Crossbar) -> None:
        self.crossbar = crossbar
        self.rows, self.cols = crossbar.rows, crossbar.cols
        g_min, g_max = crossbar.g_bounds
        self._v = crossbar.v_read
        self._to_weight = 1.0 / (self._v * (g_max - g_min))
        self._g_range = g_max - g_min
        self._reads = [0, 0]

    def _read(self, x: Tensor, read: Callable[[Tensor], Tensor], width: int, which: int) -> Tensor:
        peak = float(x.abs().max()) if x.numel() else 0.0
        if peak == 0.0:  # nothing to apply: no read is performed
            return x.new_zeros((x.shape[0], width))
        self._reads[which] += x.shape[0]
        return read(x * (self._v / peak)) * (self._to_weight * peak)

    def forward(self, x: Tensor) -> Tensor:
        return self._read(x, self.crossbar.read_forward, self.cols, 0)

    def backward(self, d: Tensor) -> Tensor:
        return self._read(d, self.crossbar.read_backward, self.rows, 1)

    def reads(self) -> tuple[int, int]:
        return self._reads[0], self._reads[1]

    def weights(self) -> Tensor:
        return self.crossbar.read_weights() / self._g_range

    def pulse(self, counts: Tensor, rows: Tensor | None = None, cols: Tensor | None = None) -> None:
        self.crossbar.apply_pulses(counts, rows=rows, cols=cols)

    def counters(self) -> dict[str, int]:
        return self.crossbar.counters.as_dict()

    def pulse_totals(self) -> tuple[int, int]:
        c = self.crossbar.counters
        return c.set_pulses, c.reset_pulses

    def drain_operations(self) -> np.ndarray | None:
        return self.crossbar.drain_operations()

    def close(self) -> None:
        self.crossbar.close()

    def description(self) -> dict[str, Any]:
        return {"store": "crossbar", "crossbar": self.crossbar.description()}

    def snapshot(self) -> dict[str, np.ndarray]:
        return _pair(self.crossbar.snapshot_conductances())

    def state_dict(self) -> dict[str, Any]:
        return {"crossbar": self.crossbar.state_dict(), "reads": list(self._reads)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.crossbar.load_state_dict(state["crossbar"])
        self._reads = [int(n) for n in state.get("reads", (0, 0))]  # absent in older checkpoints


class CarryStore(WeightStore):
    """Periodic carry (Ambrogio et al., Nature 2018): two crossbars per weight matrix.

    The weight is ``W = W_msb + W_lsb / significance`` (each ``W_*`` a normalized
    differential weight). Every pulse goes to the low-significance array; every
    ``period`` updates its weights are read out, transferred into the high-significance
    array as ``round(W_lsb / (significance * msb_step))`` pulses (``msb_step`` the nominal
    weight change of one pulse there), and the low-significance devices are programmed
    back to mid-range by program-and-verify. The weight thus moves in steps
    ``significance`` times finer than one device allows.
    """

    kind = "carry"
    arrays = 2

    def __init__(self, msb: Crossbar, lsb: Crossbar, significance: float, period: int) -> None:
        if (msb.rows, msb.cols) != (lsb.rows, lsb.cols):
            raise ValueError("carry: both arrays must have the same shape")
        if not significance > 1 or period < 1:
            raise ValueError(f"carry: significance {significance!r} must be > 1 and period {period!r} >= 1")
        self.msb, self.lsb = CrossbarStore(msb), CrossbarStore(lsb)
        self.rows, self.cols = msb.rows, msb.cols
        self.significance, self.period = float(significance), int(period)
        self.updates = 0
        self.carries = 0
        self._events: list[tuple[str, str]] = []
        self._worst_verify = 0
        g_min, g_max = lsb.g_bounds
        self._mid = torch.full((2, lsb.rows, lsb.cols), (g_min + g_max) / 2, dtype=lsb.dtype)
        self._tolerance = max(lsb.nominal_steps)
        up, down = msb.nominal_steps
        # Weight change of one msb pulse: push_pull moves both devices, set_only one (SET),
        # dep_only one (RESET).
        moved = {"push_pull": up + down, "set_only": up, "dep_only": down}[msb.scheme]
        self._msb_step = moved / (msb.g_bounds[1] - msb.g_bounds[0])

    def forward(self, x: Tensor) -> Tensor:
        return self.msb.forward(x) + self.lsb.forward(x) / self.significance

    def backward(self, d: Tensor) -> Tensor:
        return self.msb.backward(d) + self.lsb.backward(d) / self.significance

    def weights(self) -> Tensor:
        return self.msb.weights() + self.lsb.weights() / self.significance

    def pulse(self, counts: Tensor, rows: Tensor | None = None, cols: Tensor | None = None) -> None:
        self.lsb.pulse(counts, rows, cols)
        self.updates += 1
        if self.updates % self.period == 0:
            self.carry()

    def carry(self) -> None:
        """Transfer the low-significance weights into the high-significance array."""
        moves = torch.round(self.lsb.weights() / (self.significance * self._msb_step)).to(torch.int64)
        if bool(moves.any()):
            self.msb.pulse(moves)
        result = self.lsb.crossbar.program_and_verify(self._mid, tolerance=self._tolerance, max_iterations=20)
        self.carries += 1
        if result.n_failed > self._worst_verify:  # report when failures grow, not every carry
            self._worst_verify = result.n_failed
            self._events.append(("verify_failure", f"carry {self.carries}: {result.n_failed} low-significance"
                                 f" devices missed mid-range by more than {self._tolerance:.3g} S"))

    def counters(self) -> dict[str, int]:
        msb, lsb = self.msb.counters(), self.lsb.counters()
        return {k: msb[k] + lsb[k] for k in msb}

    def reads(self) -> tuple[int, int]:
        return self.msb.reads()  # both arrays take every read

    def pulse_totals(self) -> tuple[int, int]:
        (ms, mr), (ls, lr) = self.msb.pulse_totals(), self.lsb.pulse_totals()
        return ms + ls, mr + lr

    def drain_operations(self) -> np.ndarray | None:
        parts = [ops for ops in (self.msb.drain_operations(), self.lsb.drain_operations()) if ops is not None]
        return np.concatenate(parts) if parts else None

    def close(self) -> None:
        self.msb.close()
        self.lsb.close()

    def description(self) -> dict[str, Any]:
        return {"store": "carry", "significance": self.significance, "period": self.period,
                "msb": self.msb.crossbar.description(), "lsb": self.lsb.crossbar.description()}

    def drain_events(self) -> list[tuple[str, str]]:
        events, self._events = self._events, []
        return events

    def snapshot(self) -> dict[str, np.ndarray]:
        """The high-significance pair as ``g_plus``/``g_minus``, the low one as ``lsb_*``."""
        return {**_pair(self.msb.crossbar.snapshot_conductances()),
                **_pair(self.lsb.crossbar.snapshot_conductances(), "lsb_")}

    def state_dict(self) -> dict[str, Any]:
        return {"msb": self.msb.state_dict(), "lsb": self.lsb.state_dict(),
                "updates": self.updates, "carries": self.carries, "worst_verify": self._worst_verify}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.msb.load_state_dict(state["msb"])
        self.lsb.load_state_dict(state["lsb"])
        self.updates, self.carries = int(state["updates"]), int(state["carries"])
        self._worst_verify = int(state["worst_verify"])


class FloatStore(WeightStore):
    """High-precision software weights (the ``sgd`` baseline)."""

    kind = "float"
    arrays = 0

    def __init__(self, w: Tensor) -> None:
        if w.dim() != 2:
            raise ValueError(f"weights: expected a matrix, got shape {tuple(w.shape)}")
        self.w = w
        self.rows, self.cols = w.shape
        self._reads = [0, 0]

    def forward(self, x: Tensor) -> Tensor:
        self._reads[0] += x.shape[0]
        return x @ self.w

    def backward(self, d: Tensor) -> Tensor:
        self._reads[1] += d.shape[0]
        return d @ self.w.T

    def reads(self) -> tuple[int, int]:
        return self._reads[0], self._reads[1]

    def weights(self) -> Tensor:
        return self.w.clone()

    def add(self, delta: Tensor) -> None:
        self.w += delta

    def description(self) -> dict[str, Any]:
        return {"store": "float", "rows": self.rows, "cols": self.cols}

    def snapshot(self) -> dict[str, np.ndarray]:
        return {"weight": self.w.detach().cpu().double().numpy().copy()}

    def state_dict(self) -> dict[str, Any]:
        return {"w": self.w.clone(), "reads": list(self._reads)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        w = state["w"]
        if tuple(w.shape) != (self.rows, self.cols):
            raise ValueError(f"state holds a {tuple(w.shape)} matrix, this store is {(self.rows, self.cols)}")
        self.w = w.to(self.w.dtype).clone()
        self._reads = [int(n) for n in state.get("reads", (0, 0))]  # absent in older checkpoints


def random_float_weights(rows: int, cols: int, gen: torch.Generator) -> Tensor:
    """Difference of two uniform [0, 1] draws: the weight law of a randomly initialized
    differential pair, so software and device networks start alike."""
    return torch.rand(rows, cols, generator=gen) - torch.rand(rows, cols, generator=gen)
