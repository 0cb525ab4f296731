"""The BoolNet-style network and its Bi-Real-style baseline of the same size.

Layer spec (``--layers``): comma-separated channel counts; the first is the stem, each further
entry one block (``32,32,64``: stem of 32 channels, blocks of 32 and 64). The input ``x`` in
[0, 1] is sliced into ``k`` binary maps of ``2 x - 1`` (:func:`.binarize.multi_slice`); a 2x2
max pool (on binary maps: OR) follows the stem and every block but the last; a binary linear
classifier with per-class batch norm gives the scores. A block's channels must be a multiple
of its input's (its shortcut repeats the input's channels: channel concatenation).

BoolNet block (every map binary)::

    y1 = BN(conv1(x));  h1 = xnor(multi_slice(y1, k), x')      # k slices, XNOR shortcut
    y2 = BN(conv2(h1));  out = shuffle(or(sign(y2), x'))        # conv2 sees k groups; OR shortcut

Bi-Real block (real feature maps and shortcuts, sign only at the convolutions' inputs)::

    y1 = BN(conv1(sign(x))) + x';  out = BN(conv2(sign(y1))) + y1
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..network import parse_layers
from .binarize import BinaryConv2d, BinaryLinear, bool_or, channel_shuffle, multi_slice, sign_ste, xnor

KINDS = ("boolnet", "bireal")


class BoolBlock(nn.Module):
    """One BoolNet block, ``c_in -> c_out`` binary channels."""

    def __init__(self, c_in: int, c_out: int, slices: int, gen: torch.Generator) -> None:
        super().__init__()
        self.repeat, self.slices = c_out // c_in, slices
        self.conv1, self.bn1 = BinaryConv2d(c_in, c_out, 3, gen), nn.BatchNorm2d(c_out)
        self.conv2, self.bn2 = BinaryConv2d(slices * c_out, c_out, 3, gen), nn.BatchNorm2d(c_out)

    def forward(self, x: Tensor) -> Tensor:
        short = x.repeat(1, self.repeat, 1, 1)
        h1 = xnor(multi_slice(self.bn1(self.conv1(x)), self.slices), short.repeat(1, self.slices, 1, 1))
        out = bool_or(sign_ste(self.bn2(self.conv2(h1))), short)
        return channel_shuffle(out, self.repeat)


class BiRealBlock(nn.Module):
    """One Bi-Real-style block, ``c_in -> c_out`` real channels, 32-bit shortcuts."""

    def __init__(self, c_in: int, c_out: int, gen: torch.Generator) -> None:
        super().__init__()
        self.repeat = c_out // c_in
        self.conv1, self.bn1 = BinaryConv2d(c_in, c_out, 3, gen), nn.BatchNorm2d(c_out)
        self.conv2, self.bn2 = BinaryConv2d(c_out, c_out, 3, gen), nn.BatchNorm2d(c_out)

    def forward(self, x: Tensor) -> Tensor:
        y1 = self.bn1(self.conv1(sign_ste(x))) + x.repeat(1, self.repeat, 1, 1)
        return self.bn2(self.conv2(sign_ste(y1))) + y1


class BinaryNet(nn.Module):
    """A BoolNet (``kind='boolnet'``) or Bi-Real (``'bireal'``) network for ``(c, h, w)`` images."""

    def __init__(self, kind: str, layers: str, input_shape: tuple[int, ...], classes: int, slices: int,
                 gen: torch.Generator) -> None:
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"network kind {kind!r}: choose one of {KINDS}")
        specs = parse_layers(layers)
        if not specs or any(s.kind != "dense" for s in specs):
            raise ValueError(f"layers: {kind} takes channel counts (stem, then one per block), e.g. "
                             f"32,32,64; got {layers!r}")
        if len(input_shape) != 3:
            raise ValueError(f"{kind} needs image input (channels, height, width), got {input_shape}")
        channels = [s.size for s in specs]
        for c_in, c_out in zip(channels, channels[1:], strict=False):
            if c_out % c_in:
                raise ValueError(f"layers: a block's {c_out} channels must be a multiple of its input's "
                                 f"{c_in}")
        c, h, w = input_shape
        if min(h, w) >> len(channels) - 1 < 1:
            raise ValueError(f"layers: {len(channels) - 1} 2x2 pools do not fit a {h}x{w} image")
        self.kind, self.slices, self.channels = kind, slices, channels
        self.stem, self.stem_bn = BinaryConv2d(slices * c, channels[0], 3, gen), nn.BatchNorm2d(channels[0])
        self.blocks = nn.ModuleList(
            BoolBlock(a, b, slices, gen) if kind == "boolnet" else BiRealBlock(a, b, gen)
            for a, b in zip(channels, channels[1:], strict=False))
        side_h, side_w = h >> len(self.blocks), w >> len(self.blocks)
        self.features = channels[-1] * side_h * side_w
        self.classifier, self.out_bn = BinaryLinear(self.features, classes, gen), nn.BatchNorm1d(classes)

    def binary_layers(self) -> list[BinaryConv2d | BinaryLinear]:
        """Every layer with binary weights, input to output (what goes onto crossbars)."""
        out: list[BinaryConv2d | BinaryLinear] = [self.stem]
        for block in self.blocks:
            assert isinstance(block, BoolBlock | BiRealBlock)
            out += [block.conv1, block.conv2]
        return [*out, self.classifier]

    def forward(self, x: Tensor) -> Tensor:
        """Class scores ``(n, classes)`` of images ``(n, c, h, w)`` in [0, 1]."""
        h = self.stem_bn(self.stem(multi_slice(2 * x - 1, self.slices)))
        if self.kind == "boolnet":
            h = sign_ste(h)
        last = len(self.blocks) - 1
        h = self._pool(h) if last >= 0 else h
        for i, block in enumerate(self.blocks):
            h = block(h)
            if i < last:
                h = self._pool(h)
        return self.out_bn(self.classifier(sign_ste(h)))

    def _pool(self, h: Tensor) -> Tensor:
        """2x2 pooling: AND (min) of binary maps for BoolNet, max of real maps for Bi-Real. (An OR
        pool before the OR shortcuts leaves almost every bit T: on digits BoolNet then stays at
        chance, 14 %, against 68 % with AND pooling, 3 epochs.)"""
        return -F.max_pool2d(-h, 2) if self.kind == "boolnet" else F.max_pool2d(h, 2)

    def clip_latent(self) -> None:
        """Keep the latent weights in [-1, 1] (beyond it the straight-through gradient is 0)."""
        with torch.no_grad():
            for layer in self.binary_layers():
                layer.latent.clamp_(-1.0, 1.0)
