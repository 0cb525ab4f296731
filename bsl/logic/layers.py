"""Relaxed logic-gate layers: each neuron mixes the 16 gates of two inputs (difflogic),
with its two inputs chosen by fixed random wiring, learned interconnect (LILogicNet), or
learned candidate slots (CompactLogic, dense or convolutional).

Inputs and outputs are probabilities of "true", laid out gates first: ``(inputs, batch)``
-> ``(size, batch)`` (so that picking inputs is a row gather, whose backward is cheap).
A layer discretises to its argmax choices (:meth:`LogicLayer.discrete`); a *frozen* layer
(CompactLogic's adaptive discretization) already computes its discrete function.
Entropies are in bits.
"""

from __future__ import annotations

import math
from abc import abstractmethod

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .discrete import DiscreteLayer
from .gates import COEFFICIENTS, N_GATES, mixture_coefficients, relaxed_gate

WIRINGS = ("random", "dense", "topk", "slots")
WIRE_NOISE = 0.1
"""Standard deviation of the small noise on initial connection logits."""


def entropy_bits(logits: Tensor) -> Tensor:
    """Entropy (bits) of ``softmax(logits)`` along the last axis."""
    logp = torch.log_softmax(logits, -1)
    return -(logp.exp() * logp).sum(-1) / math.log(2)


def spread_wires(inputs: int, count: int, gen: torch.Generator) -> Tensor:
    """``count`` random input indices that cover all inputs as evenly as possible
    (concatenated random permutations)."""
    reps = -(-count // inputs)
    return torch.cat([torch.randperm(inputs, generator=gen) for _ in range(reps)])[:count]


def straight_through(soft: Tensor, hard: Tensor) -> Tensor:
    """``hard`` forward, the gradient of ``soft`` backward."""
    return soft + (hard - soft).detach()


class LogicLayer(nn.Module):
    """A layer of ``size`` relaxed two-input gates over ``inputs`` input probabilities."""

    wiring: str = ""
    frozen: Tensor
    straight_through: bool
    noise: float
    noise_gen: torch.Generator | None

    def __init__(self, inputs: int, size: int) -> None:
        super().__init__()
        self.inputs, self.size = inputs, size
        self.register_buffer("frozen", torch.zeros((), dtype=torch.bool))
        self.straight_through = False  # argmax forward, relaxed gradient backward (set by the rule)
        self.noise, self.noise_gen = 0.0, None  # Gumbel noise on the logits while training (set by the rule)

    def noisy(self, logits: Tensor) -> Tensor:
        """``logits`` plus ``noise`` x standard Gumbel noise (from ``noise_gen``), while training
        in the straight-through phase; unchanged otherwise."""
        if not (self.straight_through and self.noise > 0 and self.noise_gen is not None):
            return logits
        u = torch.rand(logits.shape, generator=self.noise_gen).clamp_(1e-12, 1 - 1e-7)
        return logits - self.noise * torch.log(-torch.log(u))

    @property
    def is_frozen(self) -> bool:
        return bool(self.frozen)

    def freeze(self) -> None:
        """Compute the discrete function from now on (no more learning in this layer)."""
        self.frozen.fill_(True)

    @abstractmethod
    def forward(self, x: Tensor) -> Tensor:
        """Relaxed outputs (the discrete ones once frozen)."""

    @abstractmethod
    def discrete(self) -> DiscreteLayer:
        """The argmax gates and wires."""

    @abstractmethod
    def entropies(self) -> dict[str, Tensor]:
        """Per parameter row, the entropy (bits) of each choice the layer learns."""

    @abstractmethod
    def mean_normalized_entropy(self) -> float:
        """Mean entropy of the layer's choices over its maximum, in [0, 1]."""

    def forward_discrete(self, x: Tensor) -> Tensor:
        """The discretised layer on Boolean (0/1) inputs, as floats."""
        d = self.discrete()
        coef = torch.as_tensor(COEFFICIENTS[d.gate], dtype=x.dtype)
        return relaxed_gate(x[torch.as_tensor(d.a)], x[torch.as_tensor(d.b)], coef)

    def describe_wiring(self) -> str:
        return self.wiring

    def facts(self) -> dict[str, object]:
        gates = np.bincount(self.discrete().gate, minlength=N_GATES)
        return {"kind": "logic", "inputs": self.inputs, "gates": self.size, "wiring": self.wiring,
                "gate_counts": [int(g) for g in gates]}


class WiredGates(LogicLayer):
    """One gate per neuron (``gate_logits (size, 16)``) on two wires: fixed random
    (``random``, difflogic), a softmax over all inputs (``dense``) or over ``candidates``
    inputs fixed at initialisation (``topk``), both initialised near a random one-hot
    (logit ``wire_logit`` on the random wire plus N(0, 0.1) noise)."""

    wires: Tensor
    candidates: Tensor

    def __init__(self, inputs: int, size: int, wiring: str, gen: torch.Generator, *,
                 candidates: int = 0, wire_logit: float = 4.0) -> None:
        super().__init__(inputs, size)
        if wiring not in ("random", "dense", "topk"):
            raise ValueError(f"wiring {wiring!r}: a gate layer takes random, dense or topk")
        self.wiring = wiring
        self.gate_logits = nn.Parameter(torch.randn(size, N_GATES, generator=gen))
        wires = torch.stack([spread_wires(inputs, size, gen), spread_wires(inputs, size, gen)])  # (2, size)
        if wiring == "random":
            self.register_buffer("wires", wires)
        elif wiring == "dense":
            logits = WIRE_NOISE * torch.randn(2, size, inputs, generator=gen)
            logits.scatter_add_(2, wires[..., None], torch.full((2, size, 1), wire_logit))
            self.wire_logits = nn.Parameter(logits)
        else:
            if not 1 <= candidates <= inputs:
                raise ValueError(f"candidates = {candidates}: must lie in [1, {inputs}] (the layer's inputs)")
            others = torch.rand(2, size, inputs, generator=gen).topk(candidates, -1).indices  # distinct
            hit = others == wires[..., None]  # the random wire goes to slot 0, the others stay distinct
            where = hit.float().argmax(-1, keepdim=True)  # 0 where the wire is not among them
            others.scatter_(2, where, torch.where(hit.any(-1, keepdim=True), others[..., :1],
                                                  others.gather(2, where)))
            others[..., 0] = wires
            self.register_buffer("candidates", others)
            logits = WIRE_NOISE * torch.randn(2, size, candidates, generator=gen)
            logits[..., 0] += wire_logit
            self.wire_logits = nn.Parameter(logits)

    def chosen_wires(self) -> Tensor:
        """``(2, size)`` argmax input indices."""
        if self.wiring == "random":
            return self.wires
        return self._argmax_inputs(self.wire_logits)

    def _argmax_inputs(self, logits: Tensor, side: int | None = None) -> Tensor:
        """Input index of the largest of ``logits`` (last axis; one ``side`` of them, or both):
        itself for dense wiring, the matching candidate for top-K."""
        best = logits.detach().argmax(-1)
        if self.wiring == "dense":
            return best
        candidates = self.candidates if side is None else self.candidates[side]
        return candidates.gather(-1, best[..., None])[..., 0]

    def _side(self, x: Tensor, side: int) -> Tensor:
        if self.wiring == "random" or self.is_frozen:
            return F.embedding(self.chosen_wires()[side], x)
        logits = self.noisy(self.wire_logits[side])
        if self.wiring == "dense":
            soft = torch.softmax(logits, -1) @ x
        else:
            weights = torch.softmax(logits, -1)  # (size, K)
            soft = F.embedding_bag(self.candidates[side], x, mode="sum", per_sample_weights=weights)
        if not self.straight_through:
            return soft
        chosen = self._argmax_inputs(logits, side)
        return straight_through(soft, F.embedding(chosen, x))

    def forward(self, x: Tensor) -> Tensor:
        if self.is_frozen:
            return self.forward_discrete(x)
        logits = self.noisy(self.gate_logits)
        coef = mixture_coefficients(torch.softmax(logits, -1))
        if self.straight_through:
            coef = straight_through(coef, torch.as_tensor(COEFFICIENTS)[logits.detach().argmax(-1)])
        return relaxed_gate(self._side(x, 0), self._side(x, 1), coef)

    def discrete(self) -> DiscreteLayer:
        wires = self.chosen_wires().cpu().numpy().astype(np.int64)
        return DiscreteLayer(wires[0], wires[1], self.gate_logits.detach().argmax(-1).cpu().numpy())

    def entropies(self) -> dict[str, Tensor]:
        out = {"gate_entropy": entropy_bits(self.gate_logits.detach())}
        for side, name in enumerate(("wire_entropy_a", "wire_entropy_b")):
            out[name] = (torch.zeros(self.size) if self.wiring == "random"
                         else entropy_bits(self.wire_logits.detach()[side]))
        return out

    def mean_normalized_entropy(self) -> float:
        return float(self.entropies()["gate_entropy"].mean() / math.log2(N_GATES))


class SlotGates(LogicLayer):
    """CompactLogic's learned connections: parameter row ``r`` has ``candidates`` slots,
    each with its own input pair (``pairs (rows, K, 2)``, codes into the row's input
    space) and 16 gate logits; one softmax over all ``K x 16`` (slot, gate) choices mixes
    them, so learning the connection needs no parameters beyond the gates'. Discretised
    to the best (slot, gate). Dense: one row per neuron, codes are input indices.
    Convolution (``window > 0``): one row per output channel, shared by every position;
    a code ``(c, dy, dx)`` names input channel ``c`` at offset ``(dy, dx)`` of the
    ``window x window`` window (stride ``stride``, no padding)."""

    wiring = "slots"
    pairs: Tensor
    undecided: Tensor
    row_of: Tensor
    base: Tensor

    def __init__(self, inputs: int, size: int, gen: torch.Generator, *, candidates: int,
                 image: tuple[int, int, int, int] | None = None, channels: int = 0, window: int = 0,
                 stride: int = 1) -> None:
        """``image = (channels, height, width, interleave)`` of the input for a convolution:
        input ``(c, y, x)`` is at ``((c // L) * H * W + y * W + x) * L + c % L`` with
        ``L = interleave`` (the encoder's thermometer levels; 1 for a gate layer's output)."""
        self.image, self.window, self.stride = image, window, stride
        if image is not None:
            c_in, h, w, _ = image
            if window > min(h, w):
                raise ValueError(f"a {window}x{window} logic convolution does not fit a {h}x{w} input")
            self.out_hw = ((h - window) // stride + 1, (w - window) // stride + 1)
            size = channels * self.out_hw[0] * self.out_hw[1]
            rows, codes = channels, c_in * window * window
        else:
            rows, codes = size, inputs
        if not 1 <= candidates <= codes:
            raise ValueError(f"candidates = {candidates}: must lie in [1, {codes}] (the candidate inputs)")
        super().__init__(inputs, size)
        self.rows, self.codes, self.slots = rows, codes, candidates
        self.register_buffer("pairs", torch.randint(0, codes, (rows, candidates, 2), generator=gen))
        self.gate_logits = nn.Parameter(torch.randn(rows, candidates, N_GATES, generator=gen))
        self.register_buffer("undecided", torch.zeros(rows, dtype=torch.int64))
        if image is not None:
            self.register_buffer("row_of", torch.arange(rows).repeat_interleave(size // rows))
            self.register_buffer("base", self._position_base())
        else:
            self.register_buffer("row_of", torch.arange(rows))

    def _position_base(self) -> Tensor:
        """Per neuron (channel-major ``(channel, y, x)``), the input index of window offset
        (0, 0) in channel 0 (codes add their own offsets)."""
        oh, ow = self.out_hw
        ys = torch.arange(oh).repeat_interleave(ow) * self.stride
        xs = torch.arange(ow).repeat(oh) * self.stride
        return (ys * self.image[2] + xs).repeat(self.rows)  # type: ignore[index]

    def input_index(self, codes: Tensor) -> Tensor:
        """Absolute input indices of ``codes`` (shape ``(size, ...)``, per neuron)."""
        if self.image is None:
            return codes
        c_in, h, w, levels = self.image
        k = self.window
        c, rest = codes // (k * k), codes % (k * k)
        pos = self.base.view(-1, *([1] * (codes.dim() - 1))) + (rest // k) * w + rest % k
        return ((c // levels) * h * w + pos) * levels + c % levels

    def best(self) -> tuple[Tensor, Tensor]:
        """Per row, the best slot and its gate."""
        flat = self.gate_logits.detach().view(self.rows, -1).argmax(-1)
        return flat // N_GATES, flat % N_GATES

    def forward(self, x: Tensor) -> Tensor:
        if self.is_frozen:
            return self.forward_discrete(x)
        idx = self.input_index(self.pairs[self.row_of])  # (size, K, 2)
        a, b = F.embedding(idx[..., 0], x), F.embedding(idx[..., 1], x)  # (size, K, batch)
        logits = self.noisy(self.gate_logits).view(self.rows, -1)
        probs = torch.softmax(logits, -1).view(self.rows, self.slots, N_GATES)
        c = mixture_coefficients(probs)  # (rows, K, 4)
        if self.straight_through:
            flat = logits.detach().argmax(-1)
            slot, gate = flat // N_GATES, flat % N_GATES
            hard = torch.zeros_like(c)
            hard[torch.arange(self.rows), slot] = torch.as_tensor(COEFFICIENTS)[gate]
            c = straight_through(c, hard)
        c = c[self.row_of][..., None]  # (size, K, 4, 1)
        return (c[:, :, 0] + c[:, :, 1] * a + c[:, :, 2] * b + c[:, :, 3] * (a * b)).sum(1)

    def discrete(self) -> DiscreteLayer:
        slot, gate = self.best()
        pair = self.pairs[torch.arange(self.rows), slot]  # (rows, 2)
        idx = self.input_index(pair[self.row_of]).cpu().numpy().astype(np.int64)
        return DiscreteLayer(idx[:, 0], idx[:, 1], gate[self.row_of].cpu().numpy().astype(np.int64))

    def entropies(self) -> dict[str, Tensor]:
        logits = self.gate_logits.detach()
        slot_marginal = torch.logsumexp(logits, -1)
        return {"gate_entropy": entropy_bits(logits.view(self.rows, -1)),
                "slot_entropy": entropy_bits(slot_marginal)}

    def mean_normalized_entropy(self) -> float:
        return float(self.entropies()["gate_entropy"].mean() / math.log2(self.slots * N_GATES))

    def describe_wiring(self) -> str:
        if self.image is None:
            return f"{self.slots} learned slots"
        return f"{self.rows}-channel {self.window}x{self.window} logic convolution (stride {self.stride}), " \
               f"{self.slots} slots"

    def facts(self) -> dict[str, object]:
        out = super().facts()
        out["slots"] = self.slots
        if self.image is not None:
            out.update(channels=self.rows, window=self.window, stride=self.stride, out_hw=list(self.out_hw))
        return out
