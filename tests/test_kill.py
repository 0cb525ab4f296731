"""A run killed with SIGKILL at random moments: the trace file always opens and holds
every batch up to the last completed one, and resuming again and again ends with
exactly the numbers of an uninterrupted run. Real subprocesses, real signals."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import pytest
from run_checks import assert_same_run, check_trace

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals"),
]

SCRIPT = """
import sys
import torch
torch.set_num_threads(1)
from bsl.config import TrainConfig
from bsl.train import resume, train

def report(step, epoch, stats):
    print(step, flush=True)  # called once the batch is on disk

out, mode = sys.argv[1], sys.argv[2]
if mode == "new":
    config = TrainConfig(dataset="digits", train_limit=1400, test_limit=100, layers="64", epochs=3,
                         batch_size=2, progress=False, out=out, seed=5, snapshot_every=40,
                         checkpoint_every=90, update_probability=0.3)
    train(config, on_step=report)
else:
    resume(out, on_step=report)
print("done", flush=True)
"""


def _start(script: Path, out: Path, mode: str) -> subprocess.Popen[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, str(script), str(out), mode], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def _check_trace(path: Path, last_reported: int) -> int:
    """The file opens and is whole up to the last reported batch; returns its batch count."""
    return check_trace(path, last_reported, batch_size=2)


def test_sigkill_at_random_moments_then_resume(tmp_path: Path) -> None:
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    reference = _start(script, tmp_path / "whole", "new")
    out, err = reference.communicate(timeout=600)
    assert reference.returncode == 0, err
    assert out.split()[-1] == "done"

    rng = random.Random(20261122)
    run = tmp_path / "killed"
    mode, kills, checked, resumed = "new", 0, 0, 0
    while True:
        resumed += mode == "resume"
        proc = _start(script, run, mode)
        assert proc.stdout is not None
        first = proc.stdout.readline()  # the process is up and has recorded its first batch
        if kills < 8 and first.strip() != "done":
            time.sleep(rng.uniform(0.0, 1.0))
            proc.send_signal(signal.SIGKILL)
            kills += 1
        rest, err = proc.communicate(timeout=600)
        lines = (first + rest).split()
        if proc.returncode == 0:
            assert lines[-1] == "done"
            break
        assert proc.returncode == -signal.SIGKILL, err
        reported = [int(x) for x in lines if x.isdigit()]
        if reported:
            _check_trace(run / "traces.h5", reported[-1])
            checked += 1
        if (run / "summary.json").exists():  # killed after finishing, before exiting
            break
        mode = "resume"
    assert kills >= 3 and checked >= 3
    a = json.loads((tmp_path / "whole" / "summary.json").read_text())
    b = json.loads((run / "summary.json").read_text())
    # resumes that the kept work went through (a session killed before its first
    # checkpoint leaves no trace in the count); every resume is in the events table
    assert 1 <= b["resumes"] <= resumed
    assert a["steps"] == b["steps"]
    assert_same_run(tmp_path / "whole", run)
    with h5py.File(run / "traces.h5", "r") as fb:
        resumes = [k for k in fb["events"]["kind"] if k == b"resume"]
        assert len(resumes) == resumed
