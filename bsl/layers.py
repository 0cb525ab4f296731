"""Layers mapped onto crossbars: dense and convolution (kernel unrolled onto rows).

A layer turns its input into the matrix ``X`` that is applied to its crossbar
(``(n, rows)``: one row per read, with a constant 1 appended as the bias input),
and its error ``delta`` into the matching ``D`` (``(n, cols)``). The weight update
of every rule is built from ``X`` and ``D``; the pre-activation is
``a = gain * (X @ W)`` with ``gain = gain_scale / sqrt(rows)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from .stores import WeightStore


@dataclass
class Forward:
    """What one layer's forward pass leaves for the backward pass."""

    a: Tensor
    """Pre-activation, shaped like the layer's output."""
    x: Tensor
    """Crossbar input matrix ``(n, rows)`` (with the bias column)."""
    input_shape: tuple[int, ...]
    """Shape of the layer's input (to shape its backward error)."""


def _with_bias(x: Tensor) -> Tensor:
    return torch.cat((x, x.new_ones(x.shape[0], 1)), dim=1)


class Dense:
    """Fully connected layer: ``rows = n_in + 1`` (bias), ``cols = n_out``."""

    kind = "dense"
    update_scale = 1.0
    """Factor on the pulse probability of device rules (see :class:`Conv2d`)."""

    def __init__(self, n_in: int, n_out: int, store: WeightStore, gain_scale: float) -> None:
        if (store.rows, store.cols) != (n_in + 1, n_out):
            raise ValueError(f"dense {n_in}->{n_out} needs a {n_in + 1}x{n_out} array, got "
                             f"{store.rows}x{store.cols}")
        self.n_in, self.n_out, self.store = n_in, n_out, store
        self.gain = gain_scale / math.sqrt(store.rows)

    @property
    def output_shape(self) -> tuple[int, ...]:
        return (self.n_out,)

    def forward(self, h: Tensor) -> Forward:
        x = _with_bias(h.reshape(h.shape[0], -1))
        return Forward(self.gain * self.store.forward(x), x, tuple(h.shape))

    def delta_matrix(self, delta: Tensor) -> Tensor:
        return delta

    def backward(self, delta: Tensor, fwd: Forward) -> Tensor:
        """Error at this layer's input: ``gain * (D @ W.T)`` without the bias row."""
        e = self.gain * self.store.backward(delta)[:, :-1]
        return e.reshape(fwd.input_shape)

    def describe(self) -> str:
        return f"dense {self.n_in}->{self.n_out}"

    @property
    def positions(self) -> int:
        """Reads of the crossbar per sample and pass."""
        return 1

    def facts(self) -> dict[str, Any]:
        """What the run records about the layer (JSON-serializable): kind, crossbar
        ``rows`` x ``cols`` (bias row included), reads per sample (``positions``)."""
        return {"kind": self.kind, "describe": self.describe(), "rows": self.store.rows,
                "cols": self.store.cols, "positions": self.positions, "inputs": self.n_in,
                "outputs": self.n_out}


class Conv2d:
    """Convolution on a crossbar: ``rows = in_channels * k * k + 1``, ``cols = out_channels``.

    Every output position is one read of the crossbar with the unrolled patch as input;
    the weight update sums the per-position ternary products (weight sharing)."""

    kind = "conv"

    def __init__(
        self, in_shape: tuple[int, int, int], out_channels: int, kernel: int, stride: int,
        store: WeightStore, gain_scale: float,
    ) -> None:
        c, h, w = in_shape
        if kernel > h or kernel > w:
            raise ValueError(f"conv kernel {kernel} is larger than its {h}x{w} input")
        rows = c * kernel * kernel + 1
        if (store.rows, store.cols) != (rows, out_channels):
            raise ValueError(f"conv needs a {rows}x{out_channels} array, got {store.rows}x{store.cols}")
        self.in_shape, self.kernel, self.stride, self.store = in_shape, kernel, stride, store
        self.out_channels = out_channels
        self.out_hw = ((h - kernel) // stride + 1, (w - kernel) // stride + 1)
        # A sample adds one ternary product per output position into each kernel weight.
        # Their sum grows like sqrt(positions) when the signs are uncorrelated and like
        # positions when they agree; device rules scale the pulse probability by
        # 1/sqrt(positions), between the two (on digits it beat both 1 and 1/positions).
        self.update_scale = 1.0 / math.sqrt(self.out_hw[0] * self.out_hw[1])
        self.gain = gain_scale / math.sqrt(rows)

    @property
    def output_shape(self) -> tuple[int, ...]:
        return (self.out_channels, *self.out_hw)

    def forward(self, h: Tensor) -> Forward:
        n = h.shape[0]
        patches = F.unfold(h.reshape(n, *self.in_shape), self.kernel, stride=self.stride)
        x = _with_bias(patches.transpose(1, 2).reshape(-1, patches.shape[1]))
        z = self.store.forward(x).reshape(n, -1, self.out_channels).transpose(1, 2)
        return Forward(self.gain * z.reshape(n, self.out_channels, *self.out_hw), x, tuple(h.shape))

    def delta_matrix(self, delta: Tensor) -> Tensor:
        return delta.reshape(delta.shape[0], self.out_channels, -1).transpose(1, 2).reshape(
            -1, self.out_channels
        )

    def backward(self, delta: Tensor, fwd: Forward) -> Tensor:
        n = delta.shape[0]
        e = self.gain * self.store.backward(self.delta_matrix(delta))[:, :-1]
        cols = e.reshape(n, -1, e.shape[1]).transpose(1, 2)
        folded = F.fold(cols, self.in_shape[1:], self.kernel, stride=self.stride)
        return folded.reshape(fwd.input_shape)

    def describe(self) -> str:
        c, h, w = self.in_shape
        oh, ow = self.out_hw
        return f"conv {c}x{h}x{w} k{self.kernel} s{self.stride} -> {self.out_channels}x{oh}x{ow}"

    @property
    def positions(self) -> int:
        """Reads of the crossbar per sample and pass: one per output position."""
        return self.out_hw[0] * self.out_hw[1]

    def facts(self) -> dict[str, Any]:
        """As :meth:`Dense.facts`, plus the geometry: ``input_shape`` (channels, height,
        width), ``kernel``, ``stride``, ``output_shape``."""
        return {"kind": self.kind, "describe": self.describe(), "rows": self.store.rows,
                "cols": self.store.cols, "positions": self.positions, "input_shape": list(self.in_shape),
                "kernel": self.kernel, "stride": self.stride, "output_shape": list(self.output_shape)}


Layer = Dense | Conv2d
