"""Benchmark: SimulatedCrossbar operations versus the same-shape float32 torch work.

Times, in one run and for each preset (the requested one, then ``ideal``):

* ``forward``  - one ``read_forward`` of a ``(batch, rows)`` binary-voltage batch vs ``x @ W``;
* ``backward`` - one ``read_backward`` of a ``(batch, cols)`` binary batch vs ``e @ W.T``;
* ``update``   - one ``apply_pulses`` with integer counts in -3..3 vs ``W += lr * x.T @ e``.

and ``step`` (all three) against the float trio. Each timing is the median of
``--repeats`` runs (``time.perf_counter``) after warm-up. The update's memory-traffic
floor is the bytes the fused kernel must move (``devices.sim.kernel.update_traffic_bytes``)
over the machine's copy bandwidth, measured here twice: on a buffer of the update's own
size (cache-resident where it fits) and on a 256 MB buffer (main memory).
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
from devices.sim.kernel import update_traffic_bytes

OPS = ("forward", "backward", "update", "step")


def copy_bandwidth(nbytes: int, repeats: int) -> float:
    """Copy bandwidth (bytes read + written per second) of a ``nbytes`` float32 buffer."""
    src = torch.rand(max(1, nbytes // 8))  # read + write of half the bytes each
    dst = torch.empty_like(src)
    seconds = median_ms(lambda: dst.copy_(src), repeats, 3) / 1e3
    return 2 * src.numel() * 4 / seconds


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

    def step() -> None:
        xbar.read_forward(x)
        xbar.read_backward(e)
        update()

    def float_step() -> None:
        _ = x @ w
        _ = e @ w.T
        float_update()

    crossbar = {
        "forward": lambda: xbar.read_forward(x),
        "backward": lambda: xbar.read_backward(e),
        "update": update,
        "step": step,
    }
    dense = {
        "forward": lambda: x @ w,
        "backward": lambda: e @ w.T,
        "update": float_update,
        "step": float_step,
    }
    out: dict = {"kernel": xbar.kernel}
    for op in OPS:  # the two arms alternate, a block of repeats each, three times
        c_runs, f_runs = [], []
        for _ in range(3):
            c_runs.append(median_ms(crossbar[op], repeats, warmup))
            f_runs.append(median_ms(dense[op], repeats, warmup))
        c_ms, f_ms = statistics.median(c_runs), statistics.median(f_runs)
        out[op] = {"crossbar_ms": c_ms, "float_ms": f_ms, "ratio": c_ms / f_ms}
    pulsed = sum(int(torch.count_nonzero(p)) for p in pool) / len(pool)
    traffic = update_traffic_bytes(xbar.model, round(pulsed))
    near, far = copy_bandwidth(traffic, repeats), copy_bandwidth(256 << 20, max(5, repeats // 5))
    out["update_traffic"] = {
        "bytes": traffic, "pulsed_cells": pulsed,
        "copy_bandwidth_same_size_GBps": near / 1e9, "copy_bandwidth_256MB_GBps": far / 1e9,
        "floor_ms_same_size": traffic / near * 1e3, "floor_ms_256MB": traffic / far * 1e3,
        "update_over_floor_same_size": out["update"]["crossbar_ms"] / (traffic / near * 1e3),
        "update_over_floor_256MB": out["update"]["crossbar_ms"] / (traffic / far * 1e3),
    }
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
    parser.add_argument("--threads", type=int, default=None,
                        help="threads of torch and of the kernel (default: torch's choice)")
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
        t = res["update_traffic"]
        print(f"{p:<8} update moves {t['bytes'] / 1e6:.1f} MB: floor {t['floor_ms_same_size']:.3f} ms at "
              f"{t['copy_bandwidth_same_size_GBps']:.0f} GB/s (same-size copy; update "
              f"{t['update_over_floor_same_size']:.1f}x), {t['floor_ms_256MB']:.3f} ms at "
              f"{t['copy_bandwidth_256MB_GBps']:.0f} GB/s (256 MB copy; "
              f"{t['update_over_floor_256MB']:.1f}x); "
              f"kernel {res['kernel']}")
    print(f"total {elapsed:.1f} s; wrote {args.out}")
    return report


if __name__ == "__main__":
    main()
