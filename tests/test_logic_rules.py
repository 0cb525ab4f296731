"""The logic-gate rules end to end on digits: learning, run files, resume, bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bsl.cli import main
from bsl.config import TrainConfig
from bsl.data import load_dataset
from bsl.logic.discrete import NET_FILE, DiscreteNet
from bsl.logic.packed import predict_packed
from bsl.runs import Run
from bsl.train import resume, train

pytestmark = pytest.mark.usefixtures("single_thread")


class Crash(RuntimeError):
    pass


def crash_at(step: int) -> Any:
    def on_step(s: int, epoch: int, stats: Any) -> None:
        if s == step:
            raise Crash(f"stop at batch {s}")
    return on_step


def config(out: Path, rule: str, **changes: Any) -> TrainConfig:
    values = {"rule": rule, "layers": "400,200", "batch_size": 32, "epochs": 6, "progress": False,
              "out": str(out), "anneal": 1.0, "adam_lr": 0.03, "straight_through_from": 0.5, **changes}
    return TrainConfig(**values)


@pytest.mark.parametrize("rule", ["difflogic", "lilogic", "compactlogic"])
def test_each_logic_rule_learns_digits_in_seconds_and_writes_its_circuit(tmp_path: Path, rule: str) -> None:
    result = train(config(tmp_path / "run", rule))
    s = result.summary
    assert s["test_accuracy_deterministic"] > 0.5  # chance is 0.1; the discretised circuit
    assert s["test_accuracy_stochastic"] > 0.6  # the relaxed network
    logic = s["logic"]
    assert logic["gates"] == 600 and logic["classes"] == 10 and logic["input_bits"] == 64
    assert sum(logic["gate_counts"]) == 600 and 1 <= logic["depth"] <= 2
    assert [f["kind"] for f in s["layer_facts"]] == ["logic", "logic"]
    net = DiscreteNet.load(result.run_dir / NET_FILE)  # the saved circuit is the one evaluated
    data = load_dataset("digits", seed=0)
    x = data.x_test.numpy().reshape(len(data.y_test), -1)
    accuracy = float(np.mean(predict_packed(net, x) == data.y_test.numpy()))
    assert accuracy == pytest.approx(s["test_accuracy_deterministic"])
    with Run(result.run_dir) as r:
        assert "gate_entropy" in r.snapshot_fields(0)
        assert len(r.snapshot_steps(0)) == 7  # the start and every epoch
        first, last = r.snapshot(0, 0)["gate_entropy"], r.snapshot(0, -1)["gate_entropy"]
        assert last.mean() < first.mean()  # choices become more decided


@pytest.mark.parametrize("rule", ["lilogic", "compactlogic"])
def test_a_resumed_logic_run_ends_with_the_numbers_of_an_uninterrupted_one(tmp_path: Path, rule: str) -> None:
    changes = {"epochs": 2, "checkpoint_every": 20, "check_every": 10, "freeze_tolerance": 0.05,
               "straight_through_from": 0.5}
    whole = train(config(tmp_path / "whole", rule, **changes)).summary
    with pytest.raises(Crash):
        train(config(tmp_path / "cut", rule, **changes), on_step=crash_at(55))
    again = resume(tmp_path / "cut").summary
    for key in ("test_accuracy", "test_accuracy_stochastic", "train_accuracy", "test_accuracy_per_epoch"):
        assert again[key] == whole[key], key
    assert [e["train_loss"] for e in again["epochs"]] == [e["train_loss"] for e in whole["epochs"]]
    assert again["logic"] == whole["logic"]
    if rule == "compactlogic":
        assert whole["logic"]["freezes"], "the test should cross a freeze"


def test_inspect_plot_energy_export_and_front_read_a_logic_run(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    run = train(config(tmp_path / "run", "difflogic", epochs=1)).run_dir
    assert main(["inspect", str(run)]) == 0
    assert "logic 64->400 gates, random" in capsys.readouterr().out
    assert main(["plot", str(run), "--out", str(tmp_path / "figs")]) == 0
    assert (tmp_path / "figs" / "choice_entropy.png").stat().st_size > 0
    assert main(["energy", str(run), "--json"]) == 0
    assert json.loads((run / "summary.json").read_text())["logic"]["net_file"] == NET_FILE
    c_file, v_file = tmp_path / "net.c", tmp_path / "net.v"
    assert main(["export-logic", str(run), "--c", str(c_file), "--verilog", str(v_file),
                 "--name", "digits"]) == 0
    assert "void digits(const uint64_t *in, uint64_t *out)" in c_file.read_text()
    assert "module digits" in v_file.read_text()
    from sims.logic_front import main as front

    assert front([str(run), "--out", str(tmp_path / "front")]) == 0
    assert (tmp_path / "front" / "logic_front.png").stat().st_size > 0
    assert "| difflogic | 400,200 | 600 |" in (tmp_path / "front" / "logic_front.md").read_text()
    assert main(["export-logic", str(run)]) == 2  # nothing asked for
    assert main(["export-logic", str(tmp_path / "none"), "--c", str(c_file)]) == 2


@pytest.mark.parametrize(("args", "message"), [
    (["--rule", "difflogic", "--layers", "400,205"], "do not split into 10 equal class groups"),
    (["--rule", "lilogic", "--layers", "100", "--candidates", "65"], "candidates = 65: must lie in [1, 64]"),
    (["--rule", "compactlogic", "--layers", "100", "--candidates", "65"], "candidates = 65: must lie in"),
    (["--rule", "lilogic", "--tau", "0"], "tau = 0.0: must be > 0"),
    (["--rule", "difflogic", "--connections", "slots"], "compactlogic"),
    (["--rule", "lilogic", "--layers", "c8k3s1,100"], "use --rule compactlogic"),
    (["--rule", "difflogic", "--thresholds", "0.5,0.2"], "increasing"),
])
def test_bad_logic_settings_get_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                    args: list[str], message: str) -> None:
    assert main(["train", *args, "--epochs", "1", "--out", str(tmp_path / "run"), "--progress", "false"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err
    assert not (tmp_path / "run" / "checkpoint.pt").exists()  # refused before anything was written


def test_compactlogic_trains_a_logic_convolution_on_digits(tmp_path: Path) -> None:
    s = train(config(tmp_path / "run", "compactlogic", layers="c8k3s1,400", epochs=4)).summary
    assert s["test_accuracy_deterministic"] > 0.4  # chance 0.1
    facts = s["layer_facts"][0]
    assert (facts["channels"], facts["window"], facts["out_hw"], facts["gates"]) == (8, 3, [6, 6], 8 * 36)
    assert s["logic"]["gates"] == 8 * 36 + 400
