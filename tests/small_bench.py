"""The small bench that the emulator and driver-over-TCP tests share: one 3x2 array on
a B2912A (or two 2450s) and a 707B (their pyvisa-py resource manager is the ``rm``
fixture of ``conftest.py``)."""

from __future__ import annotations

from pathlib import Path

import torch

WIRING = """
[instruments]
smu = "TCPIP::127.0.0.1::5025::SOCKET"
{smu_extra}
matrix = "TCPIP::127.0.0.1::5026::SOCKET"

[terminals]
drive_row = "A"
sense_row = "B"

[[arrays]]
rows = 3
cols = 2
first_pin = 0
"""
WORD, PLUS, MINUS = (0, 1, 2), (3, 4), (5, 6)
"""Pins: word lines 0, 1, 2; G+ bit lines 3, 4; G- bit lines 5, 6."""
V_READ = 0.2


def write_wiring(tmp_path: Path, model: str = "b2900") -> Path:
    """The wiring file of the small bench (``model``: ``b2900`` or ``2450``)."""
    extra = 'smu_model = "2450"\nsmu_sense = "TCPIP::127.0.0.1::5027::SOCKET"' if model == "2450" else ""
    path = tmp_path / "wiring.toml"
    path.write_text(WIRING.format(smu_extra=extra), encoding="utf-8")
    return path


def all_but(g: torch.Tensor, index: tuple[int, int, int]) -> torch.Tensor:
    """A mask of every device of ``g`` (``(2, rows, cols)``) except the one at ``index``."""
    mask = torch.ones_like(g, dtype=torch.bool)
    mask[index] = False
    return mask
