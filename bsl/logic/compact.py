"""CompactLogic's training aids: the entropy-driven slot resampler and adaptive
discretization (freezing layers front to back).

Resampler, every ``every`` steps, per parameter row of a :class:`SlotGates` layer:
the slot marginal ``q_k = sum_g p(k, g)`` of the joint (slot, gate) softmax says how
decided the row is. A *confident* row (``max q >= confidence``) keeps its best slot and
redraws the input pairs of its other slots; a row whose normalised joint entropy stays
``>= undecided`` for ``patience`` checks in a row is re-initialised whole. Redrawn slots
get fresh N(0, 1) gate logits and their Adam moments are reset to zero.

Freezer: after each check, the first layer not yet frozen is frozen (discretised for the
rest of the run) once its mean normalised entropy changed by at most ``tolerance`` since
the previous check; later layers keep training on its Boolean outputs. The last layer is
never frozen.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from .gates import N_GATES
from .layers import LogicLayer, SlotGates


@dataclass
class ResampleCount:
    """Slots redrawn in one check of one layer."""

    confident_rows: int = 0
    slots_redrawn: int = 0
    rows_reinitialised: int = 0


def resample_slots(layer: SlotGates, gen: torch.Generator, *, confidence: float, undecided: float,
                   patience: int, optimizer: torch.optim.Optimizer | None = None) -> ResampleCount:
    """One resampling check of ``layer`` (see the module doc); returns what it changed."""
    logits = layer.gate_logits.detach()
    rows, k = layer.rows, layer.slots
    joint = torch.softmax(logits.view(rows, -1), -1)
    q = joint.view(rows, k, N_GATES).sum(-1)
    conf, best = q.max(-1)
    h = -(joint * joint.clamp_min(1e-30).log()).sum(-1) / torch.log(torch.tensor(float(k * N_GATES)))
    layer.undecided.copy_(torch.where(h >= undecided, layer.undecided + 1, torch.zeros_like(layer.undecided)))
    reinit = layer.undecided >= patience
    layer.undecided[reinit] = 0
    keep = (conf >= confidence) & ~reinit
    mask = (keep[:, None] & (torch.arange(k)[None, :] != best[:, None])) | reinit[:, None]  # (rows, K)
    n = int(mask.sum())
    if n:
        layer.pairs[mask] = torch.randint(0, layer.codes, (n, 2), generator=gen)
        with torch.no_grad():
            layer.gate_logits[mask] = torch.randn(n, N_GATES, generator=gen)
        if optimizer is not None:
            state = optimizer.state.get(layer.gate_logits, {})
            for name in ("exp_avg", "exp_avg_sq"):
                if name in state:
                    state[name][mask] = 0.0
    return ResampleCount(int(keep.sum()), n, int(reinit.sum()))


@dataclass
class Freezer:
    """Adaptive discretization state: how many leading layers are frozen and the last
    mean normalised entropy of the first unfrozen one."""

    tolerance: float
    frozen: int = 0
    last: float | None = None
    history: list[tuple[int, int]] = field(default_factory=list)
    """``(step, layer)`` of each freeze."""

    def check(self, layers: list[LogicLayer], step: int) -> int | None:
        """Freeze the next layer if its entropy has converged; returns its index or None."""
        if self.frozen >= len(layers) - 1:
            return None
        now = layers[self.frozen].mean_normalized_entropy()
        if self.last is not None and abs(self.last - now) <= self.tolerance:
            index = self.frozen
            layers[index].freeze()
            self.history.append((step, index))
            self.frozen += 1
            self.last = None  # the next layer starts its own series
            return index
        self.last = now
        return None

    def state_dict(self) -> dict[str, Any]:
        return {"frozen": self.frozen, "last": self.last, "history": [list(h) for h in self.history]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.frozen, self.last = int(state["frozen"]), state["last"]
        self.history = [(int(s), int(i)) for s, i in state["history"]]
