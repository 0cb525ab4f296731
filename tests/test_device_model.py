"""DeviceModel and preset validation, preset files, SimulatedCrossbar arguments and checkpoints."""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path

import pytest
import torch

from devices import (
    DEFAULT_PRESET,
    PRESETS,
    DeviceModel,
    SimulatedCrossbar,
    get_preset,
    load_preset_file,
    preset_names,
    save_preset_file,
)
from devices.sim.presets import resolve_model

pytestmark = pytest.mark.usefixtures("single_thread")


def _names(message: str, field: str) -> bool:
    """Whether ``message`` names ``field`` as a whole word (``g_min`` is not ``g_min_dtod``)."""
    return re.search(rf"(?<![A-Za-z0-9_]){re.escape(field)}(?![A-Za-z0-9_])", message) is not None


def _rejects(field: str, **changes) -> None:
    with pytest.raises(ValueError) as info:
        DeviceModel(**changes)
    assert _names(str(info.value), field), f"message does not name {field!r}: {info.value}"


EXP = {"step_model": "exponential", "nu_up": 1.0, "nu_down": 1.0}

INVALID = {
    "g_max equal g_min": ("g_max", {"g_min": 50e-6, "g_max": 50e-6}),
    "g_max below g_min": ("g_max", {"g_min": 50e-6, "g_max": 40e-6}),
    "g_min negative": ("g_min", {"g_min": -1e-6}),
    "dw_min zero": ("dw_min", {"dw_min": 0.0}),
    "dw_min beyond range": ("dw_min", {"dw_min": 100e-6}),
    "up_down 1": ("up_down", {"up_down": 1.0}),
    "up_down -1": ("up_down", {"up_down": -1.0}),
    "up_down 1.5": ("up_down", {"up_down": 1.5, "dw_min": 1e-9}),
    "step_model unknown": ("step_model", {"step_model": "quadratic"}),
    "nu_up on linear": ("nu_up", {"nu_up": 1.0}),
    "nu_down on linear": ("nu_down", {"nu_down": 1.0}),
    "nu_dtod on linear": ("nu_dtod", {"nu_dtod": 0.1}),
    "nu_down on soft_bounds": ("nu_down", {"step_model": "soft_bounds", "nu_down": 1.0}),
    "stuck_off_fraction -0.1": ("stuck_off_fraction", {"stuck_off_fraction": -0.1}),
    "stuck_off_fraction 1.1": ("stuck_off_fraction", {"stuck_off_fraction": 1.1}),
    "stuck_on_fraction -0.1": ("stuck_on_fraction", {"stuck_on_fraction": -0.1}),
    "stuck_on_fraction 1.1": ("stuck_on_fraction", {"stuck_on_fraction": 1.1}),
    "stuck fractions sum above 1": (
        "stuck_on_fraction",
        {"stuck_off_fraction": 0.6, "stuck_on_fraction": 0.6},
    ),
    "n_levels 1": ("n_levels", {"n_levels": 1}),
    "n_levels negative": ("n_levels", {"n_levels": -4}),
    "n_levels float": ("n_levels", {"n_levels": 16.0}),
    "n_levels bool": ("n_levels", {"n_levels": True}),
    "drift_t0 zero": ("drift_t0", {"drift_t0": 0.0}),
    "v_read zero": ("v_read", {"v_read": 0.0}),
    # Device-to-device spreads whose 3-sigma draws would be unphysical.
    "g_min_dtod below 0 S": ("g_min_dtod", {"g_min_dtod": 0.05}),  # 10 uS - 3 x 4.5 uS < 0
    "g_max_dtod overlapping": ("g_max_dtod", {"g_max_dtod": 0.4}),  # 100 - 3 x 36 uS < 10 uS
    "dw_min_dtod negative steps": ("dw_min_dtod", {"dw_min_dtod": 0.34}),
    "up_down_dtod beyond 1": ("up_down_dtod", {"up_down": 0.5, "up_down_dtod": 0.17}),
    "nu_dtod negative nu": ("nu_dtod", {**EXP, "nu_dtod": 0.34}),
    "drift_nu_dtod negative exponent": ("drift_nu_dtod", {"drift_nu": 0.05, "drift_nu_dtod": 0.02}),
}

NON_NEGATIVE = [
    "g_min_dtod",
    "g_max_dtod",
    "dw_min_dtod",
    "dw_min_std",
    "up_down_dtod",
    "nu_up",
    "nu_down",
    "nu_dtod",
    "read_noise_std",
    "drift_nu",
    "drift_nu_dtod",
]

NUMERIC = [f.name for f in dataclasses.fields(DeviceModel) if f.type in ("float", "int")]


@pytest.mark.parametrize("case", list(INVALID))
def test_invalid_field_raises_naming_it(case: str) -> None:
    field, changes = INVALID[case]
    _rejects(field, **changes)


@pytest.mark.parametrize("field", NON_NEGATIVE)
def test_negative_noise_and_spread_rejected(field: str) -> None:
    base = dict(EXP) if field.startswith("nu_") else {}
    _rejects(field, **{**base, field: -0.01})


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("field", NUMERIC)
def test_non_finite_values_rejected(field: str, value: float) -> None:
    _rejects(field, **{field: value})


@pytest.mark.parametrize("field", ["g_max", "dw_min", "read_noise_std"])
def test_wrong_type_rejected_naming_field(field: str) -> None:
    # A quoted number in a hand-written preset file arrives as a string.
    with pytest.raises((TypeError, ValueError)) as info:
        DeviceModel(**{field: "1e-6"})
    assert _names(str(info.value), field), f"message does not name {field!r}: {info.value}"


def test_numeric_field_list_is_complete() -> None:
    assert len(NUMERIC) >= 20 and "n_levels" in NUMERIC and "g_min" in NUMERIC


def test_valid_models_accepted_and_derived_quantities() -> None:
    m = DeviceModel(g_min=10e-6, g_max=100e-6, dw_min=1e-6, up_down=0.2)
    assert m.g_range == pytest.approx(90e-6)
    assert m.dw_up == pytest.approx(1.2e-6) and m.dw_down == pytest.approx(0.8e-6)
    DeviceModel(**EXP, nu_dtod=0.33)  # just inside 3 sigma
    DeviceModel(n_levels=0)
    DeviceModel(n_levels=2)
    DeviceModel(stuck_off_fraction=0.5, stuck_on_fraction=0.5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.g_min = 0.0  # type: ignore[misc]


def test_replace_validates_again() -> None:
    m = DeviceModel()
    assert m.replace(dw_min=2e-6).dw_min == 2e-6
    with pytest.raises(ValueError, match="up_down"):
        m.replace(up_down=2.0)


def test_from_dict_round_trip_and_unknown_field() -> None:
    for model in PRESETS.values():
        assert DeviceModel.from_dict(model.to_dict()) == model
    with pytest.raises(ValueError, match="g_maxx"):
        DeviceModel.from_dict({**DeviceModel().to_dict(), "g_maxx": 1.0})


# -- presets ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_are_valid_and_sourced(name: str) -> None:
    model = PRESETS[name]
    assert isinstance(model, DeviceModel)
    assert DeviceModel(**model.to_dict()) == model  # passes validation again
    assert isinstance(model.source, str) and len(model.source.strip()) > 20
    assert get_preset(name) is model
    assert resolve_model(name) is model


def test_preset_registry() -> None:
    assert preset_names() == sorted(PRESETS)
    assert {"ideal", "rram"} <= set(PRESETS)
    assert DEFAULT_PRESET in PRESETS
    assert resolve_model(None) == PRESETS[DEFAULT_PRESET]
    m = DeviceModel()
    assert resolve_model(m) is m


def test_unknown_preset_name() -> None:
    with pytest.raises(ValueError, match="no_such_device"):
        get_preset("no_such_device")
    with pytest.raises(ValueError, match="no_such_device"):
        SimulatedCrossbar(2, 2, "no_such_device")


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_file_round_trip(name: str, tmp_path: Path) -> None:
    model = PRESETS[name]
    path = save_preset_file(model, tmp_path / f"{name}.toml", meta={"fitted_from": "unit test", "n": 3})
    assert path.exists()
    assert load_preset_file(path) == model
    assert get_preset(path) == model
    assert get_preset(str(path)) == model
    x = SimulatedCrossbar(3, 4, path, seed=1)
    y = SimulatedCrossbar(3, 4, model, seed=1)
    assert torch.equal(x.conductances(), y.conductances())


def test_preset_file_round_trip_with_awkward_values(tmp_path: Path) -> None:
    model = DeviceModel(
        g_min=1e-300,
        g_max=0.1 + 0.2,
        dw_min=1e-3,
        n_levels=7,
        abrupt_reset=True,
        source='quotes " and \\ backslash\nnew line, unicode µS',
    )
    assert load_preset_file(save_preset_file(model, tmp_path / "awkward.toml")) == model


def _write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "preset.toml"
    path.write_text(body, encoding="utf-8")
    return path


def test_preset_file_unknown_field_named(tmp_path: Path) -> None:
    path = _write(tmp_path, "[device]\ng_min = 1e-6\ng_max = 1e-4\nread_nosie_std = 0.01\n")
    with pytest.raises(ValueError, match="read_nosie_std"):
        load_preset_file(path)


def test_preset_file_invalid_value_named(tmp_path: Path) -> None:
    path = _write(tmp_path, "[device]\ng_min = 1e-4\ng_max = 1e-5\n")
    with pytest.raises(ValueError) as info:
        load_preset_file(path)
    assert _names(str(info.value), "g_max") and str(path) in str(info.value)


def test_preset_file_structure_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"\[device\]"):
        load_preset_file(_write(tmp_path, "[meta]\nx = 1\n"))
    with pytest.raises(ValueError, match="TOML"):
        load_preset_file(_write(tmp_path, "[device\ng_min = \n"))
    with pytest.raises(FileNotFoundError):
        load_preset_file(tmp_path / "missing.toml")
    with pytest.raises(FileNotFoundError):
        get_preset(tmp_path / "missing.toml")


# -- SimulatedCrossbar arguments ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"rows": 0}, "rows"),
        ({"rows": -3}, "rows"),
        ({"cols": 0}, "cols"),
        ({"rows": 2.0}, "rows"),
        ({"cols": True}, "cols"),
        ({"scheme": "pull_push"}, "scheme"),
        ({"init": "middle"}, "init"),
        ({"dtype": torch.int32}, "dtype"),
    ],
    ids=lambda v: repr(v) if isinstance(v, dict) else v,
)
def test_simulated_crossbar_argument_validation(kwargs: dict, name: str) -> None:
    args = {"rows": 3, "cols": 4, "model": "ideal", **kwargs}
    with pytest.raises(ValueError) as info:
        SimulatedCrossbar(**args)
    assert _names(str(info.value), name), str(info.value)


def test_simulated_crossbar_accepts_numpy_sizes() -> None:
    import numpy as np

    x = SimulatedCrossbar(np.int64(3), np.int32(2), "ideal")
    assert (x.rows, x.cols) == (3, 2) and isinstance(x.rows, int)


# -- checkpoints -------------------------------------------------------------------------------------------
def _noisy_session(x: SimulatedCrossbar, seed: int) -> list[torch.Tensor]:
    """A fixed sequence of noisy operations; returns everything it observed."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(3):
        x.apply_pulses(torch.randint(-3, 4, (x.rows, x.cols), generator=gen))
        x.pulse_devices(torch.randint(-2, 3, (2, x.rows, x.cols), generator=gen))
        if x.model.drift_nu > 0:
            x.advance_time(10.0)
        out.append(x.read_forward(torch.rand(4, x.rows, generator=gen)))
        out.append(x.read_backward(torch.rand(4, x.cols, generator=gen)))
        out.append(x.read_conductances())
        out.append(x.conductances())
    return out


@pytest.mark.parametrize("preset", ["rram", "pcm"])
def test_state_dict_round_trip_reproduces_noisy_results(preset: str) -> None:
    a = SimulatedCrossbar(8, 6, preset, seed=3)
    _noisy_session(a, 0)
    state = a.state_dict()
    expected = _noisy_session(a, 1)
    counters = a.counters.copy()
    # A differently seeded array takes over the saved state and continues identically.
    b = SimulatedCrossbar(8, 6, preset, seed=99)
    b.load_state_dict(state)
    got = _noisy_session(b, 1)
    for e, g in zip(expected, got, strict=True):
        assert torch.equal(e, g)
    assert b.counters == counters
    assert b.time == a.time
    # The saved state is a snapshot: continuing `a` did not alter it.
    c = SimulatedCrossbar(8, 6, preset, seed=5)
    c.load_state_dict(state)
    for e, g in zip(expected, _noisy_session(c, 1), strict=True):
        assert torch.equal(e, g)


def test_state_dict_survives_torch_save(tmp_path: Path) -> None:
    a = SimulatedCrossbar(5, 4, "rram", seed=1)
    _noisy_session(a, 0)
    torch.save(a.state_dict(), tmp_path / "xbar.pt")
    expected = _noisy_session(a, 2)
    b = SimulatedCrossbar(5, 4, "rram", seed=2)
    b.load_state_dict(torch.load(tmp_path / "xbar.pt", weights_only=False))
    for e, g in zip(expected, _noisy_session(b, 2), strict=True):
        assert torch.equal(e, g)


def test_load_state_dict_refuses_mismatches() -> None:
    state = SimulatedCrossbar(4, 3, "rram").state_dict()
    with pytest.raises(ValueError, match="4x3"):
        SimulatedCrossbar(3, 4, "rram").load_state_dict(state)
    with pytest.raises(ValueError, match="model"):
        SimulatedCrossbar(4, 3, "ideal").load_state_dict(state)


def test_load_state_dict_keeps_saved_scheme_or_refuses() -> None:
    """The state records its scheme; loading it into an array of the other scheme must not
    silently continue with a different update rule."""
    a = SimulatedCrossbar(4, 3, "ideal", scheme="push_pull")
    state = a.state_dict()
    b = SimulatedCrossbar(4, 3, "ideal", scheme="set_only")
    try:
        b.load_state_dict(state)
    except ValueError as exc:
        assert "scheme" in str(exc)
        return
    assert b.scheme == state["scheme"], "state_dict's scheme was silently ignored"
