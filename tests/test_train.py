"""The training loop end to end (short digits runs), its outputs, and ``bsl train`` errors.

Every run states its learning settings explicitly (defaults may be retuned), keeps to a
few hundred digits, and writes into ``tmp_path``.
"""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bsl.cli import main
from bsl.config import TrainConfig, config_names, load_config_file, save_config
from bsl.rules import RULES
from bsl.train import RunDirError, prepare_run_dir, train

pytestmark = pytest.mark.usefixtures("single_thread")  # small tensors: threads only wait

TINY: dict[str, Any] = dict(
    dataset="digits", train_limit=600, test_limit=300, layers="32", epochs=5, batch_size=8,
    device="sim", scheme="push_pull", inference="deterministic", eval_samples=10,
    output_derivative=False, progress=False, seed=0,
)
"""Shared by every short run: 600 training digits, one hidden layer of 32, 5 epochs."""
if "anneal" in config_names():
    TINY["anneal"] = 1.0  # a constant rate in these short runs

LEARNING_SETTINGS: dict[str, dict[str, Any]] = {
    "sgd": dict(lr=2.0, gain_scale=4.0, init_spread=0.3),
    "bsl": dict(preset="rram", gain_scale=16.0, update_probability=0.3, dead_zone=0.2,
                batch_reduce="sum", init_spread=0.3),
    "manhattan": dict(preset="rram", gain_scale=8.0, update_probability=1.0, dead_zone=0.2,
                      batch_reduce="sum", init_spread=0.3),
    **{rule: dict(layers="400,200", batch_size=16) for rule in ("difflogic", "lilogic", "compactlogic")},
    "bold": dict(preset="binary_ideal", variation_lr=0.1),
    **{rule: dict(binary_lr=0.01) for rule in ("boolnet", "bireal")},
}
"""Per rule: settings with which 5 epochs on 600 digits learn well above chance (0.1)."""


def make_config(rule: str, out: Path, **changes: Any) -> TrainConfig:
    if rule not in LEARNING_SETTINGS:
        pytest.fail(f"rule {rule!r} has no short-run settings in LEARNING_SETTINGS: add some")
    values = {**TINY, **LEARNING_SETTINGS[rule], "rule": rule, "out": str(out), **changes}
    return TrainConfig(**values)


@pytest.mark.parametrize("rule", sorted(RULES))
def test_short_run_learns(rule: str, tmp_path: Path) -> None:
    config = make_config(rule, tmp_path / "run")
    s = train(config).summary
    assert s["dataset"] == {
        "name": "digits", "train": 600, "test": 300, "input_shape": [1, 8, 8], "classes": 10,
    }
    assert len(s["test_accuracy_per_epoch"]) == 5
    assert s["test_accuracy"] > 0.5, s["test_accuracy_per_epoch"]
    assert s["train_accuracy"] > 0.5
    assert s["test_accuracy_stochastic"] > 0.3
    assert s["test_accuracy"] == s["test_accuracy_deterministic"]
    # The loss falls over the run.
    assert s["epochs"][-1]["train_loss"] < s["epochs"][0]["train_loss"]
    pulses = [p["set"] + p["reset"] for p in s["pulses"]]
    assert len(pulses) == 2
    if RULES[rule].uses_devices:
        assert all(n > 0 for n in pulses)
        assert all(p["set"] == p["reset"] for p in s["pulses"])  # push_pull pairs them
    else:
        assert pulses == [0, 0]
        assert s["device_counters"] == [{}, {}]


def _numbers(s: dict[str, Any]) -> tuple[Any, ...]:
    return (
        s["test_accuracy"], s["test_accuracy_stochastic"], s["train_accuracy"], s["test_accuracy_per_epoch"],
        s["pulses"], [e["train_loss"] for e in s["epochs"]], s["device_counters"],
    )


@pytest.mark.parametrize("rule", ["bsl", "sgd"])
def test_runs_are_reproducible_per_seed(rule: str, tmp_path: Path) -> None:
    runs = [
        train(make_config(rule, tmp_path / f"run{i}", seed=seed, epochs=2, train_limit=300)).summary
        for i, seed in enumerate((4, 4, 5))
    ]
    assert _numbers(runs[0]) == _numbers(runs[1])
    assert _numbers(runs[0]) != _numbers(runs[2])
    if rule == "bsl":
        assert runs[0]["pulses"] != runs[2]["pulses"]


def test_summary_and_config_files(tmp_path: Path) -> None:
    config = make_config("bsl", tmp_path / "out" / "run", layers="c4k3s2,16", epochs=2, train_limit=120,
                         test_limit=50, seed=3)
    result = train(config)
    assert result.run_dir == tmp_path / "out" / "run"
    summary = json.loads((result.run_dir / "summary.json").read_text())
    assert summary == result.summary
    required = {"test_accuracy", "train_accuracy", "test_accuracy_per_epoch", "samples_per_s", "wall_s",
                "pulses", "config", "seed", "versions"}
    assert required <= set(summary)
    for key in ("test_accuracy", "train_accuracy"):
        assert 0.0 <= summary[key] <= 1.0
    assert len(summary["test_accuracy_per_epoch"]) == 2
    assert all(0.0 <= a <= 1.0 for a in summary["test_accuracy_per_epoch"])
    assert summary["samples_per_s"] > 0 and math.isfinite(summary["samples_per_s"])
    assert summary["wall_s"] > 0
    assert len(summary["pulses"]) == len(result.network.layers) == 3
    for layer_pulses, counters in zip(summary["pulses"], summary["device_counters"], strict=True):
        assert set(layer_pulses) == {"set", "reset"}
        assert layer_pulses["set"] == counters["set_pulses"] > 0
        assert layer_pulses["reset"] == counters["reset_pulses"]
    assert summary["layers"][0].startswith("conv 1x8x8 k3 s2")
    assert summary["config"] == config.to_dict()
    assert summary["seed"] == 3
    for package in ("memristor-bsl", "python", "torch", "numpy"):
        assert summary["versions"][package]
    # The saved run file reloads to the very same configuration.
    reloaded = TrainConfig(**load_config_file(result.run_dir / "config.toml"))
    assert reloaded == config


def test_config_file_round_trip_of_every_field(tmp_path: Path) -> None:
    config = make_config("manhattan", tmp_path / 'odd "name"\\run', data_dir="", preset="ideal", lr=0.25,
                         scheme="set_only", inference="stochastic")
    path = save_config(config, tmp_path / "run.toml")
    assert TrainConfig(**load_config_file(path)) == config
    # A file without a [train] table holds the fields at top level.
    flat = tmp_path / "flat.toml"
    flat.write_text('rule = "sgd"\nepochs = 3\nlr = 1.5\n')
    assert load_config_file(flat) == {"rule": "sgd", "epochs": 3, "lr": 1.5}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("rule", "nope"), ("epochs", 0), ("batch_size", 0), ("update_probability", 0.0),
        ("update_probability", 1.5), ("dead_zone", 1.0), ("dead_zone", -0.1), ("lr", 0.0),
        ("gain_scale", -1.0), ("init_spread", 1.5), ("batch_reduce", "mean"), ("inference", "mc"),
        ("layers", "64,c8k3"), ("epochs", 2.5), ("progress", 1),
    ],
)
def test_config_refuses_bad_values(field: str, value: Any) -> None:
    with pytest.raises(ValueError, match=field):
        TrainConfig(**{field: value})


@pytest.mark.parametrize("field", ["lr", "gain_scale", "update_probability", "init_spread", "dead_zone"])
@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_config_refuses_non_finite_rates(field: str, value: float) -> None:
    """A NaN or infinite rate or gain would silently turn every weight into NaN."""
    with pytest.raises(ValueError, match=field):
        TrainConfig(**{field: value})


def test_prepare_run_dir_refuses_unwritable_folder(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(RunDirError, match="not writable"):
        prepare_run_dir(str(blocker / "run"), "sgd-digits")
    with pytest.raises(RunDirError, match="not writable"):
        prepare_run_dir(str(blocker), "sgd-digits")
    with pytest.raises(RunDirError, match="not writable"):  # through train(), before any work
        train(make_config("sgd", blocker / "run"))


# -- the command line -------------------------------------------------------------------------


def cli_args(out: Path, *extra: str) -> list[str]:
    """A tiny explicit ``bsl train`` command line."""
    return [
        "train", "--dataset", "digits", "--train-limit", "64", "--test-limit", "32", "--layers", "8",
        "--epochs", "1", "--batch-size", "16", "--rule", "sgd", "--lr", "2.0", "--gain-scale", "4.0",
        "--update-probability", "0.5", "--dead-zone", "0.2", "--init-spread", "0.3",
        "--preset", "rram", "--inference", "deterministic", "--progress", "false", "--out", str(out), *extra,
    ]


def _write_idx(path: Path, array: np.ndarray) -> None:
    a = np.ascontiguousarray(array, dtype=np.uint8)
    raw = bytes([0, 0, 8, a.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in a.shape) + a.tobytes()
    path.write_bytes(gzip.compress(raw))


def _idx_folder(folder: Path, test_hw: tuple[int, int] = (8, 8)) -> Path:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    _write_idx(folder / "train-images-idx3-ubyte.gz", rng.integers(0, 256, (40, 8, 8)))
    _write_idx(folder / "train-labels-idx1-ubyte.gz", np.arange(40) % 3)
    _write_idx(folder / "t10k-images-idx3-ubyte.gz", rng.integers(0, 256, (12, *test_hw)))
    _write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.arange(12) % 3)
    return folder


def _garbage_file(folder: Path) -> str:
    _idx_folder(folder)
    (folder / "train-images-idx3-ubyte.gz").write_bytes(b"this is not gzip data")
    return "train-images-idx3-ubyte.gz"


def _damaged_stream(folder: Path) -> str:
    _idx_folder(folder)
    path = folder / "t10k-images-idx3-ubyte.gz"
    gz = bytearray(path.read_bytes())
    gz[12] ^= 0xFF  # the first deflate block header
    path.write_bytes(bytes(gz))
    return "t10k-images-idx3-ubyte.gz"


def _mismatched_sizes(folder: Path) -> str:
    _idx_folder(folder, test_hw=(7, 9))
    return "7"


def _config_file(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "run.toml"
    path.write_text(body)
    return path


def _expect_usage_error(capsys: pytest.CaptureFixture[str], argv: list[str], *needles: str) -> str:
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 2, captured
    assert "Traceback" not in captured.err
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("bsl train: error: ")
    for needle in needles:
        assert needle in lines[0]
    return lines[0]


def test_cli_unknown_rule(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _expect_usage_error(capsys, cli_args(tmp_path / "run", "--rule", "hebb"), "rule", "'hebb'")
    assert not (tmp_path / "run").exists(), "a refused config starts no run"


def test_cli_unknown_preset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _expect_usage_error(capsys, cli_args(tmp_path / "run", "--rule", "bsl", "--preset", "unobtainium"),
                        "preset", "'unobtainium'")


def test_cli_missing_preset_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.toml"
    _expect_usage_error(capsys, cli_args(tmp_path / "run", "--rule", "bsl", "--preset", str(missing)),
                        str(missing))


@pytest.mark.parametrize(("layers", "needle"), [("c4k9", "kernel 9 is larger than its 8x8 input"),
                                                 ("16,c4k3", "convolution after a dense layer"),
                                                 ("0", "'0'")])
def test_cli_layers_not_matching_data(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                      layers: str, needle: str) -> None:
    _expect_usage_error(capsys, cli_args(tmp_path / "run", "--layers", layers), needle)


@pytest.mark.parametrize("damage", [_garbage_file, _damaged_stream, _mismatched_sizes])
def test_cli_corrupt_idx_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str], damage: Any) -> None:
    needle = damage(tmp_path / "idx")
    argv = cli_args(tmp_path / "run", "--dataset", "idx", "--data-dir", str(tmp_path / "idx"),
                    "--train-limit", "0", "--test-limit", "0")
    _expect_usage_error(capsys, argv, needle)


def test_cli_missing_idx_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _expect_usage_error(capsys, cli_args(tmp_path / "run", "--dataset", "idx", "--data-dir",
                                         str(tmp_path / "nothing-here")), "train-images-idx3-ubyte.gz")


def test_cli_unwritable_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "plain-file"
    blocker.write_text("x")
    _expect_usage_error(capsys, cli_args(blocker / "run"), str(blocker / "run"), "not writable")


def test_cli_config_with_unknown_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = _config_file(tmp_path, '[train]\nrule = "sgd"\nlearning_rate = 0.1\n')
    _expect_usage_error(capsys, cli_args(tmp_path / "run", "--config", str(cfg)), "learning_rate", str(cfg))


def test_cli_config_not_toml_or_missing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = _config_file(tmp_path, "[train\nrule = sgd\n")
    _expect_usage_error(capsys, cli_args(tmp_path / "run", "--config", str(cfg)), "not valid TOML")
    _expect_usage_error(capsys, cli_args(tmp_path / "run", "--config", str(tmp_path / "none.toml")),
                        "does not exist")


def test_cli_config_with_bad_value_type(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = _config_file(tmp_path, '[train]\nseed = "three"\n')  # a field cli_args does not set
    _expect_usage_error(capsys, cli_args(tmp_path / "run", "--config", str(cfg)), "seed", "'three'")


def test_cli_successful_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    code = main(cli_args(out))
    captured = capsys.readouterr()
    assert code == 0, captured.err
    lines = captured.out.strip().splitlines()
    assert lines[-1].endswith(f"run folder {out}")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["config"]["rule"] == "sgd" and summary["config"]["layers"] == "8"
    assert lines[0].startswith(f"final test accuracy: {summary['test_accuracy']:.4f} ")
    assert captured.err == ""


def test_cli_flags_override_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = _config_file(tmp_path, '[train]\nrule = "manhattan"\nepochs = 3\nlayers = "4"\nseed = 7\n')
    out = tmp_path / "run"
    assert main(cli_args(out, "--config", str(cfg), "--epochs", "1")) == 0
    capsys.readouterr()
    config = json.loads((out / "summary.json").read_text())["config"]
    # cli_args gives --rule sgd and --layers 8: flags win; seed comes from the file.
    assert (config["rule"], config["epochs"], config["layers"], config["seed"]) == ("sgd", 1, "8", 7)
    assert TrainConfig(**load_config_file(out / "config.toml")).to_dict() == config
