"""Benchmark: a sweep of 8 (or more) points with 1 worker and with 2 workers (LocalCluster).

Each point is an ordinary ``bsl train`` run on digits (BSL, 64-128-10, default device,
``--epochs`` epochs, single-threaded). Times the whole ``run_sweep`` call, cluster start
included, in fresh study folders. Writes JSON::

    python bench/bench_sweep.py --epochs 24 --seeds 4 --out bench/results/sweep.json
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

from sims.sweep import run_sweep

SWEEP = """
[base]
dataset = "digits"
epochs = {epochs}
trace = false

[grid]
"device.dw_min_std" = [0.0, 0.3]
rule = ["bsl", "manhattan"]
seed = {seeds}
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=24)
    parser.add_argument("--seeds", type=int, default=2, help="seeds per setting (points = 4 x seeds)")
    parser.add_argument("--out", default="bench/results/sweep.json")
    args = parser.parse_args(argv)
    times = {}
    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "sweep.toml"
        spec.write_text(SWEEP.format(epochs=args.epochs, seeds=list(range(args.seeds))))
        for workers in (1, 2):
            t0 = time.perf_counter()
            run_sweep(spec, Path(tmp) / f"study{workers}", workers=workers, progress=False)
            times[workers] = time.perf_counter() - t0
            print(f"{workers} worker(s): {times[workers]:.1f} s", flush=True)
    report = {"points": 4 * args.seeds, "epochs": args.epochs, "wall_s_1_worker": times[1],
              "wall_s_2_workers": times[2], "speedup": times[1] / times[2],
              "machine": {"python": platform.python_version(), "platform": platform.platform()}}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(f"speedup with 2 workers: {report['speedup']:.2f}x; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
