"""``bsl device-response`` and ``bsl fit`` end to end through ``bsl.cli.main``."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from bsl.cli import main
from devices import DeviceModel, SimulatedCrossbar, get_preset
from devices.fitting.characterize import characterization_crossbar, read_trace_csv

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

N, C, D = 150, 3, 2


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture
def trace_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    path = tmp_path / "trace.csv"
    rc, out, _ = _run(
        capsys, "device-response", "--preset", "rram", "--pulses", str(N), "--cycles", str(C),
        "--devices", str(D), "--seed", "3", "--out", str(path),
    )
    assert rc == 0
    return path


def test_device_response_writes_the_trace(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "t.csv"
    rc, out, err = _run(capsys, "device-response", "--pulses", "20", "--cycles", "2", "--devices", "3",
                        "--out", str(path))
    assert rc == 0
    lines = path.read_text().splitlines()
    assert lines[0] == "device,cycle,pulse,polarity,conductance_S"
    rows = 3 * 2 * 2 * (20 + 1)
    assert len(lines) == 1 + rows
    assert len(out.strip().splitlines()) == 1  # a one-line summary
    assert f"wrote {rows} rows" in out and str(path) in out and "uS" in out
    assert "preset rram" in out  # the default preset
    assert "2/2" in err  # the progress bar over cycles
    tr = read_trace_csv(path)
    lo, hi = (float(x) for x in out.split("G from ")[1].split(" uS")[0].split(" to "))
    assert lo == pytest.approx(tr.conductance_S.min() * 1e6, rel=1e-3)
    assert hi == pytest.approx(tr.conductance_S.max() * 1e6, rel=1e-3)
    # The same seed gives the same file; another seed does not.
    again = tmp_path / "again.csv"
    other = tmp_path / "other.csv"
    assert main(["device-response", "--pulses", "20", "--cycles", "2", "--devices", "3",
                 "--out", str(again), "--no-progress"]) == 0
    assert main(["device-response", "--pulses", "20", "--cycles", "2", "--devices", "3",
                 "--seed", "1", "--out", str(other), "--no-progress"]) == 0
    assert again.read_text() == path.read_text() and other.read_text() != path.read_text()


def test_fit_prints_summary_and_writes_a_usable_preset(
    trace_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    preset = tmp_path / "fitted.toml"
    rc, out, err = _run(capsys, "fit", str(trace_csv), "--write-preset", str(preset))
    assert rc == 0, err
    for needle in ("exponential step model fitted to", "g_min   = ", "g_max   = ", "uS", "per SET pulse",
                   "per RESET pulse", "nu_up", "R^2 SET = 0.9", "R^2 RESET = 0.9", "dw_min_std",
                   "read_noise_std", "device-to-device (2 devices fitted separately)", "g_max_dtod",
                   f"wrote preset {preset}"):
        assert needle in out, needle
    model = get_preset(str(preset))
    assert isinstance(model, DeviceModel) and model.step_model == "exponential"
    # The two simulated devices' own bounds (rram has device-to-device variation):
    x = characterization_crossbar("rram", devices=D, seed=3)
    span = float((x.g_hi - x.g_lo)[0].mean())
    assert abs(model.g_max - float(x.g_hi[0].mean())) < 0.05 * span
    assert abs(model.g_min - float(x.g_lo[0].mean())) < 0.05 * span
    assert 0.1 < model.dw_min_std < 0.5 and 0.01 < model.read_noise_std < 0.04  # truth 0.3, 0.02
    assert str(trace_csv) in model.source
    meta = tomllib.loads(preset.read_text())["meta"]
    assert meta["source_file"] == str(trace_csv) and meta["model"] == "exponential"
    assert 0.9 < meta["r2_set"] <= 1 and 0.9 < meta["r2_reset"] <= 1
    # Every --preset option takes the file: simulate with it, and build a crossbar from it.
    again = tmp_path / "again.csv"
    rc, out, _ = _run(capsys, "device-response", "--preset", str(preset), "--pulses", "5", "--cycles", "1",
                      "--out", str(again), "--no-progress")
    assert rc == 0 and "wrote 12 rows" in out
    SimulatedCrossbar(2, 2, preset)


def test_fit_other_models(trace_csv: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    for model in ("linear", "soft_bounds"):
        preset = tmp_path / f"{model}.toml"
        rc, out, _ = _run(capsys, "fit", str(trace_csv), "--model", model, "--write-preset", str(preset))
        assert rc == 0 and f"{model} step model fitted" in out and "nu_up" not in out
        assert get_preset(str(preset)).step_model == model


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["device-response", "--pulses", "0", "--cycles", "1"], "--pulses = 0: must be an integer >= 1"),
        (["device-response", "--pulses", "3", "--cycles", "0"], "--cycles = 0"),
        (["device-response", "--pulses", "3", "--cycles", "1", "--devices", "-2"], "--devices = -2"),
        (["device-response", "--pulses", "3", "--cycles", "1", "--seed", "-1"], "--seed = -1: must be >= 0"),
        (["device-response", "--pulses", "3", "--cycles", "1", "--preset", "nope"],
         "unknown device preset 'nope'"),
        (["device-response", "--pulses", "3", "--cycles", "1", "--preset", "missing.toml"],
         "preset file missing.toml does not exist"),
    ],
    ids=["pulses", "cycles", "devices", "seed", "preset", "preset-file"],
)
def test_device_response_errors(
    argv: list[str], needle: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_file = tmp_path / "x.csv"
    rc, out, err = _run(capsys, *argv, "--out", str(out_file))
    assert rc == 2
    assert err.startswith("bsl device-response: error: ") and needle in err
    assert len(err.strip().splitlines()) == 1 and not out_file.exists()


def test_fit_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str], trace_csv: Path) -> None:
    missing = tmp_path / "missing.csv"
    rc, _, err = _run(capsys, "fit", str(missing))
    assert rc == 2 and err == f"bsl fit: error: trace file {missing} does not exist\n"
    bad = tmp_path / "bad.csv"
    bad.write_text("device,cycle,pulse,polarity,conductance_S\n0,0,0,set,1e-5\n0,0,1,sett,2e-5\n")
    rc, _, err = _run(capsys, "fit", str(bad))
    assert rc == 2 and len(err.strip().splitlines()) == 1
    assert err.startswith("bsl fit: error: ") and f"{bad}, line 3, column 'polarity'" in err
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    rc, _, err = _run(capsys, "fit", str(empty))
    assert rc == 2 and "empty file" in err
    rc, _, err = _run(capsys, "fit", str(trace_csv), "--write-preset", str(tmp_path / "fitted.txt"))
    assert rc == 2 and "must end in .toml" in err
    with pytest.raises(SystemExit) as info:  # argparse rejects an unknown model itself
        main(["fit", str(trace_csv), "--model", "cubic"])
    assert info.value.code == 2 and "invalid choice: 'cubic'" in capsys.readouterr().err
