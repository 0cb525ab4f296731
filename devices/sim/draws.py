"""Device-to-device draws of a simulated array: each device's own parameters and start state."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .physics import DTOD_TRUNCATION, DeviceModel

INIT_STATES = ("mid", "min", "max", "random")


def draw_devices(m: DeviceModel, shape: tuple[int, ...], seed: int, init: str, init_spread: float,
                 kw: dict[str, Any]) -> dict[str, Tensor]:
    """Per-device tensors of ``shape`` drawn from ``seed``: bounds ``g_lo``/``g_hi`` (S),
    normalized steps ``dp_up``/``dp_down``, nonlinearities ``nu_up``/``nu_down``, ``drift_nu``,
    stuck masks ``stuck_off``/``stuck_on`` and the normalized start state ``w0`` (before
    quantization and stuck devices). ``kw``: the tensors' ``device`` and ``dtype``."""
    gen = torch.Generator(device=kw["device"])
    gen.manual_seed(seed)

    def z() -> Tensor:
        # Always drawn, in a fixed order, so a seed gives the same devices
        # whichever non-idealities are switched on.
        return torch.randn(shape, generator=gen, **kw).clamp_(-DTOD_TRUNCATION, DTOD_TRUNCATION)

    r = m.g_range
    out = {"g_lo": m.g_min + m.g_min_dtod * r * z(), "g_hi": m.g_max + m.g_max_dtod * r * z()}
    span = out["g_hi"] - out["g_lo"]
    dw = m.dw_min * (1.0 + m.dw_min_dtod * z())
    up_down = m.up_down + m.up_down_dtod * z()
    out["dp_up"] = dw * (1.0 + up_down) / span
    out["dp_down"] = dw * (1.0 - up_down) / span
    out["nu_up"] = m.nu_up + m.nu_dtod * z()
    out["nu_down"] = m.nu_down + m.nu_dtod * z()
    out["drift_nu"] = m.drift_nu + m.drift_nu_dtod * z()
    u = torch.rand(shape, generator=gen, **kw)
    out["stuck_off"] = u < m.stuck_off_fraction
    out["stuck_on"] = (u >= m.stuck_off_fraction) & (u < m.stuck_off_fraction + m.stuck_on_fraction)
    w0 = torch.rand(shape, generator=gen, **kw)
    if init == "mid":
        w0 = 0.5 + init_spread * (w0 - 0.5)
    elif init != "random":
        w0.fill_({"min": 0.0, "max": 1.0}[init])
    if m.step_model == "binary":  # two states: in the high one with probability w0
        w0 = (torch.rand(shape, generator=gen, **kw) < w0).to(kw["dtype"])
    out["w0"] = w0
    return out
