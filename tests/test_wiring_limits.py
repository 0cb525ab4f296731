"""Wiring and limits files of a hardware-in-the-loop bench: parsing and refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from bsl.config import TrainConfig
from devices.hil.settings import HilSettings, Limits, Operation, load_hil_settings
from devices.hil.wiring import WiringError, crosspoint, load_wiring

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "hil"


def test_example_files_load() -> None:
    w = load_wiring(EXAMPLES / "wiring.toml")
    assert [w.shape(0), w.shape(1)] == [(17, 8), (9, 4)]
    a = w.arrays[0]
    assert a.word_line_pins == tuple(range(17))
    assert a.plus_pins == tuple(range(17, 25)) and a.minus_pins == tuple(range(25, 33))
    assert w.arrays[1].pins()[0] == 33 and w.arrays[1].pins()[-1] == 49
    other = load_wiring(EXAMPLES / "wiring.toml", smu="TCPIP::10.0.0.5::5025::SOCKET")
    assert other.smu == "TCPIP::10.0.0.5::5025::SOCKET"
    s = load_hil_settings(EXAMPLES / "limits.toml")
    assert s.limits.max_voltage_v == 2.0 and s.operation.read_time_s == pytest.approx(0.01 / 50)


@pytest.mark.parametrize(("pin", "row", "name"), [(0, "A", "1A01"), (11, "B", "1B12"), (12, "A", "2A01"),
                                                  (71, "H", "6H12")])
def test_crosspoint_names(pin: int, row: str, name: str) -> None:
    assert crosspoint(row, pin) == name


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "w.toml"
    path.write_text(text)
    return path


BASE = '[instruments]\nsmu = "S"\nmatrix = "M"\n'
ONE = "[[arrays]]\nrows = 1\ncols = 1\nfirst_pin = 0\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (BASE + "[[arrays]]\nrows = 2\ncols = 2\nfirst_pin = 0\n" + ONE.replace("= 0", "= 5"),
         "pin 5 is wired twice"),
        (BASE + "[[arrays]]\nrows = 30\ncols = 30\nfirst_pin = 0\n", "outside 0..71"),
        (BASE + "[[arrays]]\nrows = 2\ncols = 1\nword_line_pins = [0]\nplus_pins = [1]\nminus_pins = [2]\n",
         "word_line_pins has 1 pins, expected 2"),
        (BASE, "no \\[\\[arrays\\]\\]"),
        ('[instruments]\nsmu = "S"\n' + ONE, "needs matrix"),
        (BASE + '[terminals]\ndrive_row = "A"\nsense_row = "A"\n' + ONE, "must differ"),
        (BASE + '[terminals]\ndrive_row = "Z"\n' + ONE, "row letter"),
        (BASE + 'smu_model = "2450"\n' + ONE, "smu_sense"),
        (BASE + "[extra]\n" + ONE, "unknown table"),
    ],
)
def test_bad_wiring_is_refused(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(WiringError, match=message):
        load_wiring(_write(tmp_path, text))


def test_limits_are_checked_against_operation() -> None:
    limits = Limits(max_voltage_v=1.0, compliance_a=1e-3, max_pulse_width_s=1e-3, max_pulses_per_cell=4)
    with pytest.raises(ValueError, match="set_voltage_v = 1.2 V exceeds"):
        HilSettings(limits, Operation())
    with pytest.raises(ValueError, match="set_width_s = 0.01 s exceeds"):
        HilSettings(limits, Operation(set_voltage_v=0.9, reset_voltage_v=0.9, set_width_s=1e-2))
    with pytest.raises(ValueError, match="reads must not program"):
        HilSettings(limits, Operation(read_voltage_v=0.95, set_voltage_v=0.9, reset_voltage_v=0.9))
    for field, value in (("max_voltage_v", -1.0), ("compliance_a", float("nan")), ("max_pulses_per_cell", 0)):
        kwargs = dict(max_voltage_v=1.0, compliance_a=1e-3, max_pulse_width_s=1e-3, max_pulses_per_cell=4)
        kwargs[field] = value
        with pytest.raises(ValueError, match=field):
            Limits(**kwargs)  # type: ignore[arg-type]


def test_limits_file_refusals(tmp_path: Path) -> None:
    path = tmp_path / "l.toml"
    path.write_text("[operation]\nread_voltage_v = 0.2\n")
    with pytest.raises(ValueError, match="needs a \\[limits\\] table"):
        load_hil_settings(path)
    path.write_text("[limits]\nmax_voltage_v = 2.0\ncompliance_a = 1e-3\nmax_pulse_width_s = 1e-3\n"
                    "max_pulses_per_cell = 4\nmax_current = 3\n")
    with pytest.raises(ValueError, match="unknown setting"):
        load_hil_settings(path)


def test_visa_config_is_validated_before_any_instrument(tmp_path: Path) -> None:
    files = dict(wiring=str(EXAMPLES / "wiring.toml"), limits=str(EXAMPLES / "limits.toml"))
    with pytest.raises(ValueError, match="needs both a wiring file"):
        TrainConfig(device="visa")
    with pytest.raises(FileNotFoundError, match="wiring file"):
        TrainConfig(device="visa", **{**files, "wiring": str(tmp_path / "missing.toml")})
    with pytest.raises(ValueError, match="periodic carry"):
        TrainConfig(device="visa", carry_period=10, **files)
    assert TrainConfig(device="visa", **files).device == "visa"
