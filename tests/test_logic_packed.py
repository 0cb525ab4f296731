"""Bit-packed evaluation of discrete logic-gate nets (bsl.logic.packed) against the reference."""

from __future__ import annotations

import numpy as np
import pytest

from bsl.logic.discrete import DiscreteLayer, DiscreteNet, Encoder
from bsl.logic.gates import GATE_NAMES, N_GATES, TRUTH_TABLE
from bsl.logic.packed import (
    DEPENDS_A,
    DEPENDS_B,
    circuit_stats,
    count_groups,
    evaluate_packed,
    evaluate_words,
    live_masks,
    pack_bits,
    packed_speed,
    predict_packed,
    random_net,
    scores_packed,
    unpack_bits,
)

NETS = [  # features, layer sizes, classes, thresholds, seed
    (40, (120, 60, 40), 10, (0.5,), 1),
    (20, (200, 40), 4, (0.25, 0.5, 0.75), 2),
    (16, (64, 48, 32), 4, (0.25, 0.5, 0.75), 3),
    (50, (160, 100), 10, (0.5,), 4),
]


def _net(spec) -> DiscreteNet:
    features, sizes, classes, thresholds, seed = spec
    return random_net(features, sizes, classes, thresholds, seed=seed)


def _layer(a, b, gate) -> DiscreteLayer:
    return DiscreteLayer(np.array(a), np.array(b), np.array(gate))


@pytest.mark.parametrize("spec", NETS)
def test_random_nets_hold_every_gate_type(spec):
    net = _net(spec)
    for layer in net.layers:
        assert set(layer.gate.tolist()) == set(range(N_GATES))


@pytest.mark.parametrize("n", [1, 63, 64, 1000])
@pytest.mark.parametrize("spec", NETS)
def test_packed_equals_reference(spec, n):
    net = _net(spec)
    bits = np.random.default_rng(n).random((n, net.encoder.bits)) < 0.5
    reference = net.evaluate_bits(bits)
    outputs = evaluate_packed(net, bits)
    assert outputs.dtype == bool and outputs.shape == reference.shape
    assert np.array_equal(outputs, reference)
    scores = scores_packed(net, bits)
    assert scores.dtype == np.int64
    assert np.array_equal(scores, net.scores(reference))


@pytest.mark.parametrize("kind", ["fixed", "quantile"])
def test_predict_packed_equals_predict(kind):
    base = _net(NETS[1])
    net = DiscreteNet(Encoder(kind, (0.25, 0.5, 0.75), 20), base.layers, base.classes)
    x = np.random.default_rng(5).random((777, 4, 5))
    assert np.array_equal(predict_packed(net, x), net.predict(x))


def test_every_gate_matches_the_truth_table():
    # inputs (a, b) = (0,0), (0,1), (1,0), (1,1) as four samples; gate g reads a = bit 0, b = bit 1
    bits = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=bool)
    net = DiscreteNet(Encoder("fixed", (0.5,), 2), (_layer([0] * 16, [1] * 16, range(16)),), 16)
    assert np.array_equal(evaluate_packed(net, bits).T, TRUTH_TABLE.astype(bool))
    assert np.array_equal(DEPENDS_A, [name not in ("FALSE", "TRUE", "B", "NOT_B") for name in GATE_NAMES])
    assert np.array_equal(DEPENDS_B, [name not in ("FALSE", "TRUE", "A", "NOT_A") for name in GATE_NAMES])


@pytest.mark.parametrize("n", [0, 1, 64, 65, 200])
def test_pack_unpack_roundtrip(n):
    bits = np.random.default_rng(n).random((n, 7)) < 0.5
    words = pack_bits(bits)
    assert words.dtype == np.uint64 and words.shape == (7, (n + 63) // 64)
    assert np.array_equal(unpack_bits(words, n), bits)


def test_pack_bit_positions():
    bits = np.zeros((130, 3), dtype=bool)
    bits[0, 0] = bits[65, 1] = bits[129, 2] = True
    words = pack_bits(bits)
    assert words[0].tolist() == [1, 0, 0]
    assert words[1].tolist() == [0, 2, 0]
    assert words[2].tolist() == [0, 0, 2]
    with pytest.raises(ValueError):
        unpack_bits(words, 193)


@pytest.mark.parametrize("groups, size", [(1, 1), (1, 100), (3, 7), (10, 33), (5, 2)])
def test_count_groups(groups, size):
    n = 150
    out = np.random.default_rng(size).random((n, groups * size)) < 0.3
    counts = count_groups(pack_bits(out), groups, n)
    assert np.array_equal(counts, out.reshape(n, groups, size).sum(2))


def test_evaluate_words_checks_shape():
    net = _net(NETS[0])
    with pytest.raises(ValueError):
        evaluate_words(net, np.zeros((3, 1), dtype=np.uint64))


def _hand_net() -> DiscreteNet:
    """Inputs x0, x1, x2. Layer 1: g0 = AND(x0, x1), g1 = NOT_A(x2, x1), g2 = XOR(x0, x2).
    Layer 2 (2 classes of 1): h0 = B(g2, g1) (a wire from g1), h1 = TRUE(g0, g0)."""
    return DiscreteNet(Encoder("fixed", (0.5,), 3),
                       (_layer([0, 2, 0], [1, 1, 2], [1, 12, 6]), _layer([2, 0], [1, 0], [5, 15])), 2)


def test_circuit_stats_hand_net():
    net = _hand_net()
    stats = circuit_stats(net)
    counts = [0] * 16
    counts[1] = counts[12] = counts[6] = counts[5] = counts[15] = 1
    assert stats["gate_counts"] == counts
    assert stats["gates"] == 5
    assert stats["operations"] == 2  # AND, XOR
    assert stats["inverters"] == 1  # NOT A
    assert stats["live_gates"] == 3  # h0, h1, g1 (g0 feeds only a constant, g2 only an unread input)
    assert stats["live_operations"] == 0
    assert stats["live_inverters"] == 1
    assert stats["live_inputs"] == 1  # x2
    assert stats["depth"] == 1  # h0 = wire of NOT x2; h1 constant
    assert stats["popcount_inputs"] == 2 and stats["classes"] == 2 and stats["inputs"] == 3
    masks = live_masks(net)
    assert [m.tolist() for m in masks] == [[False, False, True], [False, True, False], [True, True]]


def test_circuit_stats_depth_counts_operations_and_inverters():
    # l1: g0 = OR(x0, x1), g1 = A(x2, x0); l2: h0 = NAND(g0, g1), h1 = NOT_B(g1, g1); l3: AND, B-wire
    net = DiscreteNet(Encoder("fixed", (0.5,), 3),
                      (_layer([0, 2], [1, 0], [7, 3]), _layer([0, 1], [1, 1], [14, 10]),
                       _layer([0, 1], [1, 0], [1, 5])), 1)
    stats = circuit_stats(net)
    assert stats["depth"] == 3  # OR -> NAND -> AND
    assert stats["operations"] == 3 and stats["inverters"] == 1
    assert stats["live_gates"] == 6 and stats["live_inputs"] == 3
    bits = np.random.default_rng(0).random((100, 3)) < 0.5
    assert np.array_equal(evaluate_packed(net, bits), net.evaluate_bits(bits))


def test_packed_speed_smoke():
    net = _net(NETS[0])
    bits = np.random.default_rng(0).random((300, net.encoder.bits)) < 0.5
    result = packed_speed(net, bits, repeats=1)
    assert result["equal"] and result["samples"] == 300
    assert result["packed_samples_per_s"] > 0 and result["reference_samples_per_s"] > 0
