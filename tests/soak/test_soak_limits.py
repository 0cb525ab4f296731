"""Short limits soak (the full one: ``python tests/soak/soak_limits.py``, 10,000 operations)."""

from __future__ import annotations

import pytest
from soak_limits import run_limits_soak

pytestmark = pytest.mark.usefixtures("single_thread")


def test_limits_soak_short() -> None:
    r = run_limits_soak(600, seed=11)
    assert r["problems"] == []
    assert r["operations"] == 600 and 0.25 <= r["beyond_fraction"] <= 0.42
    assert r["refused"] == r["refused_one_line"] == r["refused_before_anything_sent"] == r["beyond_limits"]
    assert r["violations_reaching_instruments"] == 0 and r["unsafe_end_states"] == 0
    assert r["midway_failures"] >= 5 and r["completed"] >= 300  # failures midway were exercised
    assert r["max_abs_voltage_v"] <= r["limits"]["max_voltage_v"]
    assert r["effective_pulses"] > 1000


def test_the_soak_sees_a_bench_without_limit_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    """The soak's own checks fail when the bench stops checking its limits."""
    from devices import HilBench, InstrumentCrossbar

    monkeypatch.setattr(HilBench, "_check_voltage", lambda self, v: None)
    monkeypatch.setattr(InstrumentCrossbar, "_within_limits", lambda self, v: v.double())
    r = run_limits_soak(150, seed=3)
    assert r["violations_reaching_instruments"] > 0 and r["problems"]
    assert r["refused"] < r["beyond_limits"]
