"""Bit-packed evaluation of a :class:`~bsl.logic.discrete.DiscreteNet`: 64 samples per word.

Each signal (input bit or gate output) is a row of ``uint64`` words; sample ``s`` is bit
``s % 64`` of word ``s // 64``. A layer is evaluated with one vectorised numpy operation per
gate type present (all its AND gates at once, then all its XOR gates, ...), so the cost is
a few passes over ``gates * ceil(n / 64)`` words instead of ``gates * n`` table look-ups.
Class scores are counted bit-sliced (a carry-save adder tree over each class group), and
:func:`circuit_stats` sizes the circuit (operations, inverters, depth, live gates).
"""

from __future__ import annotations

import time
from typing import NamedTuple

import numpy as np

from .discrete import DiscreteLayer, DiscreteNet, Encoder
from .gates import CONSTANT_OR_WIRE, GATE_NAMES, N_GATES, TRIVIAL, TRUTH_TABLE

ONES = np.uint64(0xFFFFFFFFFFFFFFFF)


class GateOp(NamedTuple):
    """A gate as ``post(pre_a(A) op pre_b(B))``: ``op`` is ``&``, ``|``, ``^``, ``a`` (A alone),
    ``b`` (B alone) or ``0``/``1`` (a constant); ``not_a``/``not_b``/``not_out`` invert."""

    op: str
    not_a: bool = False
    not_b: bool = False
    not_out: bool = False


GATE_OPS: tuple[GateOp, ...] = (
    GateOp("0"), GateOp("&"), GateOp("&", not_b=True), GateOp("a"),
    GateOp("&", not_a=True), GateOp("b"), GateOp("^"), GateOp("|"),
    GateOp("|", not_out=True), GateOp("^", not_out=True), GateOp("b", not_out=True),
    GateOp("|", not_b=True), GateOp("a", not_out=True), GateOp("|", not_a=True),
    GateOp("&", not_out=True), GateOp("1"),
)
"""The 16 gates (:data:`~bsl.logic.gates.GATE_NAMES` order) as word operations; the C and
Verilog export print the same forms."""

DEPENDS_A = (TRUTH_TABLE[:, [0, 1]] != TRUTH_TABLE[:, [2, 3]]).any(1)
"""``(16,)``: whether gate ``g``'s output depends on its input ``a``."""
DEPENDS_B = (TRUTH_TABLE[:, [0, 2]] != TRUTH_TABLE[:, [1, 3]]).any(1)
"""``(16,)``: whether gate ``g``'s output depends on its input ``b``."""
INVERTERS = frozenset({10, 12})
"""NOT B and NOT A: one inverter each (``TRIVIAL - CONSTANT_OR_WIRE``)."""

_NP_OPS = {"&": np.bitwise_and, "|": np.bitwise_or, "^": np.bitwise_xor}


def words_for(n: int) -> int:
    """Words holding ``n`` samples."""
    return (n + 63) // 64


def pack_bits(bits: np.ndarray) -> np.ndarray:
    """Boolean ``(n, m)`` to ``uint64`` ``(m, ceil(n / 64))``: sample ``s`` at bit ``s % 64`` of
    word ``s // 64`` (padding bits zero)."""
    bits = np.asarray(bits, dtype=bool)
    if bits.ndim != 2:
        raise ValueError(f"bits must be 2-D (samples, signals); got shape {bits.shape}")
    n, m = bits.shape
    padded = np.zeros((64 * words_for(n), m), dtype=np.uint8)
    padded[:n] = bits
    rows = padded.reshape(-1, 8, m)
    packed = rows[:, 0, :].copy()
    for j in range(1, 8):  # byte k of a column: samples 8k..8k+7, least significant bit first
        packed |= rows[:, j, :] << np.uint8(j)
    return np.ascontiguousarray(packed.T).view("<u8").astype(np.uint64, copy=False)


def unpack_bits(words: np.ndarray, n: int) -> np.ndarray:
    """Inverse of :func:`pack_bits`: ``uint64`` ``(m, words)`` to Boolean ``(n, m)``."""
    words = np.ascontiguousarray(words, dtype="<u8")
    if words.ndim != 2 or n > 64 * words.shape[1]:
        raise ValueError(f"words of shape {words.shape} cannot hold {n} samples")
    raw = np.unpackbits(words.view(np.uint8), axis=1, count=n, bitorder="little")
    return raw.T.astype(bool)


def _apply_layer(layer: DiscreteLayer, h: np.ndarray) -> np.ndarray:
    """One layer on packed signals ``h`` ``(width, words)``: outputs ``(size, words)``."""
    out = np.empty((layer.size, h.shape[1]), dtype=np.uint64)
    order = np.argsort(layer.gate, kind="stable")
    counts = np.bincount(layer.gate, minlength=N_GATES)
    start = 0
    for g in np.flatnonzero(counts):
        idx = order[start:start + counts[g]]
        start += counts[g]
        op = GATE_OPS[g]
        if op.op in "01":
            out[idx] = ONES if op.op == "1" else 0
            continue
        seg = np.take(h, layer.b[idx] if op.op == "b" else layer.a[idx], axis=0)
        if op.not_a:
            np.invert(seg, out=seg)
        if op.op in _NP_OPS:
            other = np.take(h, layer.b[idx], axis=0)
            if op.not_b:
                np.invert(other, out=other)
            _NP_OPS[op.op](seg, other, out=seg)
        if op.not_out:
            np.invert(seg, out=seg)
        out[idx] = seg
    return out


def evaluate_words(net: DiscreteNet, words: np.ndarray) -> np.ndarray:
    """Packed inputs ``(bits, words)`` to the packed last-layer outputs ``(last, words)``."""
    h = np.asarray(words, dtype=np.uint64)
    if h.ndim != 2 or h.shape[0] != net.encoder.bits:
        raise ValueError(f"packed inputs of shape {h.shape}: expected ({net.encoder.bits}, words)")
    for layer in net.layers:
        h = _apply_layer(layer, h)
    return h


def evaluate_packed(net: DiscreteNet, bits: np.ndarray) -> np.ndarray:
    """Bit-packed evaluation, equal to ``net.evaluate_bits(bits)``: Boolean ``(n, last)``."""
    bits = np.asarray(bits, dtype=bool)
    return unpack_bits(evaluate_words(net, pack_bits(bits)), len(bits))


def count_groups(words: np.ndarray, groups: int, n: int) -> np.ndarray:
    """Per sample, the true bits in each of ``groups`` equal consecutive groups of the rows of
    ``words`` ``(rows, nwords)``: int64 ``(n, groups)``.

    Bit-sliced: rows of equal weight are merged three at a time by full adders (sum at the
    same weight, carry at twice it) until at most two rows of each weight remain; only those
    few rows are unpacked. (A word popcount would count samples, not gates, so none is used.)
    """
    rows = words.shape[0] // groups
    by_weight = {1: words.reshape(groups, rows, -1)}
    weight = 1
    while weight in by_weight:
        x = by_weight[weight]
        while x.shape[1] >= 3:
            t = x.shape[1] // 3
            a, b, c = x[:, :t], x[:, t:2 * t], x[:, 2 * t:3 * t]
            ab = a ^ b
            carry = (a & b) | (ab & c)
            x = np.concatenate([ab ^ c, x[:, 3 * t:]], axis=1)
            prev = by_weight.get(2 * weight)
            by_weight[2 * weight] = carry if prev is None else np.concatenate([prev, carry], axis=1)
        by_weight[weight] = x
        weight *= 2
    weights = np.concatenate([np.full(x.shape[1], w, dtype=np.int64) for w, x in by_weight.items()])
    stacked = np.concatenate(list(by_weight.values()), axis=1)
    bits = unpack_bits(stacked.reshape(groups * weights.size, -1), n).reshape(n, groups, weights.size)
    return bits.astype(np.int64) @ weights


def scores_packed(net: DiscreteNet, bits: np.ndarray) -> np.ndarray:
    """Class scores ``(n, classes)``, equal to ``net.scores(net.evaluate_bits(bits))``."""
    bits = np.asarray(bits, dtype=bool)
    return count_groups(evaluate_words(net, pack_bits(bits)), net.classes, len(bits))


def predict_packed(net: DiscreteNet, x: np.ndarray) -> np.ndarray:
    """Predicted class per sample (first of tied scores), equal to ``net.predict(x)``."""
    return scores_packed(net, net.encoder.encode(x)).argmax(1)


def live_masks(net: DiscreteNet) -> list[np.ndarray]:
    """Boolean masks of the signals that reach a class output: ``[inputs, layer 1, ...]``.

    Every last-layer gate is live; a live gate makes its ``a`` (``b``) input live when its
    function depends on it (constants depend on neither, A and NOT A on ``a`` only, ...).
    """
    masks = [np.ones(net.layers[-1].size, dtype=bool)]
    widths = [net.encoder.bits] + [layer.size for layer in net.layers[:-1]]
    for layer, width in zip(reversed(net.layers), reversed(widths), strict=True):
        live = masks[0]
        below = np.zeros(width, dtype=bool)
        below[layer.a[live & DEPENDS_A[layer.gate]]] = True
        below[layer.b[live & DEPENDS_B[layer.gate]]] = True
        masks.insert(0, below)
    return masks


def circuit_stats(net: DiscreteNet) -> dict:
    """Size of the circuit.

    ``gates``: all gates; ``gate_counts``: 16 counts in :data:`GATE_NAMES` order;
    ``operations``: gates needing a two-input operation (not constant, wire or inverter);
    ``inverters``: NOT A / NOT B gates; ``live_*``: the same over the gates that reach a
    class output (:func:`live_masks`), plus ``live_inputs``; ``depth``: the longest path to
    an output in gates, where a constant has depth 0, a wire (A, B) passes its input's depth
    through, and inverters count 1 like the two-input gates; ``layers`` (sizes),
    ``inputs``, ``popcount_inputs`` (the last layer's size) and ``classes``.
    """
    gate_all = np.concatenate([layer.gate for layer in net.layers])
    masks = live_masks(net)
    gate_live = np.concatenate([layer.gate[m] for layer, m in zip(net.layers, masks[1:], strict=True)])
    ops = np.array([g not in TRIVIAL for g in range(N_GATES)])
    inv = np.array([g in INVERTERS for g in range(N_GATES)])
    step = np.array([g not in CONSTANT_OR_WIRE for g in range(N_GATES)], dtype=np.int64)
    depth = np.zeros(net.encoder.bits, dtype=np.int64)
    for layer in net.layers:
        da = np.where(DEPENDS_A[layer.gate], depth[layer.a], 0)
        db = np.where(DEPENDS_B[layer.gate], depth[layer.b], 0)
        depth = np.maximum(da, db) + step[layer.gate]
    return {
        "gates": net.gates,
        "gate_counts": np.bincount(gate_all, minlength=N_GATES).tolist(),
        "gate_names": list(GATE_NAMES),
        "operations": int(ops[gate_all].sum()),
        "inverters": int(inv[gate_all].sum()),
        "live_gates": int(gate_live.size),
        "live_operations": int(ops[gate_live].sum()),
        "live_inverters": int(inv[gate_live].sum()),
        "live_inputs": int(masks[0].sum()),
        "depth": int(depth.max()),
        "layers": [layer.size for layer in net.layers],
        "inputs": net.encoder.bits,
        "popcount_inputs": net.layers[-1].size,
        "classes": net.classes,
    }


def random_net(features: int, sizes: tuple[int, ...], classes: int, thresholds: tuple[float, ...] = (0.5,),
               seed: int = 0) -> DiscreteNet:
    """A random fixed-threshold net (for tests and benchmarks): each layer of at least 16
    gates holds every gate type, inputs drawn uniformly from the layer below."""
    rng = np.random.default_rng(seed)
    encoder = Encoder("fixed", tuple(thresholds), features)
    layers, width = [], encoder.bits
    for size in sizes:
        gate = rng.integers(0, N_GATES, size)
        if size >= N_GATES:
            gate[rng.choice(size, N_GATES, replace=False)] = np.arange(N_GATES)
        layers.append(DiscreteLayer(rng.integers(0, width, size), rng.integers(0, width, size), gate))
        width = size
    return DiscreteNet(encoder, tuple(layers), classes)


def packed_speed(net: DiscreteNet, bits: np.ndarray, repeats: int = 3) -> dict:
    """Samples per second of :func:`evaluate_packed` against ``net.evaluate_bits`` (median of
    ``repeats`` timings each, packing and unpacking included), and whether they agree."""
    bits = np.asarray(bits, dtype=bool)

    def median_time(fn):
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            result = fn(bits)
            times.append(time.perf_counter() - t0)
        return float(np.median(times)), result

    packed_s, packed = median_time(lambda b: evaluate_packed(net, b))
    reference_s, reference = median_time(net.evaluate_bits)
    n = len(bits)
    return {
        "samples": n,
        "gates": net.gates,
        "packed_s": packed_s,
        "reference_s": reference_s,
        "packed_samples_per_s": n / packed_s,
        "reference_samples_per_s": n / reference_s,
        "speedup": reference_s / packed_s,
        "equal": bool(np.array_equal(packed, reference)),
    }
