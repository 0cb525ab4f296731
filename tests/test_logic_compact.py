"""CompactLogic's slot resampler and adaptive discretization on hand-checked cases."""

from __future__ import annotations

import torch

from bsl.logic.compact import Freezer, resample_slots
from bsl.logic.layers import SlotGates

MARK = 7.0  # a logit value no fresh N(0, 1) draw repeats


def three_rows() -> SlotGates:
    """Row 0 confident in slot 1, row 1 undecided (flat), row 2 neither."""
    layer = SlotGates(30, 3, torch.Generator().manual_seed(0), candidates=3)
    with torch.no_grad():
        layer.gate_logits.fill_(MARK)
        layer.gate_logits[0] = 0.0
        layer.gate_logits[0, 1, 5] = 20.0
        layer.gate_logits[1] = 0.0
        layer.gate_logits[2] = 0.0
        layer.gate_logits[2, 0, :4] = 3.0  # best slot 0 with q = 0.65: below 0.9, entropy 0.75 of max
    return layer


def test_the_resampler_keeps_confident_rows_best_slot_and_redraws_the_others() -> None:
    layer = three_rows()
    before = layer.gate_logits.detach().clone()
    pairs_before = layer.pairs.clone()
    opt = torch.optim.Adam([layer.gate_logits], lr=0.01)
    layer.gate_logits.grad = torch.ones_like(layer.gate_logits)
    opt.step()
    with torch.no_grad():
        layer.gate_logits.copy_(before)
    count = resample_slots(layer, torch.Generator().manual_seed(1), confidence=0.9, undecided=0.95,
                           patience=2, optimizer=opt)
    after = layer.gate_logits.detach()
    assert (count.confident_rows, count.slots_redrawn, count.rows_reinitialised) == (1, 2, 0)
    assert torch.equal(after[0, 1], before[0, 1]) and torch.equal(layer.pairs[0, 1], pairs_before[0, 1])
    assert not torch.equal(after[0, 0], before[0, 0]) and not torch.equal(after[0, 2], before[0, 2])
    assert torch.equal(after[1:], before[1:])  # the undecided row waits for its patience; row 2 is left
    state = opt.state[layer.gate_logits]
    for name in ("exp_avg", "exp_avg_sq"):
        assert (state[name][0, [0, 2]] == 0).all() and (state[name][0, 1] != 0).all()
        assert (state[name][1:] != 0).all()
    assert layer.undecided.tolist() == [0, 1, 0]


def test_a_row_that_stays_undecided_for_its_patience_is_reinitialised() -> None:
    layer = three_rows()
    gen = torch.Generator().manual_seed(2)
    kw = {"confidence": 0.9, "undecided": 0.95, "patience": 2}
    resample_slots(layer, gen, **kw)
    flat = layer.gate_logits.detach()[1].clone()
    count = resample_slots(layer, gen, **kw)
    assert count.rows_reinitialised == 1
    assert not torch.equal(layer.gate_logits.detach()[1], flat)  # all of row 1 drawn anew
    assert layer.undecided.tolist()[1] == 0


class FakeLayer:
    def __init__(self, entropies: list[float]) -> None:
        self.entropies, self.frozen = list(entropies), False

    def mean_normalized_entropy(self) -> float:
        return self.entropies.pop(0)

    def freeze(self) -> None:
        self.frozen = True


def test_layers_freeze_front_to_back_once_their_entropy_has_converged_and_never_the_last() -> None:
    layers = [FakeLayer([0.9, 0.8, 0.795]), FakeLayer([0.7, 0.6, 0.595]), FakeLayer([0.1] * 9)]
    freezer = Freezer(tolerance=0.01)
    frozen = [freezer.check(layers, step) for step in range(1, 8)]  # type: ignore[arg-type]
    assert frozen == [None, None, 0, None, None, 1, None]
    assert [layer.frozen for layer in layers] == [True, True, False]
    assert freezer.history == [(3, 0), (6, 1)]
    again = Freezer(0.01)
    again.load_state_dict(freezer.state_dict())
    assert (again.frozen, again.history) == (2, [(3, 0), (6, 1)])


def test_the_pareto_front_keeps_the_rows_no_other_of_its_rule_beats() -> None:
    from sims.logic_front import pareto

    rows = [{"rule": "a", "operations": 100, "test_accuracy": 0.80},
            {"rule": "a", "operations": 200, "test_accuracy": 0.78},  # beaten by the first
            {"rule": "a", "operations": 400, "test_accuracy": 0.90},
            {"rule": "b", "operations": 150, "test_accuracy": 0.70}]
    assert [(r["rule"], r["operations"]) for r in pareto(rows)] == [("a", 100), ("a", 400), ("b", 150)]
