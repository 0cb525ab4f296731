"""Benchmark: a sweep of 8 (or more) points with 1 worker and with 2 workers (LocalCluster).

Each point is an ordinary ``bsl train`` run on digits (64-128-10, default device,
``--epochs`` epochs, single-threaded; BSL and Manhattan, two noise levels, ``--seeds``
seeds). Times the whole ``run_sweep`` call, cluster start included, in fresh study
folders, ``--repeats`` times per worker count in alternating order (1, 2, 2, 1, ...), and
reports the median of each. To tell what a second worker costs, it also sums the points'
own training times (``summary.json`` ``wall_s``): their ratio between the two settings is
how much two runs side by side slow each other down (shared caches, and a virtual
machine's cores that are not always backed by two host cores), and whatever the wall
time holds beyond ``sum / workers`` is the cluster's start, the workers' imports,
scheduling and load imbalance. Before each pair of sweeps it
also times a fixed pure-Python loop once alone and twice side by side in separate
processes: ``2 x alone / side by side`` is what two processes can gain on this machine at
that moment (a virtual machine's two cores often deliver well under 2x), the ceiling for
any 2-worker speedup. Writes JSON::

    python bench/bench_sweep.py --epochs 48 --seeds 2 --repeats 5 --out bench/results/sweep.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from report import write_report

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


def timed_sweep(spec: Path, study: Path, workers: int) -> dict[str, float]:
    """Run the sweep into a fresh ``study``; its wall time and its points' summed train time."""
    t0 = time.perf_counter()
    run_sweep(spec, study, workers=workers, progress=False)
    wall = time.perf_counter() - t0
    points = sum(json.loads(p.read_text())["wall_s"] for p in study.glob("points/*/summary.json"))
    return {"wall_s": wall, "points_s": points, "overhead_s": wall - points / workers}


SPIN = "import time\nt = time.perf_counter()\nsum(range({n}))\nprint(time.perf_counter() - t)"


def machine_capacity(n: int = 60_000_000) -> float:
    """How many times faster two CPU-bound processes finish together than one after the
    other: 2 x (time alone) / (slower time side by side)."""
    def start() -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-c", SPIN.format(n=n)], stdout=subprocess.PIPE, text=True)

    def seconds(proc: subprocess.Popen[str]) -> float:
        out, _ = proc.communicate()
        return float(out)

    alone = seconds(start())
    pair = [start(), start()]
    return 2.0 * alone / max(seconds(p) for p in pair)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=48, help="epochs per point (48: ~8 s)")
    parser.add_argument("--seeds", type=int, default=2, help="seeds per setting (points = 4 x seeds)")
    parser.add_argument("--repeats", type=int, default=5, help="sweeps per worker count")
    parser.add_argument("--out", default="bench/results/sweep.json")
    args = parser.parse_args(argv)
    runs: dict[int, list[dict[str, float]]] = {1: [], 2: []}
    capacity: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "sweep.toml"
        spec.write_text(SWEEP.format(epochs=args.epochs, seeds=list(range(args.seeds))))
        for repeat in range(args.repeats):
            capacity.append(machine_capacity())
            print(f"repeat {repeat}: two processes side by side gain {capacity[-1]:.2f}x", flush=True)
            for workers in ((1, 2) if repeat % 2 == 0 else (2, 1)):
                run = timed_sweep(spec, Path(tmp) / f"study{repeat}-{workers}", workers)
                runs[workers].append(run)
                print(f"repeat {repeat}: {workers} worker(s) {run['wall_s']:6.1f} s "
                      f"(points {run['points_s']:6.1f} s, overhead {run['overhead_s']:4.1f} s)", flush=True)
    median = {w: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for w, rs in runs.items()}
    report = {
        "points": 4 * args.seeds, "epochs": args.epochs, "repeats": args.repeats,
        "runs_1_worker": runs[1], "runs_2_workers": runs[2],
        "wall_s_1_worker": median[1]["wall_s"], "wall_s_2_workers": median[2]["wall_s"],
        "speedup": median[1]["wall_s"] / median[2]["wall_s"],
        "side_by_side_slowdown": median[2]["points_s"] / median[1]["points_s"] - 1.0,
        "overhead_s_1_worker": median[1]["overhead_s"], "overhead_s_2_workers": median[2]["overhead_s"],
        "machine_capacity": capacity, "median_machine_capacity": statistics.median(capacity),
    }
    write_report(args.out, report)
    print(f"median wall: 1 worker {report['wall_s_1_worker']:.1f} s, "
          f"2 workers {report['wall_s_2_workers']:.1f} s: "
          f"speedup {report['speedup']:.2f}x; points run side by side are "
          f"{100 * report['side_by_side_slowdown']:+.1f} % slower; two plain processes gain "
          f"{report['median_machine_capacity']:.2f}x here; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
