"""Benchmark: SimulatedCrossbar operations versus the same-shape float32 torch work.

Times, in one run and for each preset (the requested one, then ``ideal``):

* ``forward``  - one ``read_forward`` of a ``(batch, rows)`` binary-voltage batch vs ``x @ W``;
* ``backward`` - one ``read_backward`` of a ``(batch, cols)`` binary batch vs ``e @ W.T``;
* ``update``   - one ``apply_pulses`` with integer counts in -3..3 vs ``W += lr * x.T @ e``.

Each timing is the median of ``--repeats`` runs (``time.perf_counter``) after warm-up.
Writes a JSON file (with machine info) and prints a short table::

    python bench/bench_crossbar.py --rows 784 --cols 256 --batch 64 --repeats 50 --preset rram
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from report import machine, write_report

from devices import SimulatedCrossbar

OPS = ("forward", "backward", "update")


def median_ms(fn: Callable[[], object], repeats: int, warmup: int) -> float:
    """Median wall time of ``fn()`` in milliseconds."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3


def bench_preset(preset: str, rows: int, cols: int, batch: int, repeats: int, warmup: int, seed: int) -> dict:
    gen = torch.Generator().manual_seed(seed)
    xbar = SimulatedCrossbar(rows, cols, preset, seed=seed)
    v_read = xbar.v_read
    x = (torch.rand(batch, rows, generator=gen) < 0.5).float() * v_read
    e = (torch.rand(batch, cols, generator=gen) < 0.5).float() * v_read
    # A pool of update counts, cycled, so that generating them is not timed.
    pool = [torch.randint(-3, 4, (rows, cols), generator=gen) for _ in range(8)]
    it = {"k": 0}

    def update() -> None:
        xbar.apply_pulses(pool[it["k"] % len(pool)])
        it["k"] += 1

    w = torch.randn(rows, cols, generator=gen) * 0.01
    lr = 1e-3

    def float_update() -> None:
        w.add_(x.T @ e, alpha=lr)

    crossbar = {
        "forward": lambda: xbar.read_forward(x),
        "backward": lambda: xbar.read_backward(e),
        "update": update,
    }
    dense = {
        "forward": lambda: x @ w,
        "backward": lambda: e @ w.T,
        "update": float_update,
    }
    out = {}
    for op in OPS:
        c_ms = median_ms(crossbar[op], repeats, warmup)
        f_ms = median_ms(dense[op], repeats, warmup)
        out[op] = {"crossbar_ms": c_ms, "float_ms": f_ms, "ratio": c_ms / f_ms}
    out["counters"] = xbar.counters.as_dict()
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=784)
    parser.add_argument("--cols", type=int, default=256)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument(
        "--preset", default="rram", help="device preset (name or .toml); 'ideal' is always added"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/crossbar.json"))
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    presets = [args.preset] + (["ideal"] if args.preset != "ideal" else [])
    start = time.perf_counter()
    results = {
        p: bench_preset(p, args.rows, args.cols, args.batch, args.repeats, args.warmup, args.seed)
        for p in presets
    }
    elapsed = time.perf_counter() - start
    report = {
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "elapsed_s": elapsed,
        "results": results,
    }
    write_report(args.out, report)

    m = machine()
    print(
        f"crossbar {args.rows}x{args.cols}, batch {args.batch}, median of {args.repeats} "
        f"(torch {m['torch']}, {m['torch_threads']} threads, {m['cpu_count']} CPUs, "
        f"load {(m['load_average_1_5_15min'] or [float('nan')])[0]:.1f})"
    )
    print(f"{'preset':<8} {'operation':<9} {'crossbar ms':>12} {'float32 ms':>11} {'ratio':>7}")
    for p, res in results.items():
        for op in OPS:
            r = res[op]
            print(f"{p:<8} {op:<9} {r['crossbar_ms']:>12.3f} {r['float_ms']:>11.3f} {r['ratio']:>6.1f}x")
    print(f"total {elapsed:.1f} s; wrote {args.out}")
    return report


if __name__ == "__main__":
    main()
