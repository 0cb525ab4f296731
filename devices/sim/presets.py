"""Named device presets and preset files (TOML).

Every preset states where its numbers come from. Where a source gives a nonlinearity
label in NeuroSim's convention, ``nu`` here is our own exponential factor (see
:mod:`devices.sim.physics`) chosen to give a similar curvature, not the same number.
A preset file is a TOML file with a ``[device]`` table of :class:`DeviceModel`
fields; ``bsl fit --write-preset`` writes one, and every ``--preset`` option
accepts either a name below or such a file's path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..toml_io import read_toml, write_toml_tables
from .physics import DeviceModel, poisson_switching_probability

DEFAULT_PRESET = "rram"

PRESETS: dict[str, DeviceModel] = {
    "ideal": DeviceModel(
        g_min=0.0,
        g_max=100e-6,
        step_model="linear",
        dw_min=0.1e-6,
        source="Idealized linear, symmetric, noise-free device with 1000 steps over "
        "0-100 uS (the '1000 states' of Gokmen & Vlasov, Front. Neurosci. 2016).",
    ),
    "rram": DeviceModel(
        g_min=10e-6,
        g_max=100e-6,
        g_min_dtod=0.02,
        g_max_dtod=0.05,
        step_model="exponential",
        dw_min=90e-6 / 128,
        dw_min_dtod=0.1,
        dw_min_std=0.3,
        up_down=0.0,
        up_down_dtod=0.05,
        nu_up=0.5,
        nu_down=1.0,
        nu_dtod=0.1,
        read_noise_std=0.02,
        stuck_off_fraction=0.005,
        stuck_on_fraction=0.005,
        source="Noisy analog RRAM. On/off ratio 10 and 128 pulses per branch from the "
        "TaOx/HfOx device in NeuroSim+'s survey (Chen, Peng, Yu, IEEE TCAD 2018); SET "
        "gentler than RESET as measured there; 30% cycle-to-cycle step noise and 10% "
        "device-to-device step spread as in aihwkit's defaults (after Gokmen & Vlasov 2016); "
        "2% read noise and 1% stuck devices, typical of reported 1T1R arrays "
        "(e.g. Li et al., Nat. Commun. 2018).",
    ),
    "agsi": DeviceModel(
        g_min=3.08e-6,
        g_max=38.5e-6,
        g_max_dtod=0.05,
        step_model="exponential",
        dw_min=(38.5e-6 - 3.08e-6) / 97,
        dw_min_dtod=0.1,
        dw_min_std=0.3,
        nu_up=2.4,
        nu_down=4.88,
        read_noise_std=0.02,
        source="Ag:a-Si RRAM (Jo et al., Nano Lett. 2010) as tabulated in NeuroSim+ "
        "(Chen, Peng, Yu, IEEE TCAD 2018): 97 levels, on/off 12.5, strongly nonlinear "
        "and asymmetric (NL labels 2.4 / -4.88, used here directly as nu).",
    ),
    "pcm": DeviceModel(
        g_min=0.1e-6,
        g_max=25e-6,
        g_max_dtod=0.1,
        step_model="exponential",
        dw_min=(25e-6 - 0.1e-6) / 64,
        dw_min_dtod=0.2,
        dw_min_std=0.6,
        nu_up=3.0,
        abrupt_reset=True,
        read_noise_std=0.03,
        drift_nu=0.05,
        drift_nu_dtod=0.01,
        drift_t0=1.0,
        source="Phase-change memory: 0-25 uS, gradual and saturating SET (crystallization), "
        "abrupt RESET (melt-quench), after Burr et al., IEEE TED 2015 and Ambrogio et al., "
        "Nature 2018; large step stochasticity (Nandakumar et al., J. Appl. Phys. 2018); "
        "drift exponent 0.05 (Le Gallo & Sebastian, J. Phys. D 2020). Use scheme='set_only'.",
    ),
    "binary_ideal": DeviceModel(
        g_min=0.0,
        g_max=100e-6,
        step_model="binary",
        dw_min=100e-6,
        source="Idealized two-state device: 0 S off, 100 uS on, every pulse switches, no noise "
        "(the Boolean weight of BOLD / BoolNet as a perfect memory cell).",
    ),
    "binary_rram": DeviceModel(
        g_min=5e-6,
        g_max=100e-6,
        g_min_dtod=0.015,
        g_max_dtod=0.05,
        step_model="binary",
        dw_min=95e-6,
        switch_probability=round(poisson_switching_probability(3.2, 1e-3, 2.85e5, 0.156), 3),
        read_noise_std=0.02,
        stuck_off_fraction=0.005,
        stuck_on_fraction=0.005,
        source="Noisy binary (filamentary) RRAM. LRS 10 kOhm, HRS 200 kOhm (on/off 20), typical "
        "of HfOx 1T1R cells (Wong et al., Proc. IEEE 100, 1951 (2012)); spread 5% of the window on "
        "the LRS, 1.4 uS (28%) on the HRS, the wider of the two as there; switching probability "
        "per pulse 0.942: Poisson switching with waiting time 2.85e5 s exp(-V / 0.156 V) of Ag/a-Si "
        "cells (Jo, Kim, Lu, Nano Lett. 9, 496 (2009)) for a 3.2 V, 1 ms pulse; 2% read noise and "
        "1% stuck cells as the rram preset.",
    ),
}

BINARY_PRESETS = frozenset(name for name, model in PRESETS.items() if model.step_model == "binary")
"""The built-in two-state presets (for rules that need, or cannot use, binary devices)."""


def preset_names() -> list[str]:
    """Names of the built-in presets."""
    return sorted(PRESETS)


def get_preset(name_or_path: str | Path) -> DeviceModel:
    """A built-in preset by name, or a preset file by path (``.toml``)."""
    key = str(name_or_path)
    if key in PRESETS:
        return PRESETS[key]
    path = Path(key)
    if path.suffix == ".toml" or path.exists():
        return load_preset_file(path)
    raise ValueError(f"unknown device preset {key!r}: choose one of {preset_names()} or a .toml file")


def resolve_model(model: DeviceModel | str | Path | None) -> DeviceModel:
    """A :class:`DeviceModel` from a model, a preset name, a preset file, or None (default)."""
    if model is None:
        return PRESETS[DEFAULT_PRESET]
    if isinstance(model, DeviceModel):
        return model
    return get_preset(model)


def load_preset_file(path: str | Path) -> DeviceModel:
    """Read a preset TOML file (a ``[device]`` table of DeviceModel fields)."""
    table = read_toml(path, "preset file").get("device")
    if not isinstance(table, dict):
        raise ValueError(f"preset file {path}: expected a [device] table")
    try:
        return DeviceModel.from_dict(table)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"preset file {path}: {exc}") from exc


def save_preset_file(
    model: DeviceModel, path: str | Path, *, meta: dict[str, Any] | None = None
) -> Path:
    """Write ``model`` as a preset TOML file (optionally with a ``[meta]`` table)."""
    tables = {"meta": meta} if meta else {}
    tables["device"] = model.to_dict()
    return write_toml_tables(
        path, tables, header="memristor-bsl device preset: conductances in S, times in s, voltages in V"
    )
