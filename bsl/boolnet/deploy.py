"""A trained binary network's weights on binary crossbars, evaluated through the device layer.

Each binary layer gets its own simulated array (``rows x cols`` = its crossbar matrix: a
convolution's unrolled kernel on the rows, one read per output position), programmed by
program-and-verify (:func:`bsl.binary_read.program_boolean`); the layer's product then comes
from the array's read currents (device spread, read noise, stuck cells and all). The scales,
normalisations (comparator thresholds), pooling and Boolean shortcuts stay digital.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from devices import Backend, open_crossbars

from ..binary_read import program_boolean
from ..stores import CrossbarStore
from .model import BinaryNet

EVAL_CHUNK = 250
"""Test images per batch of device reads."""


def deploy(net: BinaryNet, preset: str, seed: int) -> list[dict[str, Any]]:
    """Program every binary layer of ``net`` onto its own array of ``preset`` (array ``k`` seeded
    ``seed + k``) and route the layer's reads through it; returns per layer its shape and the
    cells programming left on the wrong side (a stuck device)."""
    layers = net.binary_layers()
    shapes = [tuple(layer.crossbar_matrix().shape) for layer in layers]
    backend = Backend("simulator", preset, "push_pull", seeds=tuple(seed + k for k in range(len(layers))))
    xbars = open_crossbars(backend, shapes)  # type: ignore[arg-type]
    report = []
    for layer, xbar in zip(layers, xbars, strict=True):
        store = CrossbarStore(xbar)
        failed = program_boolean(store, layer.crossbar_matrix())
        layer.crossbar_read = store.forward
        report.append({"rows": xbar.rows, "cols": xbar.cols, "misprogrammed": failed,
                       "devices": 2 * xbar.rows * xbar.cols})
    return report


def undeploy(net: BinaryNet) -> None:
    """Back to the software products."""
    for layer in net.binary_layers():
        layer.crossbar_read = None


@torch.no_grad()
def accuracy(net: BinaryNet, x: Tensor, y: Tensor) -> float:
    """Test accuracy in eval mode, in chunks of :data:`EVAL_CHUNK` images."""
    net.eval()
    correct = 0
    for start in range(0, len(y), EVAL_CHUNK):
        correct += int((net(x[start:start + EVAL_CHUNK]).argmax(1) == y[start:start + EVAL_CHUNK]).sum())
    return correct / max(len(y), 1)
