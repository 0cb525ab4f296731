"""Counting and messages of a run: resumes from the trace's events, the wall-clock
checkpoint cadence, evaluation progress, the per-epoch and final lines, run-file paths
relative to the run file, fresh default run folders, and what the figures say."""

from __future__ import annotations

import json
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg

import bsl.rundir
import bsl.train
from bsl.checkpoint import load_checkpoint
from bsl.cli import main
from bsl.config import TrainConfig, load_config_file, save_config
from bsl.evaluation import evaluate
from bsl.plots import learning_curves, pulses_per_epoch, weight_distributions
from bsl.report import backend_label, epoch_line, evaluation_noise, final_lines
from bsl.rundir import CHECKPOINT_FILE, prepare_run_dir
from bsl.runs import Run
from bsl.train import resume, train

pytestmark = pytest.mark.usefixtures("single_thread")

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "hil"
SMALL: dict[str, Any] = dict(
    dataset="digits", train_limit=240, test_limit=120, layers="16", epochs=3, batch_size=8,
    progress=False, seed=1, preset="rram", update_probability=0.3, dead_zone=0.2, anneal=1.0,
    checkpoint_every_s=0.0,
)
"""30 batches per epoch, 90 in all; no wall-clock checkpoints unless a test asks."""


class Crash(Exception):
    """Stands in for a failure in the middle of a run."""


def crash_at(step: int, kind: type[BaseException] = Crash) -> Any:
    def on_step(s: int, epoch: int, stats: Any) -> None:
        if s == step:
            raise kind(f"stopped at batch {s}")
    return on_step


def small(out: Path, **changes: Any) -> TrainConfig:
    return TrainConfig(**{**SMALL, "out": str(out), **changes})


def same_numbers(a: dict[str, Any], b: dict[str, Any]) -> None:
    for key in ("test_accuracy", "test_accuracy_stochastic", "train_accuracy", "test_accuracy_per_epoch",
                "pulses", "device_counters", "steps"):
        assert a[key] == b[key], key
    assert [e["train_loss"] for e in a["epochs"]] == [e["train_loss"] for e in b["epochs"]]


# -- 1. resumes come from the trace's events -----------------------------------------
def test_a_resume_lost_before_its_checkpoint_still_counts(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    with pytest.raises(Crash):
        train(small(run, checkpoint_every=15), on_step=crash_at(20))        # checkpoint at 15
    with pytest.raises(KeyboardInterrupt):                                   # dies before batch 30
        resume(run, on_step=crash_at(25, KeyboardInterrupt))
    with pytest.raises(Crash):
        resume(run, on_step=crash_at(50))                                    # checkpoints at 30, 45
    summary = resume(run).summary
    with Run(run) as r:
        kinds = [e["kind"] for e in r.events()]
        assert kinds.count("resume") == 3 == r.resumes()
    # the checkpoint's own count missed the second resume (killed before it saved one)
    assert load_checkpoint(run / CHECKPOINT_FILE)["loop"]["resumes"] == 2
    assert summary["resumes"] == 3
    assert json.loads((run / "summary.json").read_text())["resumes"] == 3
    assert main(["inspect", str(run)]) == 0
    assert "3 resume(s)" in capsys.readouterr().out


def test_without_a_trace_the_checkpoint_counts_resumes(tmp_path: Path) -> None:
    run = tmp_path / "run"
    with pytest.raises(Crash):
        train(small(run, trace=False, epochs=2), on_step=crash_at(40))
    assert resume(run).summary["resumes"] == 1


# -- 2. wall-clock checkpoints --------------------------------------------------------
def _checkpoint_positions(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """Record ``(step, position)`` of every checkpoint the loop writes."""
    seen: list[tuple[int, int]] = []
    real = bsl.train.save_checkpoint

    def spy(path: Path, state: dict[str, Any]) -> Path:
        seen.append((state["loop"]["step"], state["loop"]["position"]))
        return real(path, state)

    monkeypatch.setattr(bsl.train, "save_checkpoint", spy)
    return seen


def test_wall_clock_cadence_checkpoints_mid_epoch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _checkpoint_positions(monkeypatch)
    train(small(tmp_path / "off", checkpoint_every_s=0.0))
    assert all(position == 0 for _, position in seen)            # start and epoch ends only
    assert len(seen) == 1 + SMALL["epochs"]
    seen.clear()
    train(small(tmp_path / "slow", checkpoint_every_s=1e9))
    assert len(seen) == 1 + SMALL["epochs"]
    seen.clear()
    train(small(tmp_path / "every", checkpoint_every_s=1e-9))     # due after every batch
    mid = [step for step, position in seen if 0 < position < SMALL["train_limit"]]
    assert mid and len(mid) == 90 - 3                              # all but the epochs' last batches
    assert 17 in mid


def test_wall_clock_checkpoints_keep_resume_exact(tmp_path: Path) -> None:
    whole = train(small(tmp_path / "whole")).summary
    with pytest.raises(Crash):
        train(small(tmp_path / "broken", checkpoint_every_s=1e-9), on_step=crash_at(47))
    assert load_checkpoint(tmp_path / "broken" / CHECKPOINT_FILE)["loop"]["step"] == 47  # mid-epoch 2
    resumed = resume(tmp_path / "broken").summary
    same_numbers(whole, resumed)
    with Run(tmp_path / "whole") as a, Run(tmp_path / "broken") as b:
        np.testing.assert_array_equal(a.steps()["loss"], b.steps()["loss"])
        np.testing.assert_array_equal(a.pulses()["set"], b.pulses()["set"])


@pytest.mark.parametrize("value", [-1.0, float("inf"), float("nan")])
def test_checkpoint_every_s_refuses_bad_values(value: float) -> None:
    with pytest.raises(ValueError, match="checkpoint_every_s") as info:
        TrainConfig(checkpoint_every_s=value)
    assert "\n" not in str(info.value)


# -- 3. evaluation progress -------------------------------------------------------------
def test_evaluation_shows_a_progress_bar(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    train(small(tmp_path / "run", epochs=1, progress=True, eval_samples=3))
    err = capsys.readouterr().err
    assert "evaluating test (deterministic)" in err
    assert "evaluating test (stochastic, K=3)" in err and "/360" in err  # 120 test samples x 3 passes
    assert "evaluating train (deterministic)" in err


def test_progress_does_not_change_an_evaluation(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    net = train(small(tmp_path / "run", rule="sgd", lr=2.0, gain_scale=4.0, epochs=1)).network
    x, y = torch.rand(50, 1, 8, 8, generator=torch.Generator().manual_seed(0)), torch.arange(50) % 10
    for mode in ("deterministic", "stochastic"):
        quiet = evaluate(net, x, y, mode, 4, seed=5)
        shown = evaluate(net, x, y, mode, 4, seed=5, progress=True, what="check")
        assert quiet == shown
    assert "evaluating check (stochastic, K=4)" in capsys.readouterr().err
    passes: list[int] = []
    net.predict(x, "stochastic", 4, torch.Generator().manual_seed(1), on_pass=lambda: passes.append(1))
    assert len(passes) == 4


# -- 4. per-epoch and final lines ---------------------------------------------------------
def test_epoch_and_final_lines_say_what_they_measure(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    args = ["train", "--dataset", "digits", "--train-limit", "240", "--test-limit", "120", "--layers", "16",
            "--epochs", "2", "--seed", "1", "--update-probability", "0.3", "--out", str(out)]
    assert main(args) == 0
    text = capsys.readouterr().out
    s = json.loads((out / "summary.json").read_text())
    last = s["epochs"][-1]
    assert (f"epoch 2/2: test {last['test_accuracy']:.4f} (deterministic inference), train "
            f"{last['train_running_accuracy']:.4f} (running mean over the epoch's binary stochastic "
            "passes)") in text
    lines = text.strip().splitlines()
    assert lines[-1].startswith("training ") and lines[-1].endswith(f"run folder {out}")
    assert f"{s['samples_per_s']:.0f} samples/s" in lines[-1]
    assert (f"final test accuracy: {s['test_accuracy']:.4f} deterministic (headline, --inference), "
            f"{s['test_accuracy_stochastic']:.4f} stochastic (K=10 binary passes)") in lines
    assert (f"final train accuracy: {s['train_accuracy']:.4f} (deterministic inference over the 240 "
            "training samples, after training)") in lines
    note = [line for line in lines if "last epoch's test" in line]
    assert bool(note) == (last["test_accuracy"] != s["test_accuracy"])
    assert all("2 % read noise" in line for line in note)


def _summary(**changes: Any) -> dict[str, Any]:
    config = TrainConfig(**{**SMALL, "out": "x"}).to_dict()
    base = {"config": config, "inference": "deterministic", "eval_samples": 10, "test_accuracy": 0.9,
            "test_accuracy_deterministic": 0.9, "test_accuracy_stochastic": 0.85, "train_accuracy": 0.95,
            "dataset": {"train": 240}, "epochs": [{"test_accuracy": 0.92}], "samples_per_s": 1000.0,
            "train_wall_s": 2.0, "wall_s": 3.0, "resumes": 0}
    return {**base, **changes}


def test_final_lines_explain_a_differing_last_epoch() -> None:
    lines = final_lines(_summary(), "runs/x")
    assert lines[-1] == "training 1000 samples/s over 2.0 s, wall 3.0 s; run folder runs/x"
    assert "the last epoch's test 0.9200 is another evaluation of the same weights: each evaluation reads " \
           "the arrays anew, with 2 % read noise" in lines[2]
    same = final_lines(_summary(epochs=[{"test_accuracy": 0.9}]), "runs/x")
    assert len(same) == 3                                      # nothing to explain
    float_run = _summary(config={**_summary()["config"], "rule": "sgd"})
    assert len(final_lines(float_run, "runs/x")) == 3          # float weights read exactly
    resumed = final_lines(_summary(resumes=2), "runs/x")[-1]
    assert "resumed 2 time(s)" in resumed


def test_final_lines_of_an_instrument_run() -> None:
    config = {**_summary()["config"], "device": "visa", "inference": "stochastic"}
    lines = final_lines(_summary(config=config, inference="stochastic", eval_samples=4, test_accuracy=0.7,
                                 test_accuracy_deterministic=None, test_accuracy_stochastic=0.7), "r")
    assert lines[0] == ("final test accuracy: 0.7000 stochastic (headline, --inference; K=4 binary passes), "
                        "deterministic not evaluated on instruments (analog inputs are read level by level)")
    assert "measures the devices anew; stochastic inference draws new binary samples" in lines[2]
    noiseless = {**config, "preset": "ideal", "device": "sim", "inference": "deterministic"}
    assert evaluation_noise(noiseless) == ""


def test_epoch_line_for_an_analog_rule() -> None:
    config = {"epochs": 5, "inference": "stochastic", "rule": "manhattan"}
    line = epoch_line({"epoch": 3, "test_accuracy": 0.5, "train_running_accuracy": 0.25}, config)
    assert line == ("epoch 3/5: test 0.5000 (stochastic inference), train 0.2500 (running mean over the "
                    "epoch's training passes)")


# -- 5. run-file paths, run folders ---------------------------------------------------------
def test_run_file_paths_are_relative_to_the_run_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "bench"
    folder.mkdir()
    for name in ("wiring.toml", "limits.toml"):
        shutil.copy(EXAMPLES / name, folder / name)
    (folder / "run.toml").write_text(
        '[train]\ndevice = "visa"\nwiring = "wiring.toml"\nlimits = "./limits.toml"\ndataset = "digits4"\n'
        'layers = "8"\ndata_dir = "data"\nout = "runs/a"\npreset = "rram"\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    values = load_config_file(Path("..") / "bench" / "run.toml")
    config = TrainConfig(**values)                              # validation reads wiring and limits
    assert Path(config.wiring).resolve() == folder / "wiring.toml"
    assert Path(config.limits).resolve() == folder / "limits.toml"
    assert Path(config.data_dir).resolve() == folder / "data"
    assert Path(config.out).resolve() == folder / "runs" / "a"
    assert config.preset == "rram"                              # a name, not a path
    absolute = load_config_file(_write(tmp_path / "abs.toml", f'wiring = "{folder / "wiring.toml"}"\n'))
    assert absolute["wiring"] == str(folder / "wiring.toml")
    preset_file = load_config_file(_write(folder / "p.toml", 'preset = "fit.toml"\n'))
    assert Path(preset_file["preset"]).resolve() == folder / "fit.toml"
    # the saved config.toml holds absolute paths: it reloads from any folder
    saved = save_config(config, tmp_path / "saved.toml")
    monkeypatch.chdir(tmp_path)
    assert TrainConfig(**load_config_file(saved)).wiring == str(folder / "wiring.toml")


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_example_run_file_loads_from_another_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    values = load_config_file(EXAMPLES / "run.toml")
    config = TrainConfig(**values)
    assert Path(config.wiring).resolve() == (EXAMPLES / "wiring.toml").resolve()
    assert Path(config.limits).resolve() == (EXAMPLES / "limits.toml").resolve()
    assert config.out == ""                                      # a fresh default folder every run


def test_flags_stay_relative_to_the_current_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "files").mkdir()
    run_file = _write(tmp_path / "files" / "run.toml",
                      '[train]\nrule = "sgd"\nlayers = "8"\nepochs = 1\ntrain_limit = 40\ntest_limit = 20\n'
                      'progress = false\nout = "from-file"\n')
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    assert main(["train", "--config", str(run_file), "--out", "from-flag"]) == 0
    assert (work / "from-flag" / "summary.json").is_file()
    assert main(["train", "--config", str(run_file)]) == 0
    assert (tmp_path / "files" / "from-file" / "summary.json").is_file()
    capsys.readouterr()


def test_default_run_folders_are_fresh_within_one_second(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    class Frozen(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> Frozen:
            return cls(2026, 1, 2, 3, 4, 5)

    monkeypatch.setattr(bsl.rundir, "datetime", Frozen)
    monkeypatch.chdir(tmp_path)
    folders = [prepare_run_dir("", "bsl-digits") for _ in range(3)]
    assert [f.name for f in folders] == ["bsl-digits-20260102-030405", "bsl-digits-20260102-030405-2",
                                         "bsl-digits-20260102-030405-3"]
    assert all(f.is_dir() and not any(f.iterdir()) for f in folders)


# -- 6. figures and inspect say where the weights lived ------------------------------------
def test_backend_labels() -> None:
    sim = {"rule": "bsl", "device": "sim", "preset": "rram", "scheme": "push_pull", "carry_period": 0}
    assert backend_label(sim) == "simulated crossbars (preset rram, push_pull)"
    assert backend_label({**sim, "rule": "sgd"}) == "float weights (no devices)"
    devices = [{"store": "crossbar", "crossbar": {"instruments": {
        "smu": "Keysight Technologies,B2912A,EMU0000001,emulator",
        "matrix": "Keithley Instruments Inc., Model 707B, EMU0000003, emulator"}}}]
    label = backend_label({**sim, "device": "visa"}, devices)
    assert label == ("instruments (smu B2912A EMU0000001, matrix Model 707B EMU0000003), nominal preset "
                     "rram, push_pull")


@pytest.fixture(scope="module")
def resumed_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("runs") / "resumed"
    with pytest.raises(Crash):
        train(small(run, checkpoint_every=10), on_step=crash_at(44))
    resume(run)
    return run


def _overlaps(fig: Any, a: Any, b: Any) -> bool:
    """Whether two drawn artists' boxes overlap (an axes' box: its data area)."""
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    return bool(a.get_window_extent(renderer).overlaps(b.get_window_extent(renderer)))


def test_learning_curves_mark_resumes_and_define_the_loss(resumed_run: Path) -> None:
    with Run(resumed_run) as run:
        fig = learning_curves(run)
    ax_acc, ax_loss = fig.axes
    FigureCanvasAgg(fig).draw()
    assert [t for t in ax_acc.get_xticks() if ax_acc.get_xlim()[0] <= t <= ax_acc.get_xlim()[1]] == [1, 2, 3]
    def resume_lines(ax: Any) -> list[float]:
        dotted = [line for line in ax.get_lines() if line.get_linestyle() == ":"]
        return [float(np.asarray(line.get_xdata())[0]) for line in dotted]

    assert resume_lines(ax_loss) == [40]                          # from the checkpoint at batch 40
    assert resume_lines(ax_acc) == [pytest.approx(40 / 30)]       # in epochs
    assert "binary cross-entropy" in ax_loss.get_title()
    assert any("t log p + (1 - t) log(1 - p)" in t.get_text() for t in fig.texts)
    assert "resumed 1x" in fig.get_suptitle() and "simulated crossbars (preset rram" in fig.get_suptitle()
    for ax in (ax_acc, ax_loss):
        legend = ax.get_legend()
        assert legend is not None and not _overlaps(fig, legend, ax)  # outside the data area


def test_weight_and_pulse_figures(resumed_run: Path) -> None:
    with Run(resumed_run) as run:
        weights, pulses, n_layers = weight_distributions(run), pulses_per_epoch(run), run.n_layers
    assert all(ax.get_xlabel() == "weight (G+ - G-) / (g_max - g_min)" for ax in weights.axes)
    assert all(not _overlaps(weights, weights.legends[0], ax) for ax in weights.axes)
    assert len(pulses.axes) == n_layers                          # one panel per layer
    assert "SET = RESET" in pulses.get_supxlabel()
    legend = pulses.axes[-1].get_legend()
    assert legend is not None and not any(_overlaps(pulses, legend, ax) for ax in pulses.axes)


def test_inspect_and_titles_name_the_instruments(resumed_run: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    fake = tmp_path / "bench-run"
    shutil.copytree(resumed_run, fake)
    with h5py.File(fake / "traces.h5", "r+") as f:
        config = json.loads(f.attrs["config"])
        f.attrs["config"] = json.dumps({**config, "device": "visa"})
        f.attrs["device"] = json.dumps([{"store": "crossbar", "crossbar": {
            "g_min_S": 1e-5, "g_max_S": 1e-4,
            "instruments": {"smu": "Keysight Technologies,B2912A,SN42,1.0"}}}] * 2)
    assert main(["inspect", str(fake)]) == 0
    text = capsys.readouterr().out
    assert "rule      bsl on instruments (smu B2912A SN42), nominal preset rram, push_pull" in text
    assert "1 resume(s)" in text
    with Run(fake) as run:
        assert "on instruments (smu B2912A SN42)" in learning_curves(run).get_suptitle()
