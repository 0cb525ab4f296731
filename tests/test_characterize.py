"""The potentiation/depression experiment, its Trace and the tidy CSV reader
(devices.fitting.characterize)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from devices import DeviceModel, SimulatedCrossbar
from devices.fitting.characterize import (
    TRACE_COLUMNS,
    Branch,
    Trace,
    characterization_crossbar,
    iter_branches,
    potentiation_depression,
    read_trace_csv,
)

RANGE = 90e-6
#: Noise-free and free of device-to-device variation: every read is the true state.
CLEAN = DeviceModel(
    g_min=10e-6, g_max=100e-6, step_model="exponential", dw_min=RANGE / 40, up_down=0.1,
    nu_up=1.0, nu_down=2.0,
)
NOISY = CLEAN.replace(dw_min_std=0.3, read_noise_std=0.02, g_max_dtod=0.05, dw_min_dtod=0.1)


# -- the experiment ---------------------------------------------------------------------------


def test_trace_shape_columns_and_order() -> None:
    n, c, d = 7, 3, 2
    tr = potentiation_depression(NOISY, pulses=n, cycles=c, devices=d, seed=1)
    assert len(tr) == d * c * 2 * (n + 1)
    assert tr.device.dtype == np.int64 and tr.cycle.dtype == np.int64 and tr.pulse.dtype == np.int64
    assert tr.conductance_S.dtype == np.float64
    assert set(tr.polarity.tolist()) == {"set", "reset"}
    assert tr.devices.tolist() == [0, 1] and tr.cycles.tolist() == [0, 1, 2]
    # Ordered by device, cycle, branch (SET first), pulse.
    block = 2 * (n + 1)
    first = slice(0, block)
    assert tr.pulse[first].tolist() == list(range(n + 1)) * 2
    assert tr.polarity[first].tolist() == ["set"] * (n + 1) + ["reset"] * (n + 1)
    assert (tr.device[: c * block] == 0).all() and (tr.device[c * block :] == 1).all()
    assert tr.cycle[block : 2 * block].tolist() == [1] * block
    branches = list(iter_branches(tr))
    assert len(branches) == d * c * 2
    assert all(isinstance(b, Branch) and len(b.conductance_S) == n + 1 for b in branches)
    dev, cyc, pol, g = branches[1]  # unpacks as a 4-tuple
    assert (dev, cyc, pol) == (0, 0, "reset") and g.shape == (n + 1,)
    assert np.isfinite(tr.conductance_S).all() and (tr.conductance_S > 0).all()
    assert "seed 1" in tr.source
    # The columns are read-only (the trace is frozen).
    with pytest.raises(ValueError):
        tr.conductance_S[0] = 0.0


def test_noise_free_branches_are_monotone_and_follow_the_simulator() -> None:
    n = 60  # enough to saturate: RANGE / dw_up ~ 36 pulses
    tr = potentiation_depression(CLEAN, pulses=n, cycles=2, seed=0)
    for _, cycle, pol, g in iter_branches(tr):
        d = np.diff(g)
        if pol == "set":
            assert (d >= 0).all() and d[:20].min() > 0
            assert g[-1] == pytest.approx(CLEAN.g_max, rel=1e-9)  # saturated at the bound
        else:
            assert (d <= 0).all() and d[:20].max() < 0
            assert g[-1] == pytest.approx(CLEAN.g_min, rel=1e-9)
        if cycle == 0 and pol == "set":
            assert g[0] == pytest.approx(CLEAN.g_min, rel=1e-12)  # init='min'
    # The same pulses applied directly to a SimulatedCrossbar give the same first branch.
    x = SimulatedCrossbar(1, 1, CLEAN, init="min")
    one = torch.zeros((2, 1, 1), dtype=torch.int64)
    one[0] = 1
    direct = []
    for _ in range(n):
        x.pulse_devices(one)
        direct.append(float(x.read_conductances()[0, 0, 0]))
    first = next(iter_branches(tr)).conductance_S[1:]
    np.testing.assert_allclose(first, direct, rtol=1e-5)  # float32 simulator vs float64 trace


def test_noisy_branches_are_monotone_in_mean() -> None:
    """Averaged over 6 devices x 5 cycles, the mean SET branch rises and the mean RESET branch
    falls over every window of 5 pulses until the bound (tolerance: none; noise-averaged means)."""
    n = 30
    tr = potentiation_depression(NOISY, pulses=n, cycles=5, devices=6, seed=2)
    for pol, sign in (("set", 1), ("reset", -1)):
        g = np.array([b.conductance_S for b in iter_branches(tr) if b.polarity == pol])
        mean = g.mean(axis=0)
        assert (sign * (mean[5:] - mean[:-5]) > 0).all(), f"{pol}: mean branch is not monotone"
    # ... whereas the individual noisy branches are not monotone pulse by pulse.
    g = np.array([b.conductance_S for b in iter_branches(tr) if b.polarity == "set"])
    assert (np.diff(g, axis=1) < 0).any()


def test_progress_bar_and_argument_checks(capsys: pytest.CaptureFixture[str]) -> None:
    potentiation_depression(CLEAN, pulses=2, cycles=3, progress=True)
    assert "3/3" in capsys.readouterr().err
    potentiation_depression(CLEAN, pulses=2, cycles=3)
    assert capsys.readouterr().err == ""
    for kwargs, name in (
        ({"pulses": 0, "cycles": 1}, "pulses"),
        ({"pulses": 1, "cycles": 0}, "cycles"),
        ({"pulses": 1, "cycles": 1, "devices": 0}, "devices"),
        ({"pulses": 2.5, "cycles": 1}, "pulses"),
        ({"pulses": True, "cycles": 1}, "pulses"),
        ({"pulses": 1, "cycles": 1, "seed": -1}, "seed"),
    ):
        with pytest.raises(ValueError, match=name):
            potentiation_depression(CLEAN, **kwargs)


def test_characterization_crossbar_is_the_measured_array() -> None:
    x = characterization_crossbar(NOISY, devices=3, seed=4)
    assert (x.rows, x.cols) == (3, 1)
    tr = potentiation_depression(NOISY.replace(read_noise_std=0.0), pulses=3, cycles=1, devices=3, seed=4)
    first = tr.conductance_S[(tr.pulse == 0) & (tr.polarity == "set")]
    np.testing.assert_allclose(first, x.g_lo[0, :, 0].numpy(), rtol=1e-12)


def test_preset_names_are_accepted() -> None:
    tr = potentiation_depression("ideal", pulses=3, cycles=1)
    assert "ideal" in tr.source
    np.testing.assert_allclose(np.diff(tr.conductance_S[:4]), 0.1e-6, rtol=1e-9)


# -- CSV --------------------------------------------------------------------------------------


def test_csv_round_trip_is_exact(tmp_path: Path) -> None:
    tr = potentiation_depression(NOISY, pulses=5, cycles=2, devices=2, seed=3)
    path = tr.to_csv(tmp_path / "trace.csv")
    assert path.read_text().splitlines()[0] == "device,cycle,pulse,polarity,conductance_S"
    back = read_trace_csv(path)
    for col in TRACE_COLUMNS:
        np.testing.assert_array_equal(getattr(back, col), getattr(tr, col), err_msg=col)
    assert back.source == str(path)


LAB_CSV = """\
# measured 2024-05-01, probe station 2
 polarity , conductance_S, temperature_K, pulse, cycle ,device
SET,1.0e-05,300,1,3,17
SET,2.0e-05,300,2,3,17
SET,3.0e-05,300,3,3,17

RESET,2.5e-05,300,1,3,17
RESET,1.5e-05,301,2,3,17
set,1.2e-05,301,0,7,17
set,2.2e-05,301,2,7,17
set,1.7e-05,301,1,7,17
set,2.6e-05,301,3,7,17
set,2.9e-05,301,4,7,17
reset,3.1e-05,301,1,-2,42
reset,2.1e-05,301,2,-2,42
"""


def test_reading_lab_data(tmp_path: Path) -> None:
    """Unequal cycle lengths, missing pulse-0 rows, shuffled pulses, odd ids, extra columns,
    spaces, comments, blank lines, upper-case polarities and a UTF-8 byte-order mark."""
    path = tmp_path / "lab.csv"
    path.write_text("\ufeff" + LAB_CSV, encoding="utf-8")
    tr = read_trace_csv(path)
    assert len(tr) == 12
    got = [(d, c, p, g.tolist()) for d, c, p, g in iter_branches(tr)]
    assert got == [
        (17, 3, "set", [1.0e-05, 2.0e-05, 3.0e-05]),
        (17, 3, "reset", [2.5e-05, 1.5e-05]),
        (17, 7, "set", [1.2e-05, 1.7e-05, 2.2e-05, 2.6e-05, 2.9e-05]),  # sorted by pulse
        (42, -2, "reset", [3.1e-05, 2.1e-05]),
    ]
    assert tr.devices.tolist() == [17, 42] and tr.cycles.tolist() == [-2, 3, 7]
    assert tr.polarity.tolist().count("set") == 8


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bad.csv"
    path.write_text(text, encoding="utf-8")
    return path


HEADER = "device,cycle,pulse,polarity,conductance_S\n"
GOOD = "0,0,0,set,1e-05\n"

BAD = {
    "unknown polarity": (HEADER + GOOD + "0,0,1,up,2e-05\n", 3, "polarity", "unknown polarity 'up'"),
    "non-numeric conductance": (HEADER + GOOD + "0,0,1,set,12uS\n", 3, "conductance_S", "not a number"),
    "nan conductance": (HEADER + "0,0,0,set,nan\n", 2, "conductance_S", "not finite"),
    "infinite conductance": (HEADER + GOOD + GOOD.replace("0,0,0", "0,0,1").replace("1e-05", "inf"),
                             3, "conductance_S", "not finite"),
    "negative conductance": (HEADER + GOOD + "0,0,1,set,-1e-06\n", 3, "conductance_S", "negative"),
    "missing value": (HEADER + "0,0,0,set\n", 2, "conductance_S", "missing value"),
    "non-integer pulse": (HEADER + "0,0,1.5,set,1e-05\n", 2, "pulse", "not an integer"),
    "negative pulse": (HEADER + "0,0,-1,set,1e-05\n", 2, "pulse", "negative"),
    "non-integer device": (HEADER + "A1,0,0,set,1e-05\n", 2, "device", "not an integer"),
    "duplicate read": (HEADER + GOOD + "0,0,1,set,2e-05\n" + GOOD, 4, "pulse", "already appears on line 2"),
    "missing column": ("device,cycle,pulse,conductance_S\n0,0,0,1e-05\n", 1, "polarity", "missing column"),
    "duplicate column": ("device,cycle,pulse,polarity,conductance_S,pulse\n", 1, "pulse", "more than once"),
    "no data rows": (HEADER + "\n# nothing measured\n", 1, None, "no data rows"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_invalid_csv_names_file_line_and_column(tmp_path: Path, case: str) -> None:
    text, line, column, what = BAD[case]
    path = _write(tmp_path, text)
    with pytest.raises(ValueError) as info:
        read_trace_csv(path)
    msg = str(info.value)
    assert str(path) in msg, msg
    assert f"line {line}" in msg, msg
    if column is not None:
        assert repr(column) in msg, msg
    assert what in msg, msg


def test_empty_unreadable_and_missing_files(tmp_path: Path) -> None:
    for text in ("", "\n\n  \n"):
        path = _write(tmp_path, text)
        with pytest.raises(ValueError, match=r"bad\.csv, line 1: empty file"):
            read_trace_csv(path)
    path = tmp_path / "binary.csv"
    path.write_bytes(HEADER.encode() + b"0,0,0,set,\xff\xfe\n")
    with pytest.raises(ValueError, match="not a UTF-8 text file"):
        read_trace_csv(path)
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        read_trace_csv(tmp_path / "nope.csv")
    with pytest.raises(ValueError, match="is a directory"):
        read_trace_csv(tmp_path)


def test_trace_validates_its_columns() -> None:
    ok = {"device": [0, 0], "cycle": [0, 0], "pulse": [0, 1], "polarity": ["set", "set"],
          "conductance_S": [1e-5, 2e-5]}
    assert len(Trace(**ok)) == 2
    for change, match in (
        ({"pulse": [0]}, "equal lengths"),
        ({"polarity": ["set", "SET"]}, "polarity"),
        ({"conductance_S": [1e-5, -1e-6]}, "conductance_S"),
        ({"conductance_S": [1e-5, np.nan]}, "conductance_S"),
        ({"pulse": [0, -1]}, "pulse"),
        ({"device": [0.5, 0]}, "device"),
    ):
        with pytest.raises(ValueError, match=match):
            Trace(**{**ok, **change})
    sub = Trace(**ok).take(np.array([1]))
    assert sub.pulse.tolist() == [1] and sub.conductance_S.tolist() == [2e-5]
