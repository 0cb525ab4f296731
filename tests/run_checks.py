"""Checks of run folders shared by the kill tests (``tests/test_kill.py``) and the kill soak
(``tests/soak/soak_kill.py``): a trace file that a killed run left is whole up to its last
batch, and a run resumed after kills ends exactly as an uninterrupted one."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np

SUMMARY_KEYS = ("test_accuracy", "test_accuracy_stochastic", "train_accuracy", "test_accuracy_per_epoch",
                "pulses", "device_counters", "steps")
"""``summary.json`` entries that must not depend on interruptions (times and resume counts do)."""
STEP_FIELDS = ("step", "correct", "loss", "set_pulses", "reset_pulses")
"""Columns of the trace's ``steps`` table compared between runs (``time`` differs)."""


def check_trace(path: Path, last_reported: int = 0, batch_size: int | None = None) -> int:
    """The trace file opens and is whole up to the last reported batch (written rows first,
    then unwritten zero rows; finite, positive snapshots; a ``start`` event first); returns
    its batch count. ``batch_size``: every batch row must hold that many samples."""
    with h5py.File(path, "r") as f:
        table = f["steps"][:]
        n = int(np.count_nonzero(table["step"]))
        assert not table[n:]["step"].any()  # written rows first, then unwritten zero rows
        steps = table[:n]
        assert n >= last_reported, (n, last_reported)
        np.testing.assert_array_equal(steps["step"], np.arange(1, n + 1))
        assert (steps["set_pulses"] >= 0).all()
        if batch_size is not None:
            assert (steps["samples"] == batch_size).all()
        for layer in f["snapshots"].values():
            k = layer["step"].shape[0]
            assert k >= 1
            for name in ("g_plus", "g_minus"):
                assert layer[name].shape[0] >= k
                last = layer[name][k - 1]
                assert np.isfinite(last).all() and (last > 0).all()
        epochs = f["epochs"][:]
        assert np.isfinite(epochs["test_accuracy"]).all()
        kinds = list(f["events"]["kind"])
        assert kinds and kinds[0] == b"start"
    return n


def assert_same_run(whole: Path, other: Path) -> None:
    """``other`` (a run folder, e.g. killed and resumed) ends with exactly the numbers of
    ``whole``: the summary's accuracies, pulse totals and counters, every batch of the
    ``steps`` table and every conductance snapshot."""
    a = json.loads((whole / "summary.json").read_text())
    b = json.loads((other / "summary.json").read_text())
    for key in SUMMARY_KEYS:
        assert a[key] == b[key], key
    with h5py.File(whole / "traces.h5", "r") as fa, h5py.File(other / "traces.h5", "r") as fb:
        ta, tb = fa["steps"][:], fb["steps"][:]
        n = int(np.count_nonzero(ta["step"]))  # written rows (the table may hold unwritten ones)
        assert n == a["steps"] and int(np.count_nonzero(tb["step"])) == n
        for name in STEP_FIELDS:
            np.testing.assert_array_equal(ta[name][:n], tb[name][:n], err_msg=name)
        assert sorted(fa["snapshots"]) == sorted(fb["snapshots"])
        for layer in fa["snapshots"]:
            k = fa[f"snapshots/{layer}/step"].shape[0]
            assert fb[f"snapshots/{layer}/step"].shape[0] == k, layer
            for name in ("step", "g_plus", "g_minus"):
                key = f"snapshots/{layer}/{name}"
                np.testing.assert_array_equal(fa[key][:k], fb[key][:k], err_msg=key)
