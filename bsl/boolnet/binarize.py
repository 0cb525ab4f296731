"""Binary building blocks (Boolean values embedded as T = +1, F = -1).

* :func:`sign_ste`: ``sign`` forward (0 -> +1), clipped identity backward (gradient passes
  where ``|x| <= 1``): the straight-through estimator.
* :func:`multi_slice`: ``k`` binary slices ``sign(x - o_s)`` of a real tensor at offsets
  ``o_s`` (:func:`slice_offsets`: for ``k = 4``, ``-2/3, -1/3, 1/3, 2/3``), stacked on the
  channel axis: the feature map stays binary, and the next convolution sees ``k`` groups.
* :func:`xnor` and :func:`bool_or`: the Boolean shortcuts (``x y`` and ``max(x, y)`` in +-1).
* :class:`BinaryConv2d` / :class:`BinaryLinear`: latent float weights, ``alpha sign(w)``
  forward with a per-output-channel scale ``alpha = mean |w|``; inputs padded with F.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class _SignSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:
        ctx.save_for_backward(x)
        return torch.where(x >= 0, 1.0, -1.0).to(x.dtype)

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> Tensor:
        (x,) = ctx.saved_tensors
        return g * (x.abs() <= 1).to(g.dtype)


def sign_ste(x: Tensor) -> Tensor:
    """+1 where ``x >= 0``, else -1; gradient ``g [|x| <= 1]`` (straight-through, clipped)."""
    out: Tensor = _SignSTE.apply(x)
    return out


def slice_offsets(k: int) -> list[float]:
    """The ``k`` offsets of multi-slice binarization, symmetric in (-1, 1): ``+-i / (m + 1)`` for
    ``i = 1..m`` with ``m = k // 2``, and 0 when ``k`` is odd (k = 4: -2/3, -1/3, 1/3, 2/3)."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"slices = {k!r}: must be an integer >= 1")
    m = k // 2
    positive = [i / (m + 1) for i in range(1, m + 1)]
    return [-o for o in reversed(positive)] + ([0.0] if k % 2 else []) + positive


def multi_slice(x: Tensor, k: int) -> Tensor:
    """``(n, c, ...)`` real -> ``(n, k c, ...)`` binary: slice ``s`` (channels ``s c .. (s+1) c - 1``)
    is ``sign_ste(x - o_s)``."""
    return torch.cat([sign_ste(x - o) for o in slice_offsets(k)], dim=1)


def xnor(x: Tensor, y: Tensor) -> Tensor:
    """XNOR in the +-1 embedding: ``x y`` (T where the two agree)."""
    return x * y


def bool_or(x: Tensor, y: Tensor) -> Tensor:
    """OR in the +-1 embedding: ``max(x, y)`` (gradient to the larger)."""
    return torch.maximum(x, y)


def channel_shuffle(x: Tensor, groups: int) -> Tensor:
    """Interleave ``groups`` channel groups (ShuffleNet's shuffle); identity for one group."""
    n, c = x.shape[:2]
    if groups <= 1 or c % groups:
        return x
    return x.reshape(n, groups, c // groups, *x.shape[2:]).transpose(1, 2).reshape(x.shape)


class BinaryConv2d(nn.Module):
    """``kernel x kernel`` convolution with binary weights, stride 1, padding ``kernel // 2`` with F."""

    def __init__(self, c_in: int, c_out: int, kernel: int, gen: torch.Generator) -> None:
        super().__init__()
        self.c_in, self.c_out, self.kernel = c_in, c_out, kernel
        self.latent = nn.Parameter(0.1 * torch.randn((c_out, c_in, kernel, kernel), generator=gen))
        self.crossbar_read: Any = None
        """When set (:mod:`.deploy`): ``patches (N, rows) -> (N, c_out)`` replaces the convolution."""

    def binary_weights(self) -> Tensor:
        """``sign(w)`` as used forward, ``(c_out, c_in, k, k)``."""
        return sign_ste(self.latent)

    def scale(self) -> Tensor:
        """Per-output-channel ``alpha = mean |w|`` (folded into the next comparator's threshold)."""
        return self.latent.detach().abs().mean(dim=(1, 2, 3))

    def forward(self, x: Tensor) -> Tensor:
        pad = self.kernel // 2
        x = F.pad(x, (pad, pad, pad, pad), value=-1.0)
        if self.crossbar_read is not None:
            n, _, h, w = x.shape
            patches = F.unfold(x, self.kernel).transpose(1, 2).reshape(-1, self.c_in * self.kernel ** 2)
            s = self.crossbar_read(patches).reshape(n, h - 2 * pad, w - 2 * pad, self.c_out)
            s = s.permute(0, 3, 1, 2)
        else:
            s = F.conv2d(x, self.binary_weights())
        return s * self.scale()[None, :, None, None]

    def crossbar_matrix(self) -> Tensor:
        """The binary weights as a crossbar matrix ``(c_in k k, c_out)`` (rows in ``unfold`` order)."""
        return self.binary_weights().detach().reshape(self.c_out, -1).T.contiguous()


class BinaryLinear(nn.Module):
    """Fully connected layer with binary weights (``n_in -> n_out``) and a per-output scale."""

    def __init__(self, n_in: int, n_out: int, gen: torch.Generator) -> None:
        super().__init__()
        self.n_in, self.n_out = n_in, n_out
        self.latent = nn.Parameter(0.1 * torch.randn((n_out, n_in), generator=gen))
        self.crossbar_read: Any = None

    def scale(self) -> Tensor:
        return self.latent.detach().abs().mean(dim=1)

    def forward(self, x: Tensor) -> Tensor:
        x = x.reshape(x.shape[0], -1)
        s = self.crossbar_read(x) if self.crossbar_read is not None else x @ sign_ste(self.latent).T
        return s * self.scale()

    def crossbar_matrix(self) -> Tensor:
        return torch.where(self.latent.detach() >= 0, 1.0, -1.0).T.contiguous()


def folded_threshold(norm: nn.BatchNorm1d | nn.BatchNorm2d, scale: Tensor) -> tuple[Tensor, Tensor]:
    """Batch norm (eval statistics) after a binary product scaled by ``scale`` (> 0), folded into
    a comparator on the integer product ``s``: ``BN(scale s) >= 0`` iff ``polarity (s - theta) >= 0``,
    with ``theta = (mu - beta sigma / gamma) / scale`` and ``polarity = sign(gamma)``. Returns
    ``(theta, polarity)`` per channel (``gamma = 0``: the offset's sign alone decides)."""
    assert norm.running_mean is not None and norm.running_var is not None
    sigma = (norm.running_var + norm.eps).sqrt()
    gamma, beta = norm.weight.detach(), norm.bias.detach()
    theta = (norm.running_mean - beta * sigma / torch.where(gamma == 0, 1.0, gamma)) / scale
    theta = torch.where(gamma == 0, torch.where(beta >= 0, -torch.inf, torch.inf), theta)
    return theta, torch.where(gamma >= 0, 1.0, -1.0)
