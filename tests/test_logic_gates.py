"""The relaxed gates, the layers' discretisation and the encoder (bsl.logic)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bsl.logic.discrete import DiscreteNet, Encoder
from bsl.logic.gates import (
    COEFFICIENTS,
    GATE_NAMES,
    TRUTH_TABLE,
    gate_functions,
    mixture_coefficients,
    relaxed_gate,
)
from bsl.logic.layers import SlotGates, WiredGates
from bsl.logic.model import LogicNet
from bsl.logic.packed import predict_packed, scores_packed

INPUTS = ((0, 0), (0, 1), (1, 0), (1, 1))
BOOLEAN = {  # each gate's truth as a Python expression of a, b
    "FALSE": lambda a, b: 0, "AND": lambda a, b: a & b, "A_AND_NOT_B": lambda a, b: a & (1 - b),
    "A": lambda a, b: a, "NOT_A_AND_B": lambda a, b: (1 - a) & b, "B": lambda a, b: b,
    "XOR": lambda a, b: a ^ b, "OR": lambda a, b: a | b, "NOR": lambda a, b: 1 - (a | b),
    "XNOR": lambda a, b: 1 - (a ^ b), "NOT_B": lambda a, b: 1 - b, "A_OR_NOT_B": lambda a, b: a | (1 - b),
    "NOT_A": lambda a, b: 1 - a, "NOT_A_OR_B": lambda a, b: (1 - a) | b, "NAND": lambda a, b: 1 - (a & b),
    "TRUE": lambda a, b: 1,
}


def test_the_16_relaxed_gates_equal_their_truth_tables_at_boolean_inputs() -> None:
    a = torch.tensor([float(p[0]) for p in INPUTS])
    b = torch.tensor([float(p[1]) for p in INPUTS])
    relaxed = gate_functions(a, b)  # (4, 16)
    for g, name in enumerate(GATE_NAMES):
        expected = [BOOLEAN[name](x, y) for x, y in INPUTS]
        assert relaxed[:, g].tolist() == expected, name
        assert TRUTH_TABLE[g].tolist() == expected, name
        coef = torch.as_tensor(COEFFICIENTS[g:g + 1])
        assert relaxed_gate(a[None], b[None], coef)[0].tolist() == expected, name


def test_the_four_coefficient_form_equals_the_16_term_mixture() -> None:
    gen = torch.Generator().manual_seed(0)
    probs = torch.softmax(3 * torch.randn(50, 16, generator=gen, dtype=torch.float64), -1)
    a = torch.rand(50, 30, generator=gen, dtype=torch.float64)
    b = torch.rand(50, 30, generator=gen, dtype=torch.float64)
    mix16 = (gate_functions(a, b) * probs[:, None, :]).sum(-1)
    four = relaxed_gate(a, b, mixture_coefficients(probs))
    assert torch.allclose(four, mix16, atol=1e-12)
    assert (four >= -1e-12).all() and (four <= 1 + 1e-12).all()  # a mixture of probabilities stays one


@pytest.mark.parametrize("kind", ["random", "dense", "topk", "slots", "conv"])
def test_each_layer_at_boolean_inputs_with_argmax_choices_equals_its_discrete_layer(kind: str) -> None:
    gen = torch.Generator().manual_seed(1)
    if kind == "slots":
        layer = SlotGates(40, 30, gen, candidates=3)
    elif kind == "conv":
        layer = SlotGates(2 * 36, 0, gen, candidates=3, image=(2, 6, 6, 2), channels=4, window=3)
    else:
        layer = WiredGates(40, 30, kind, gen, candidates=5)
    bits = (torch.rand(layer.inputs, 64, generator=gen) > 0.5).float()
    d = layer.discrete()
    expected = np.stack([TRUTH_TABLE[d.gate, 2 * x[d.a].astype(int) + x[d.b].astype(int)]
                         for x in bits.T.numpy().astype(bool)]).T
    assert layer.forward_discrete(bits).numpy().tolist() == expected.tolist()
    layer.freeze()  # a frozen layer computes exactly its discrete function
    assert layer(bits).numpy().tolist() == expected.tolist()


def test_a_learned_wire_starts_on_its_random_wire_and_the_topk_candidates_are_distinct() -> None:
    gen = torch.Generator().manual_seed(2)
    layer = WiredGates(50, 200, "topk", gen, candidates=8, wire_logit=6.0)
    c = layer.candidates
    assert all(len(set(row.tolist())) == 8 for row in c.reshape(-1, 8))
    assert torch.equal(layer.chosen_wires(), c[..., 0])  # the big logit sits on slot 0


def test_the_discretised_network_bit_packed_equals_the_relaxed_one_at_hard_inputs() -> None:
    gen = torch.Generator().manual_seed(3)
    encoder = Encoder("fixed", (0.25, 0.5, 0.75), 20)
    layers = [WiredGates(60, 80, "topk", gen, candidates=6), SlotGates(80, 40, gen, candidates=3)]
    net = LogicNet(encoder, layers, 4, tau=2.0, learn_tau=False)
    x = torch.rand(300, 20, generator=gen)
    discrete = net.discrete()
    assert isinstance(discrete, DiscreteNet)
    torch_scores = net.discrete_scores(x).numpy()
    assert torch_scores.tolist() == scores_packed(discrete, encoder.encode(x.numpy())).tolist()
    assert net.discrete_scores(x).argmax(1).numpy().tolist() == predict_packed(discrete, x.numpy()).tolist()


def test_the_encoder_makes_thermometer_codes_and_per_sample_quantiles() -> None:
    x = np.array([[0.1, 0.4, 0.6, 0.9]])
    fixed = Encoder("fixed", (0.25, 0.5, 0.75), 4).encode(x)
    assert fixed.reshape(4, 3).astype(int).tolist() == [[0, 0, 0], [1, 0, 0], [1, 1, 0], [1, 1, 1]]
    median = Encoder("quantile", (0.5,), 4).encode(x)
    assert median.ravel().tolist() == [False, False, True, True]
    with pytest.raises(ValueError, match="increasing"):
        Encoder("fixed", (0.5, 0.25), 4)
    with pytest.raises(ValueError, match="features"):
        Encoder("fixed", (0.5,), 3).encode(x)
