"""The shared helpers: unknown-key errors, TOML writing via tomli-w, the non-negative WLS."""

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from devices.fitting.noise import _nonneg_wls
from devices.toml_io import check_keys, read_toml, refuse, toml_value, write_toml_tables


def test_check_keys_messages() -> None:
    check_keys({"a": 1}, ("a", "b"), "x")
    with pytest.raises(ValueError, match=r"^x: unknown setting\(s\) \['c', 'd'\]$"):
        check_keys({"d": 1, "a": 2, "c": 3}, ("a", "b"), "x")
    with pytest.raises(ValueError, match=r"^f: unknown key\(s\) \['c'\]; known: \['a', 'b'\]$"):
        check_keys({"c": 1}, ("b", "a"), "f", what="key(s)", known_as="known")
    with pytest.raises(TypeError, match=r"^bad c \(b, a\)$"):
        check_keys({"c": 1}, ("b", "a"), message="bad {unknown_list} ({known_list})", error=TypeError)
    with pytest.raises(ValueError, match=r"^config lr = -1: must be > 0$"):
        refuse("config ", "lr", -1, "must be > 0")


def test_toml_writer_round_trips_and_refuses(tmp_path: Path) -> None:
    tables: dict[str, dict[str, Any]] = {
        "train": {"s": 'q"\\\n\t\x01é', "i": -3, "f": 1e-300, "b": False},
        "rule": {},
        "a b": {"x": 0.1},
    }
    path = write_toml_tables(tmp_path / "c.toml", tables, header="hello")
    assert path.read_text(encoding="utf-8").startswith("# hello\n")
    assert read_toml(path, "file") == tables
    assert toml_value('a"b') == '"a\\"b"' and toml_value(1.5) == "1.5" and toml_value(True) == "true"
    for bad in (math.nan, math.inf, -math.inf):
        with pytest.raises(ValueError, match="cannot write non-finite value"):
            write_toml_tables(tmp_path / "bad.toml", {"t": {"x": bad}}, header="h")
    assert not (tmp_path / "bad.toml").exists()
    for wrong in (None, [1], {"a": 1}):
        with pytest.raises(TypeError, match="cannot write"):
            toml_value(wrong)


def _reference_nonneg_wls(a: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """The hand-written two-unknown solver that scipy.optimize.nnls replaced."""
    sw = np.sqrt(w)
    theta = np.linalg.lstsq(a * sw[:, None], y * sw, rcond=None)[0]
    if (theta >= 0).all():
        return theta
    best, best_cost = np.zeros(2), float(np.sum(w * y**2))
    for j in (0, 1):
        col = a[:, j]
        denom = float(np.sum(w * col**2))
        t = max(0.0, float(np.sum(w * col * y)) / denom) if denom > 0 else 0.0
        cost = float(np.sum(w * (y - t * col) ** 2))
        if cost < best_cost:
            best, best_cost = np.eye(2)[j] * t, cost
    return best


@pytest.mark.parametrize("scale", [1e-14, 1.0, 1e6])
def test_nnls_matches_the_old_solver(scale: float) -> None:
    rng = np.random.default_rng(7)
    for i in range(200):
        m = int(rng.integers(3, 100))
        a = np.abs(rng.normal(size=(m, 2))) * rng.choice([1e-3, 1.0, 10.0], size=2)
        if i % 25 == 0:
            a[:, 1] = 0.0
        y = (rng.normal(size=m) * rng.choice([0.1, 1.0, 5.0]) + a @ rng.normal(size=2)) * scale
        w = rng.uniform(0.01, 3.0, size=m) / scale**2
        old, new = _reference_nonneg_wls(a, y, w), _nonneg_wls(a, y, w)
        assert (new >= 0).all()
        np.testing.assert_allclose(new, old, rtol=1e-9, atol=1e-9 * scale)
