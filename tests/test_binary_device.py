"""Binary (two-state) devices: switching, switching failure, retention failure, validation, and the
XNOR-popcount read on the simulator and through the emulated bench."""

from __future__ import annotations

import math

import pytest
import torch
from crossbar_factories import through_emulator

from bsl.binary_read import popcount_read
from devices import SimulatedCrossbar
from devices.sim.physics import DeviceModel, poisson_switching_probability
from devices.sim.presets import BINARY_PRESETS, PRESETS

QUIET = PRESETS["binary_rram"].replace(g_min_dtod=0.0, g_max_dtod=0.0, read_noise_std=0.0,
                                       stuck_off_fraction=0.0, stuck_on_fraction=0.0, switch_probability=1.0)
W = torch.tensor([[1, -1, 1], [1, 1, -1], [-1, 1, 1], [-1, -1, -1]])
X = torch.tensor([[1, -1, -1, 1], [1, 1, 1, 1], [-1, -1, -1, -1]])
# sum_i xnor(x_i, w_ij) counted by hand: row 1 (T F F T) against column 1 (T T F F) agrees on
# inputs 1 and 3 -> 2; column 2 (F T T F) on none -> 0; column 3 (T F T F) on 1, 2 -> 2 ...
HAND = torch.tensor([[2, 0, 2], [2, 2, 2], [2, 2, 2]])


def program(xbar: SimulatedCrossbar | object, w: torch.Tensor) -> None:
    g_min, g_max = xbar.g_bounds  # type: ignore[attr-defined]
    on = w > 0
    targets = torch.stack((torch.where(on, g_max, g_min), torch.where(on, g_min, g_max))).float()
    result = xbar.program_and_verify(targets, tolerance=0.5 * (g_max - g_min),  # type: ignore[attr-defined]
                                     max_pulses=8, max_iterations=8, max_pulses_per_iteration=1)
    assert result.n_failed == 0


def test_the_hand_count_is_the_xnor_popcount() -> None:
    assert torch.equal((X[:, :, None] == W[None]).sum(1), HAND)


def test_one_pulse_switches_a_binary_device_fully_and_a_second_changes_nothing() -> None:
    xbar = SimulatedCrossbar(4, 3, QUIET, seed=0, init="min")
    g0 = xbar.conductances()
    assert torch.allclose(g0, torch.full_like(g0, QUIET.g_min))
    xbar.apply_pulses(torch.ones(4, 3, dtype=torch.int64))
    g1 = xbar.conductances()
    assert torch.allclose(g1[0], torch.full((4, 3), QUIET.g_max)) and torch.allclose(g1[1], g0[1])
    xbar.apply_pulses(torch.ones(4, 3, dtype=torch.int64))
    assert torch.equal(xbar.conductances(), g1)
    xbar.apply_pulses(-torch.ones(4, 3, dtype=torch.int64))
    g2 = xbar.conductances()
    assert torch.allclose(g2[0], g0[0]) and torch.allclose(g2[1], torch.full((4, 3), QUIET.g_max))


def test_binary_devices_start_in_one_of_their_two_states_half_of_them_on() -> None:
    g = SimulatedCrossbar(100, 100, QUIET, seed=1).conductances()
    on = torch.isclose(g, torch.tensor(QUIET.g_max))
    assert bool((on | torch.isclose(g, torch.tensor(QUIET.g_min))).all())
    assert abs(float(on.float().mean()) - 0.5) < 4 * math.sqrt(0.25 / g.numel())


@pytest.mark.parametrize("pulses", [1, 3])
def test_a_device_switches_within_n_pulses_with_probability_one_minus_failure_to_the_n(pulses: int) -> None:
    p = 0.7
    xbar = SimulatedCrossbar(200, 100, QUIET.replace(switch_probability=p), seed=2, init="min")
    xbar.apply_pulses(torch.full((200, 100), pulses, dtype=torch.int64))
    switched = float((xbar.conductances()[0] > 0.5 * (QUIET.g_min + QUIET.g_max)).float().mean())
    want = 1 - (1 - p) ** pulses
    assert abs(switched - want) < 4 * math.sqrt(want * (1 - want) / 20000) + 1e-9
    assert xbar.counters.set_pulses == 200 * 100 * pulses  # failed pulses are still sent


def test_retention_failure_loses_one_minus_exp_minus_t_over_tau_of_the_on_devices() -> None:
    xbar = SimulatedCrossbar(200, 100, QUIET.replace(retention_tau=100.0), seed=3, init="max")
    xbar.advance_time(100.0)
    kept = float((xbar.conductances() > 0.5 * (QUIET.g_min + QUIET.g_max)).float().mean())
    assert abs(kept - math.exp(-1)) < 4 * math.sqrt(0.25 / 40000)


def test_stuck_binary_devices_ignore_both_pulses() -> None:
    model = QUIET.replace(stuck_on_fraction=0.2)
    xbar = SimulatedCrossbar(50, 40, model, seed=4, init="max")
    xbar.apply_pulses(-torch.ones(50, 40, dtype=torch.int64))
    g = xbar.conductances()[0]
    assert abs(float((g > 50e-6).float().mean()) - 0.2) < 0.05


def test_poisson_switching_probability_follows_the_voltage_time_law() -> None:
    tau = 2.85e5 * math.exp(-3.2 / 0.156)
    assert poisson_switching_probability(3.2, tau, 2.85e5, 0.156) == pytest.approx(1 - math.exp(-1))
    p = [poisson_switching_probability(v, 1e-3, 2.85e5, 0.156) for v in (3.0, 3.2, 3.4)]
    assert p == sorted(p) and p[0] < 0.6 < p[1] < 0.95 < p[2]
    assert PRESETS["binary_rram"].switch_probability == pytest.approx(
        poisson_switching_probability(3.2, 1e-3, 2.85e5, 0.156), abs=1e-3)
    with pytest.raises(ValueError, match="width = -1"):
        poisson_switching_probability(3.2, -1, 2.85e5, 0.156)


@pytest.mark.parametrize(("changes", "field"), [
    ({"dw_min": 1e-6}, "dw_min"),
    ({"dw_min_std": 0.1}, "dw_min_std"),
    ({"n_levels": 4}, "n_levels"),
    ({"switch_probability": 0.0}, "switch_probability"),
    ({"switch_probability": 1.5}, "switch_probability"),
    ({"retention_tau": -1.0}, "retention_tau"),
])
def test_bad_binary_device_parameters_are_refused_by_name(changes: dict[str, float], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        QUIET.replace(**changes)


def test_the_binary_presets_are_listed_and_say_where_their_numbers_come_from() -> None:
    assert BINARY_PRESETS == {"binary_ideal", "binary_rram"}
    for name in BINARY_PRESETS:
        assert PRESETS[name].step_model == "binary" and len(PRESETS[name].source) > 80
    assert DeviceModel(step_model="binary", g_min=0.0, g_max=1e-4, dw_min=1e-4).switch_probability == 1.0


def test_the_popcount_read_equals_the_xnor_count_on_the_ideal_simulator() -> None:
    xbar = SimulatedCrossbar(4, 3, "binary_ideal", seed=5)
    program(xbar, W)
    assert torch.allclose(popcount_read(xbar, X), HAND.double(), atol=1e-4)


def test_the_popcount_read_rounds_to_the_xnor_count_on_the_noisy_simulator() -> None:
    model = PRESETS["binary_rram"].replace(stuck_off_fraction=0.0, stuck_on_fraction=0.0)
    xbar = SimulatedCrossbar(4, 3, model, seed=6)
    program(xbar, W)
    counts = popcount_read(xbar, X)
    assert not torch.equal(counts, HAND.double())  # device spread and read noise are there
    assert torch.equal(counts.round(), HAND.double())


def test_the_popcount_read_equals_the_xnor_count_through_the_emulated_bench() -> None:
    xbar = through_emulator("binary_ideal", 7)(4, 3, "push_pull")
    program(xbar, W)
    assert torch.equal(popcount_read(xbar, X).round(), HAND.double())
    assert torch.allclose(popcount_read(xbar, X), HAND.double(), atol=0.05)


def test_the_popcount_read_refuses_non_boolean_inputs() -> None:
    xbar = SimulatedCrossbar(4, 3, "binary_ideal", seed=5)
    with pytest.raises(ValueError, match="found 0.0"):
        popcount_read(xbar, torch.tensor([[1, 0, 1, 1]]))
