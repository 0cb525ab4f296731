"""The trace's ``steps`` table grows in preallocated segments: rows read back in order
across segments, resume clears rows across segment boundaries, layout-1 files (one table
sized for the whole run) are still read and continued, and a run SIGKILLed at random
moments leaves a whole file. Segments are made small here so that runs span many."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from bsl import traces
from bsl.config import TrainConfig
from bsl.runs import Run
from bsl.traces import SEGMENTS, TraceError, TraceWriter
from bsl.train import resume, train

pytestmark = pytest.mark.usefixtures("single_thread")

SMALL: dict[str, Any] = dict(
    dataset="digits", train_limit=240, test_limit=120, layers="16", epochs=3, batch_size=8,
    progress=False, seed=1, preset="rram", update_probability=0.3, dead_zone=0.2, anneal=1.0,
)
FIELDS = ("step", "epoch", "samples", "correct", "loss", "set_pulses", "reset_pulses")


def _writer(path: Path, segment_rows: int) -> TraceWriter:
    return TraceWriter.create(path, attrs={}, layers=[{}, {}], snapshot_fields=[["g_plus"], ["g_plus"]],
                              shapes=[(3, 2), (2, 2)], total_steps=1000, segment_rows=segment_rows)


def _write(writer: TraceWriter, first: int, last: int) -> None:
    for s in range(first, last + 1):
        writer.step(s, 0, 8, s % 8, 1.0 / s, np.full((2, 2), 10 * s, dtype=np.int64))


def _read_elsewhere(path: Path, tmp: Path) -> np.ndarray:
    """``/steps`` as another process sees it (plain h5py, no file locking)."""
    code = ("import sys, h5py, numpy as np; f = h5py.File(sys.argv[1], 'r', locking=False); "
            "np.save(sys.argv[2], f['steps'][:])")
    subprocess.run([sys.executable, "-c", code, str(path), str(tmp / "rows.npy")], check=True, timeout=60)
    return np.load(tmp / "rows.npy")


def test_rows_span_segments_and_resume_clears_across_them(tmp_path: Path) -> None:
    path = tmp_path / "traces.h5"
    writer = _writer(path, segment_rows=3)
    _write(writer, 1, 10)
    rows = _read_elsewhere(path, tmp_path)  # while the writer is open
    writer.close()
    assert rows["step"].tolist() == [*range(1, 11), 0, 0]  # 4 segments of 3, written rows first
    assert rows["set_pulses"][:, 0].tolist() == [10] * 10 + [0, 0]  # per-batch differences
    with h5py.File(path, "r") as f:
        assert f["steps"].is_virtual and sorted(f[SEGMENTS], key=int) == ["0", "1", "2", "3"]
        assert f.attrs["layout_version"] == 2 and f["steps"].attrs["segment_rows"] == 3
    writer = TraceWriter.reopen(path, steps=4, epochs=0)  # checkpoint inside segment 1
    with pytest.raises(TraceError, match="gap"):
        writer.step(9, 0, 8, 1, 0.1, np.zeros((2, 2), dtype=np.int64))
    _write(writer, 5, 13)  # rewrites segments 1-3 and grows a fifth
    writer.close()
    with h5py.File(path, "r") as f:
        steps = f["steps"][:]
        assert sorted(f[SEGMENTS], key=int) == ["0", "1", "2", "3", "4"]
        kinds = [k.decode() for k in f["events"]["kind"]]
    assert steps["step"].tolist() == [*range(1, 14), 0, 0]
    assert steps["loss"][:13].tolist() == pytest.approx([1.0 / s for s in range(1, 14)])
    assert steps["correct"][:13].tolist() == [s % 8 for s in range(1, 14)]
    assert kinds == ["resume"]


def test_segment_rows_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match="segment_rows = 0"):
        _writer(tmp_path / "traces.h5", segment_rows=0)


def stop_at(step: int) -> Any:
    def on_step(s: int, epoch: int, stats: Any) -> None:
        if s == step:
            raise RuntimeError(f"stopped at batch {s}")
    return on_step


def _same_steps(a: Path, b: Path) -> None:
    with Run(a) as ra, Run(b) as rb:
        sa, sb = ra.steps(), rb.steps()
        assert len(sa["step"]) == len(sb["step"]) == ra.summary["steps"]  # type: ignore[index]
        for name in FIELDS:
            np.testing.assert_array_equal(sa[name], sb[name], err_msg=name)


def test_training_run_across_segments_and_resume_at_a_boundary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(traces, "SEGMENT_ROWS", 7)
    whole = train(TrainConfig(**{**SMALL, "out": str(tmp_path / "whole"), "checkpoint_every": 20}))
    with Run(whole.run_dir) as run:
        steps = run.steps()
        np.testing.assert_array_equal(steps["step"], np.arange(1, 91))
        np.testing.assert_array_equal(steps["epoch"], np.repeat([0, 1, 2], 30))
        assert steps["set_pulses"].sum(0).tolist() == [p["set"] for p in whole.summary["pulses"]]
        assert run.pulses(per="epoch")["set"].sum() == steps["set_pulses"].sum()
        assert len(run.file[SEGMENTS]) == 13  # ceil(90 / 7)
    broken = TrainConfig(**{**SMALL, "out": str(tmp_path / "broken"), "checkpoint_every": 20})
    with pytest.raises(RuntimeError, match="stopped"):  # checkpoint at 40: segment 5 (rows 35-41)
        train(broken, on_step=stop_at(47))  # batch 47 is in segment 6 (rows 42-48)
    resume(tmp_path / "broken")
    _same_steps(tmp_path / "whole", tmp_path / "broken")
    with Run(tmp_path / "broken") as run:
        resumed = [e["message"] for e in run.events() if e["kind"] == "resume"]
        assert len(resumed) == 1 and "7 batch record(s)" in resumed[0]  # batches 41-47


def _to_layout_1(path: Path) -> int:
    """Rewrite a trace file as layout version 1 (one contiguous ``/steps`` for the whole
    run, as earlier releases wrote it); returns the table's rows."""
    with h5py.File(path, "r+") as f:
        table = f["steps"][:]
        attrs = dict(f["steps"].attrs)
        del f["steps"], f[SEGMENTS]
        f.create_dataset("steps", data=table)
        for key in ("unit_time", "unwritten_rows"):
            f["steps"].attrs[key] = attrs[key]
        f.attrs["layout_version"] = 1
    return len(table)


def test_layout_1_files_are_read_and_continued(tmp_path: Path) -> None:
    done = train(TrainConfig(**{**SMALL, "out": str(tmp_path / "new"), "epochs": 1}))
    _to_layout_1(done.run_dir / "traces.h5")
    with Run(done.run_dir) as run:
        assert run.attrs["layout_version"] == 1
        np.testing.assert_array_equal(run.steps()["step"], np.arange(1, 31))
        assert run.pulses(per="epoch")["set"].sum(0).tolist() == [p["set"] for p in done.summary["pulses"]]

    with pytest.raises(RuntimeError, match="stopped"):
        train(TrainConfig(**{**SMALL, "out": str(tmp_path / "old"), "checkpoint_every": 10}),
              on_step=stop_at(25))
    assert _to_layout_1(tmp_path / "old" / "traces.h5") == 90  # an interrupted run of an earlier release
    resume(tmp_path / "old")
    train(TrainConfig(**{**SMALL, "out": str(tmp_path / "whole"), "checkpoint_every": 10}))
    _same_steps(tmp_path / "whole", tmp_path / "old")
    with h5py.File(tmp_path / "old" / "traces.h5", "r") as f:
        assert f.attrs["layout_version"] == 1 and not f["steps"].is_virtual
    writer = TraceWriter.reopen(tmp_path / "old" / "traces.h5", steps=90, epochs=3)
    try:
        with pytest.raises(TraceError, match="holds 90 batches"):  # a layout-1 table does not grow
            writer.step(91, 3, 8, 1, 0.1, np.zeros((2, 2), dtype=np.int64))
    finally:
        writer.close()


KILL_SCRIPT = """
import sys
import torch
torch.set_num_threads(1)
from bsl import traces
from bsl.config import TrainConfig
from bsl.train import resume, train
traces.SEGMENT_ROWS = 16

def report(step, epoch, stats):
    print(step, flush=True)  # called once the batch is on disk

out, mode = sys.argv[1], sys.argv[2]
if mode == "new":
    train(TrainConfig(dataset="digits", train_limit=1000, test_limit=50, layers="16", epochs=2, batch_size=2,
                      progress=False, out=out, seed=3, checkpoint_every=70), on_step=report)
else:
    resume(out, on_step=report)
print("done", flush=True)
"""


def _check_whole(path: Path, reported: int) -> None:
    with h5py.File(path, "r") as f:
        table = f["steps"][:]
        n = int(np.count_nonzero(table["step"]))
        assert n >= reported and not table[n:]["step"].any()
        np.testing.assert_array_equal(table["step"][:n], np.arange(1, n + 1))
        assert len(table) == 16 * len(f[SEGMENTS]) and len(table) - n < 16  # no segment made early


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")
def test_sigkill_while_segments_grow(tmp_path: Path) -> None:
    script = tmp_path / "run.py"
    script.write_text(KILL_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def start(out: Path, mode: str) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, str(script), str(out), mode], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=env)

    reference = start(tmp_path / "whole", "new")
    assert reference.communicate(timeout=300)[0].split()[-1] == "done"
    rng, mode, kills, checked = random.Random(11), "new", 0, 0
    while True:
        proc = start(tmp_path / "killed", mode)
        assert proc.stdout is not None
        first = proc.stdout.readline()
        if kills < 3 and first.strip() != "done":
            time.sleep(rng.uniform(0.05, 0.4))
            proc.send_signal(signal.SIGKILL)
            kills += 1
        rest, err = proc.communicate(timeout=300)
        lines = (first + rest).split()
        if proc.returncode == 0:
            break
        assert proc.returncode == -signal.SIGKILL, err
        reported = [int(x) for x in lines if x.isdigit()]
        _check_whole(tmp_path / "killed" / "traces.h5", reported[-1] if reported else 0)
        checked += 1
        if (tmp_path / "killed" / "summary.json").exists():  # killed after finishing, before exiting
            break
        mode = "resume"
    assert kills >= 2 and checked >= 2
    a, b = (json.loads((tmp_path / d / "summary.json").read_text()) for d in ("whole", "killed"))
    assert a["pulses"] == b["pulses"] and a["steps"] == b["steps"] == 1000
    _same_steps(tmp_path / "whole", tmp_path / "killed")
