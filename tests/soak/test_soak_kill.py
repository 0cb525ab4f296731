"""Short kill soak (the full one: ``python tests/soak/soak_kill.py``, 20 kills): a ``bsl train``
run and a ``bsl sweep`` SIGKILLed at seeded random moments, resumed and rerun to the end."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from soak_kill import SWEEP, run_kill_soak

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals"),
]


def test_kill_soak_short(tmp_path: Path) -> None:
    two_points = SWEEP.replace("seed = [0, 1, 2, 3, 4]", "seed = [0]")
    r = run_kill_soak(tmp_path, {"bsl-batch4": 2}, 1, seed=7, sweep_spec=two_points, sweep_workers=1,
                      log=lambda *_: None)
    assert r["problems"] == [], r["problems"]
    assert r["kills"] >= 2 and r["kills_leaving_unreadable_files"] == 0
    assert r["resumed_runs_identical"] == "1/1" and r["sweep_points_identical"] == "2/2"
    assert r["sweep"]["final_rerun_ok"] and r["sweep"]["processes_outliving_a_kill"] == 0
