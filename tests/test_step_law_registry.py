"""The step laws live in registries: the simulator's torch laws and fitting's numpy twins."""

from collections.abc import Iterator

import numpy as np
import pytest
import torch

from devices import STEP_MODELS, SimulatedCrossbar
from devices.fitting import fit_trace
from devices.fitting.laws import FIT_LAWS, branch_law
from devices.sim.physics import DeviceModel
from devices.sim.presets import PRESETS
from devices.sim.steps import STEP_LAWS, step_law

QUIET = PRESETS["rram"].replace(
    step_model="linear", nu_up=0.0, nu_down=0.0, nu_dtod=0.0, dw_min_std=0.0, read_noise_std=0.0
)


def test_both_registries_list_the_same_laws() -> None:
    laws = ("linear", "exponential", "soft_bounds", "binary")
    assert tuple(STEP_LAWS) == tuple(FIT_LAWS) == STEP_MODELS == laws


@pytest.fixture
def half_linear() -> Iterator[str]:
    @step_law("half_linear", additive=True)
    def _half(dp: torch.Tensor, nu: torch.Tensor, set_pulse: bool) -> tuple[torch.Tensor, torch.Tensor]:
        return (dp / 2 if set_pulse else -dp / 2), torch.zeros_like(dp)

    yield "half_linear"
    del STEP_LAWS["half_linear"]


def test_a_registered_law_drives_the_simulated_array(half_linear: str) -> None:
    ref = SimulatedCrossbar(6, 5, QUIET, seed=3)
    toy = SimulatedCrossbar(6, 5, QUIET.replace(step_model=half_linear), seed=3)
    g0 = ref.conductances().clone()
    assert torch.equal(g0, toy.conductances())
    pulses = torch.full((6, 5), 2, dtype=torch.int64)
    ref.apply_pulses(pulses)
    toy.apply_pulses(pulses)
    moved_ref = ref.conductances() - g0
    moved_toy = toy.conductances() - g0
    free = moved_ref.abs() > 0
    assert free.any()
    assert torch.allclose(moved_toy[free], moved_ref[free] / 2, rtol=1e-4)


def test_a_law_without_a_fitting_face_is_refused_by_fitting(half_linear: str) -> None:
    DeviceModel(step_model=half_linear)  # type: ignore[arg-type]  # the simulator accepts it
    with pytest.raises(ValueError, match="step model 'half_linear' has no fitting law"):
        branch_law(np.array([0.2]), 1.0, 0.01, 0.0, half_linear)
    with pytest.raises(ValueError, match="step model 'half_linear' has no fitting law"):
        fit_trace(None, half_linear)  # type: ignore[arg-type]


def test_unknown_laws_are_refused() -> None:
    with pytest.raises(ValueError, match="step_model"):
        DeviceModel(step_model="cubic")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="already registered"):
        step_law("linear")(lambda dp, nu, s: (dp, dp))
