"""A Boolean layer on a crossbar: XNOR-popcount forward read, threshold activation, and the
Boolean-variation signals of its backward pass.

Boolean values are embedded as T = +1, F = -1, the xnor convention: ``xnor(x, w) = x w``, so a
neuron's centred popcount ``s_j = sum_i xnor(x_i, w_ij) - n/2`` is ``(x W)_j / 2``; the layer
works with ``x W`` (twice it). The variation of ``s`` with respect to an input is its weight,
with respect to a weight its input: the signal sent below is ``Z W^T`` (a transposed read of
the same crossbar) and the weights' signal is ``q = X^T Z`` summed over the batch. The
pre-activation is batch-normalised (real-valued, trained by Adam) before the threshold
``x' = [y >= 0]``; at inference the normalisation folds into one comparator threshold per
neuron (:meth:`BooleanLayer.thresholds`).
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import Tensor, nn

from ..boolnet.binarize import folded_threshold
from ..stores import WeightStore

Surrogate = Literal["triangle", "tanh", "box"]
SURROGATES: tuple[str, ...] = ("triangle", "tanh", "box")


def surrogate_derivative(y: Tensor, kind: str, width: float) -> Tensor:
    """The bounded stand-in for the threshold's derivative at ``y``: ``triangle``
    ``max(0, 1 - |y| / c)``, ``tanh`` ``1 - tanh(y / c)^2``, ``box`` ``[|y| <= c]`` (``c`` = width)."""
    if kind == "triangle":
        return (1.0 - y.abs() / width).clamp_(min=0.0)
    if kind == "tanh":
        return 1.0 - torch.tanh(y / width).square()
    if kind == "box":
        return (y.abs() <= width).to(y.dtype)
    raise ValueError(f"surrogate {kind!r}: choose one of {SURROGATES}")


def boolean_sign(y: Tensor) -> Tensor:
    """The threshold activation in the +-1 embedding: T (+1) where ``y >= 0``, else F (-1)."""
    return torch.where(y >= 0, 1.0, -1.0).to(y.dtype)


class _Threshold(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, y: Tensor, kind: str, width: float) -> Tensor:
        ctx.save_for_backward(y)
        ctx.kind, ctx.width = kind, width
        return boolean_sign(y)

    @staticmethod
    def backward(ctx: Any, z: Tensor) -> tuple[Tensor, None, None]:
        (y,) = ctx.saved_tensors
        return z * surrogate_derivative(y, ctx.kind, ctx.width), None, None


class _CrossbarProduct(torch.autograd.Function):
    """``x W`` read from the layer's crossbar; backward: ``Z W^T`` by a transposed read (only
    when the input needs it), and ``q = X^T Z`` left on the layer."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, anchor: Tensor, layer: BooleanLayer) -> Tensor:
        ctx.save_for_backward(x)
        ctx.layer = layer
        return layer.store.forward(x)

    @staticmethod
    def backward(ctx: Any, z: Tensor) -> tuple[Tensor | None, Tensor, None]:
        (x,) = ctx.saved_tensors
        layer: BooleanLayer = ctx.layer
        layer.variation = x.T @ z
        below = layer.store.backward(z) if ctx.needs_input_grad[0] else None
        return below, torch.zeros((), dtype=z.dtype), None


class BooleanLayer(nn.Module):
    """``n_in -> n_out`` Boolean neurons; the weights are the store's (``(n_in, n_out)``, no bias
    row: the normalisation's offset is the bias). ``output``: no threshold (real scores)."""

    kind = "boolean"
    update_scale = 1.0

    def __init__(self, store: WeightStore, *, output: bool, surrogate: str, width: float) -> None:
        super().__init__()
        self.store, self.output = store, output
        self.n_in, self.n_out = store.rows, store.cols
        self.norm = nn.BatchNorm1d(self.n_out)
        self.surrogate, self.width = surrogate, width
        self.anchor = torch.zeros((), requires_grad=True)
        self.variation: Tensor | None = None
        """``q = X^T Z`` of the last backward pass, ``(n_in, n_out)``."""

    def forward(self, x: Tensor) -> Tensor:
        y = self.norm(_CrossbarProduct.apply(x, self.anchor, self))
        return y if self.output else _Threshold.apply(y, self.surrogate, self.width)

    @torch.no_grad()
    def thresholds(self) -> tuple[Tensor, Tensor]:
        """The normalisation folded into comparators (eval statistics): ``(theta, polarity)``
        with ``x' = T`` iff ``polarity (x W - theta) >= 0`` (the product is unscaled)."""
        return folded_threshold(self.norm, torch.ones(self.n_out))

    @torch.no_grad()
    def infer(self, x: Tensor) -> Tensor:
        """The deployed layer: one crossbar read, then comparators (hidden) or the folded affine
        scores (output)."""
        s = self.store.forward(x)
        if self.output:
            return self.norm(s)
        theta, polarity = self.thresholds()
        return boolean_sign(polarity * (s - theta))

    def describe(self) -> str:
        return f"boolean {self.n_in}->{self.n_out}{' (output)' if self.output else ''}"

    @property
    def positions(self) -> int:
        return 1

    def facts(self) -> dict[str, Any]:
        return {"kind": self.kind, "describe": self.describe(), "rows": self.store.rows,
                "cols": self.store.cols, "positions": 1, "inputs": self.n_in, "outputs": self.n_out}
