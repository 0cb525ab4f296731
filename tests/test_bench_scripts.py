"""The benchmark scripts still run: each one, at a tiny size, writes its JSON report.

Only that they run and report what they promise is checked here; their timings are read
from ``bench/results`` by people, never asserted in tests.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

BENCH = Path(__file__).resolve().parent.parent / "bench"

CASES = {
    "bench_crossbar.py": (["--rows", "32", "--cols", "16", "--batch", "4", "--repeats", "2", "--warmup", "1"],
                          ["results"]),
    "bench_train.py": (["--samples", "64", "--batch-sizes", "32"], ["results"]),
    "bench_traces.py": (["--train", "128", "--test", "32", "--epochs", "1", "--repeats", "1"],
                        ["median_recording_share", "slowdown"]),
    "bench_hil.py": (["--samples", "16", "--batch-size", "8"], ["commands_per_sample", "host_s_per_sample"]),
    "bench_logic.py": (["--layers", "64,20", "--features", "16", "--samples", "100", "--repeats", "1"],
                       ["speedup", "packed_samples_per_s", "torch_samples_per_s"]),
    "bench_sweep.py": (["--epochs", "1", "--seeds", "2", "--repeats", "1"],
                       ["speedup", "side_by_side_slowdown", "overhead_s_2_workers"]),
}


@pytest.mark.parametrize("script", sorted(CASES))
def test_benchmark_writes_its_report(script: str, tmp_path: Path) -> None:
    args, keys = CASES[script]
    out = tmp_path / "report.json"
    done = subprocess.run([sys.executable, str(BENCH / script), *args, "--out", str(out)],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["machine"]["cpu_count"] >= 1 and report["machine"]["torch"]
    for key in keys:
        value = report[key]
        assert (math.isfinite(value) if isinstance(value, float) else len(value) > 0), key
    assert str(out) in done.stdout  # every benchmark says where its report went
