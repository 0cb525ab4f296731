"""Resuming an instrument run checks the arrays (``bsl train --resume``, ``--reprogram``),
end to end through pyvisa-py and the emulator: restarted with its state file, the arrays
pass; restarted fresh (seeded devices), the resume is refused in one line until
``--reprogram`` programs them back to the snapshot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import h5py
import pytest

from bsl.cli import main
from bsl.config import TrainConfig, load_config_file
from bsl.train import resume, train
from devices.hil.emulator import Emulator

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("single_thread")]

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "hil"


def _emulator(state: Path, fresh: bool = False) -> Emulator:
    """Noise-free devices, so that a fresh restart differs from a trained array by whole steps."""
    emu = Emulator(EXAMPLES / "wiring.toml", preset="ideal", seed=0, init_spread=0.3, state=state,
                   fresh=fresh)
    emu.start()
    return emu


def _wiring(emu: Emulator, path: Path) -> Path:
    """The example wiring with this emulator's ports (rewritten at every restart)."""
    text = (EXAMPLES / "wiring.toml").read_text()
    text = text.replace("TCPIP::127.0.0.1::5025::SOCKET", emu.resources["smu"])
    path.write_text(text.replace("TCPIP::127.0.0.1::5026::SOCKET", emu.resources["matrix"]))
    return path


def _events(run_dir: Path) -> list[tuple[str, str]]:
    with h5py.File(run_dir / "traces.h5", "r") as f:
        rows = f["events"][:]
    return [(r["kind"].decode(), r["message"].decode()) for r in rows]


def _crash_at(step: int) -> Any:
    def on_step(at: int, epoch: int, stats: object) -> None:
        if at == step:
            raise KeyboardInterrupt
    return on_step


def test_resume_verifies_the_arrays(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state, wiring, run_dir = tmp_path / "emu.state.npz", tmp_path / "wiring.toml", tmp_path / "run"
    emu = _emulator(state)
    values = {**load_config_file(EXAMPLES / "run.toml"), "wiring": str(_wiring(emu, wiring)),
              "limits": str(EXAMPLES / "limits.toml"), "out": str(run_dir), "progress": False,
              "preset": "ideal", "epochs": 2, "train_limit": 48, "test_limit": 8, "eval_samples": 1,
              "checkpoint_every": 2}
    try:
        with pytest.raises(KeyboardInterrupt):
            train(TrainConfig(**values), on_step=_crash_at(8))  # 6 batches an epoch: snapshot at 6
    finally:
        emu.stop()
    # Restarted with its state: the same conductances, and the resume passes verification.
    emu = _emulator(state)
    try:
        assert emu.state_note.startswith("state: reloaded")
        _wiring(emu, wiring)
        with pytest.raises(KeyboardInterrupt):
            resume(run_dir, on_step=_crash_at(10))
    finally:
        emu.stop()
    kinds = [k for k, _ in _events(run_dir)]
    assert kinds[-3:] == ["resume", "resume_verify", "interrupted"]
    assert _events(run_dir)[-2][1].startswith("passed")
    # Restarted without its state (seeded devices): refused in one line, exit status 2.
    emu = _emulator(state, fresh=True)
    try:
        _wiring(emu, wiring)
        capsys.readouterr()
        assert main(["train", "--resume", str(run_dir), "--progress", "false"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1, err
        assert err.startswith("bsl train: error: resume refused: layer 0: "), err
        assert "devices differ from the snapshot at batch 6 beyond tolerance (median" in err
        assert ("the array is not in the state this run left it in; re-program it from the snapshot: "
                f"bsl train --resume {run_dir} --reprogram, or start a new run") in err
        assert emu.log.final_state_safe()
        (verify, verdict), (refused, _) = _events(run_dir)[-2:]
        assert verify == "resume_verify" and verdict.startswith("failed") and refused == "resume_refused"
        # --reprogram: program-and-verify to the snapshot, verified again, and the run finishes.
        assert main(["train", "--resume", str(run_dir), "--progress", "false", "--reprogram"]) == 0
        assert emu.log.final_state_safe()
    finally:
        emu.stop()
    events = _events(run_dir)
    kinds = [k for k, _ in events]
    tail = kinds[kinds.index("reprogram") - 2:]
    assert tail[:5] == ["resume", "resume_verify", "reprogram", "reprogram", "resume_verify"], tail
    assert tail[-1] == "finish"
    # The refused resume is not a continuation: the summary counts the two that were.
    assert kinds.count("resume") == 3 and kinds.count("resume_refused") == 1
    assert json.loads((run_dir / "summary.json").read_text())["resumes"] == 2
    assert events[kinds.index("reprogram") + 2][1].startswith("passed after re-programming")
    with h5py.File(run_dir / "traces.h5", "r") as f:
        ops = f["operations"][:]
    assert (ops["op"] == b"pulse").sum() > 0 and ops["step"].min() >= 0


def test_reprogram_needs_resume_and_an_instrument_run(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--reprogram", "--epochs", "1"]) == 2
    assert "--reprogram goes with --resume" in capsys.readouterr().err
    run_dir = tmp_path / "sim"
    with pytest.raises(KeyboardInterrupt):
        train(TrainConfig(dataset="digits4", layers="4", train_limit=16, test_limit=8, eval_samples=1,
                          progress=False, out=str(run_dir)), on_step=_crash_at(1))
    assert main(["train", "--resume", str(run_dir), "--reprogram"]) == 2
    assert "--reprogram is for runs on instruments" in capsys.readouterr().err
