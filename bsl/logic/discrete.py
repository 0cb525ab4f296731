"""A discretised logic-gate network: what a trained relaxed network becomes at inference.

Plain arrays, no torch: the input encoder (thresholds), then layers of two-input gates
(each gate reads two outputs of the layer below by index), then the class scores as
popcounts of consecutive equal groups of the last layer's outputs. This is the format
the bit-packed evaluator (:mod:`bsl.logic.packed`), the C/Verilog export
(:mod:`bsl.logic.export`) and the crossbar interconnect (:mod:`bsl.logic.routing`) take.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .gates import N_GATES, hard_gate

ENCODINGS = ("fixed", "quantile")
FORMAT = "memristor-bsl logic net v1"
NET_FILE = "logic_net.npz"
"""The discretised network a logic run writes into its run folder when it finishes."""


@dataclass(frozen=True)
class Encoder:
    """Input binarization: feature ``f`` at level ``t`` gives bit ``f * levels + t``, true
    where the feature exceeds threshold ``t``: the fixed ``thresholds`` (``fixed``; a
    thermometer code when there are several) or, per sample, that sample's
    ``thresholds``-quantiles over its features (``quantile``)."""

    kind: str
    thresholds: tuple[float, ...]
    features: int

    def __post_init__(self) -> None:
        if self.kind not in ENCODINGS:
            raise ValueError(f"encoding {self.kind!r}: choose one of {ENCODINGS}")
        if not self.thresholds or list(self.thresholds) != sorted(set(self.thresholds)):
            raise ValueError(f"thresholds {self.thresholds!r}: give one or more increasing values")
        if self.kind == "quantile" and not all(0 < t < 1 for t in self.thresholds):
            raise ValueError(f"quantile thresholds {self.thresholds!r}: each must lie in (0, 1)")
        if self.features < 1:
            raise ValueError(f"features = {self.features!r}: must be >= 1")

    @property
    def bits(self) -> int:
        """Input bits of the gate network."""
        return self.features * len(self.thresholds)

    def levels(self, x: np.ndarray) -> np.ndarray:
        """``(n, levels)`` thresholds applied to each sample."""
        t = np.asarray(self.thresholds, dtype=np.float64)
        if self.kind == "fixed":
            return np.broadcast_to(t, (x.shape[0], t.size))
        return np.quantile(x.astype(np.float64), t, axis=1).T

    def encode(self, x: np.ndarray) -> np.ndarray:
        """Boolean ``(n, bits)`` from features ``(n, ...)`` (flattened)."""
        flat = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
        if flat.shape[1] != self.features:
            raise ValueError(f"input has {flat.shape[1]} features; the encoder takes {self.features}")
        return (flat[:, :, None] > self.levels(flat)[:, None, :]).reshape(len(flat), -1)


@dataclass(frozen=True)
class DiscreteLayer:
    """``n`` gates: gate ``j`` computes ``gate[j]`` (0..15, :data:`bsl.logic.gates.GATE_NAMES`
    order) of outputs ``a[j]`` and ``b[j]`` of the layer below (the input bits for layer 0)."""

    a: np.ndarray
    b: np.ndarray
    gate: np.ndarray

    @property
    def size(self) -> int:
        return int(self.gate.shape[0])


@dataclass(frozen=True)
class DiscreteNet:
    """Encoder, gate layers, and ``classes`` groups of the last layer's outputs."""

    encoder: Encoder
    layers: tuple[DiscreteLayer, ...]
    classes: int

    def __post_init__(self) -> None:
        width = self.encoder.bits
        for k, layer in enumerate(self.layers):
            for name in ("a", "b", "gate"):
                if getattr(layer, name).shape != (layer.size,):
                    raise ValueError(f"layer {k}: {name} must have shape ({layer.size},)")
            low, high = min(layer.a.min(), layer.b.min()), max(layer.a.max(), layer.b.max())
            if layer.size < 1 or low < 0 or high >= width:
                raise ValueError(f"layer {k}: input indices must lie in [0, {width})")
            if layer.gate.min() < 0 or layer.gate.max() >= N_GATES:
                raise ValueError(f"layer {k}: gates must lie in [0, {N_GATES})")
            width = layer.size
        if not self.layers or self.layers[-1].size % self.classes:
            raise ValueError(f"the last layer's {self.layers[-1].size if self.layers else 0} gates do not "
                             f"split into {self.classes} equal class groups")

    @property
    def gates(self) -> int:
        return sum(layer.size for layer in self.layers)

    def evaluate_bits(self, bits: np.ndarray) -> np.ndarray:
        """Reference evaluation (one bool per sample and gate): last layer's ``(n, size)`` outputs."""
        h = np.asarray(bits, dtype=bool)
        for layer in self.layers:
            h = hard_gate(layer.gate, h[:, layer.a], h[:, layer.b])
        return h

    def scores(self, outputs: np.ndarray) -> np.ndarray:
        """Class scores ``(n, classes)``: true outputs per group."""
        return outputs.reshape(len(outputs), self.classes, -1).sum(2, dtype=np.int64)

    def save(self, path: str | Path) -> None:
        """Write the network to an ``.npz`` file (arrays only; :meth:`load` reads it)."""
        arrays: dict[str, np.ndarray] = {
            "format": np.array(FORMAT), "encoding": np.array(self.encoder.kind),
            "thresholds": np.asarray(self.encoder.thresholds, dtype=np.float64),
            "features": np.array(self.encoder.features), "classes": np.array(self.classes),
        }
        for k, layer in enumerate(self.layers):
            arrays[f"a{k}"], arrays[f"b{k}"] = layer.a.astype(np.int64), layer.b.astype(np.int64)
            arrays[f"gate{k}"] = layer.gate.astype(np.int8)
        with open(path, "wb") as f:
            np.savez_compressed(f, allow_pickle=False, **arrays)

    @classmethod
    def load(cls, path: str | Path) -> DiscreteNet:
        """Read what :meth:`save` wrote."""
        with np.load(path, allow_pickle=False) as z:
            if "format" not in z or str(z["format"]) != FORMAT:
                raise ValueError(f"{path} is not a {FORMAT} file")
            thresholds = tuple(float(t) for t in z["thresholds"])
            encoder = Encoder(str(z["encoding"]), thresholds, int(z["features"]))
            n = sum(1 for key in z.files if key.startswith("gate"))
            layers = tuple(DiscreteLayer(z[f"a{k}"], z[f"b{k}"], z[f"gate{k}"].astype(np.int64))
                           for k in range(n))
            return cls(encoder, layers, int(z["classes"]))

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Predicted class per sample (the first of tied scores), by the reference evaluation."""
        return self.scores(self.evaluate_bits(self.encoder.encode(x))).argmax(1)
