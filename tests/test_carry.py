"""Periodic carry: pulses land on the low-significance array and are moved into the
high-significance one without losing the weight (Ambrogio et al., Nature 2018)."""

import pytest
import torch

from bsl.stores import CarryStore
from devices import SimulatedCrossbar
from devices.sim.presets import PRESETS

IDEAL = PRESETS["ideal"]


def make(period: int = 1000, significance: float = 4.0, scheme: str = "push_pull") -> CarryStore:
    msb = SimulatedCrossbar(6, 5, IDEAL, seed=1, init="mid", scheme=scheme)  # type: ignore[arg-type]
    lsb = SimulatedCrossbar(6, 5, IDEAL, seed=2, init="mid", scheme=scheme)  # type: ignore[arg-type]
    return CarryStore(msb, lsb, significance, period)


def test_pulses_go_to_the_low_significance_array_only() -> None:
    store = make()
    before = store.msb.weights()
    counts = torch.zeros(6, 5, dtype=torch.int64)
    counts[2, 3] = 10
    store.pulse(counts)
    assert torch.equal(store.msb.weights(), before)
    # ideal: 10 push-pull pulses move the lsb weight by 10 * 2 * dw / range = 0.02
    assert abs(float(store.lsb.weights()[2, 3]) - 0.02) < 1e-6
    # ... which counts 1/significance in the effective weight
    assert abs(float(store.weights()[2, 3] - before[2, 3]) - 0.02 / 4) < 1e-6


@pytest.mark.parametrize("scheme", ["push_pull", "set_only"])
def test_carry_preserves_the_weight_and_recentres_the_lsb(scheme: str) -> None:
    store = make(scheme=scheme)
    gen = torch.Generator().manual_seed(0)
    counts = torch.randint(-200, 201, (6, 5), generator=gen)
    store.pulse(counts)
    before = store.weights()
    store.carry()
    after = store.weights()
    msb_step = (2 if scheme == "push_pull" else 1) * IDEAL.dw_min / IDEAL.g_range
    # What is carried is rounded to whole msb pulses, and the lsb is re-centred within
    # one device step (program-and-verify tolerance): the weight moves by at most half
    # an msb step plus that residue.
    assert (after - before).abs().max() <= msb_step / 2 + 2 * msb_step / 4 + 1e-6
    assert store.lsb.weights().abs().max() <= 2 * msb_step + 1e-6
    assert store.carries == 1
    # a weight change of many msb steps was really transferred
    assert (store.msb.weights() - make(scheme=scheme).msb.weights()).abs().max() > 20 * msb_step


def test_carry_happens_every_period_updates() -> None:
    store = make(period=3)
    ones = torch.ones(6, 5, dtype=torch.int64)
    for _ in range(7):
        store.pulse(ones)
    assert store.carries == 2
    assert store.counters()["set_pulses"] > 7 * 30
