"""Benchmark: how much recording the trace file slows training.

Trains 784-512-10 with ``bsl`` on the default noisy crossbar through :func:`bsl.train.train`
twice per repeat, with ``trace = true`` (per-batch pulse records, conductance snapshots of
the 784x512 + 512x10 network at the start and after every epoch) and ``trace = false``,
alternating the order, and compares the wall time of the whole call (training, per-epoch
evaluation and checkpoints, which both variants share). Because that A/B ratio is only as
steady as the machine, the traced runs also account the time spent inside the trace
writer (creation, step rows, snapshots, events, flushes) as a share of their wall time.
Inputs are MNIST when ``--mnist DIR`` is given, else random images with MNIST-like
sparsity. Writes JSON::

    python bench/bench_traces.py --mnist ../shared/data/mnist --out bench/results/traces.json
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from report import write_report

from bsl import train as training
from bsl.config import TrainConfig
from bsl.data import Dataset, load_dataset
from bsl.train import train

WRITER_TIME = [0.0]
_DEPTH = [0]


def _account(cls: type, name: str) -> None:
    """Add the time of every outermost ``cls.name`` call to ``WRITER_TIME``."""
    original = getattr(cls, name)

    def timed(*args: object, **kwargs: object) -> object:
        _DEPTH[0] += 1
        t0 = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            _DEPTH[0] -= 1
            if _DEPTH[0] == 0:
                WRITER_TIME[0] += time.perf_counter() - t0

    setattr(cls, name, timed)


# Everything the loop does only to record the run: creating the file with its first
# snapshot, the per-batch record (step row, events, flush), epoch snapshots and rows.
for _name in ("start_trace", "_record_step", "_snapshot"):
    _account(training._Session, _name)
_account(training.TraceWriter, "epoch")
_account(training.TraceWriter, "close")


def dataset(n_train: int, n_test: int, mnist: str | None) -> Dataset:
    """MNIST (first ``n_train``/``n_test`` of a seeded subset) or random sparse images."""
    if mnist:
        return load_dataset("mnist", data_dir=mnist, train_limit=n_train, test_limit=n_test, seed=0)
    gen = torch.Generator().manual_seed(0)

    def images(n: int) -> torch.Tensor:
        x = torch.rand(n, 1, 28, 28, generator=gen)
        return torch.where(x < 0.8, torch.zeros_like(x), x)

    return Dataset("random", images(n_train), torch.randint(0, 10, (n_train,), generator=gen),
                   images(n_test), torch.randint(0, 10, (n_test,), generator=gen), 10)


def timed_run(config: TrainConfig, data: Dataset) -> tuple[float, float]:
    """Wall time of ``train`` (s) and its training samples/s."""
    t0 = time.perf_counter()
    summary = train(config, dataset=data).summary
    return time.perf_counter() - t0, summary["samples_per_s"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=60000, help="training samples per epoch")
    parser.add_argument("--test", type=int, default=2000, help="test samples evaluated per epoch")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--mnist", default=None, help="folder with MNIST IDX files (optional)")
    parser.add_argument("--out", default="bench/results/traces.json")
    args = parser.parse_args(argv)
    data = dataset(args.train, args.test, args.mnist)
    times: dict[bool, list[float]] = {True: [], False: []}
    rates: dict[bool, list[float]] = {True: [], False: []}
    shares: list[float] = []
    trace_bytes = 0
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            for trace in ((True, False) if repeat % 2 == 0 else (False, True)):
                out = Path(tmp) / f"run-{repeat}-{trace}"
                config = TrainConfig(layers="512", epochs=args.epochs, batch_size=args.batch_size,
                                     progress=False, trace=trace, out=str(out))
                WRITER_TIME[0] = 0.0
                wall, rate = timed_run(config, data)
                if trace:
                    shares.append(WRITER_TIME[0] / (wall - WRITER_TIME[0]))
                times[trace].append(wall)
                rates[trace].append(rate)
                if trace:
                    trace_bytes = (out / "traces.h5").stat().st_size
                extra = f"  recording {100 * shares[-1]:.2f} % of the rest" if trace else ""
                print(f"repeat {repeat}: trace={trace!s:<5} {wall:7.2f} s  {rate:7.0f} samples/s{extra}",
                      flush=True)
    on, off = statistics.median(times[True]), statistics.median(times[False])
    report = {
        "network": "784-512-10", "rule": "bsl", "preset": "rram", "batch_size": args.batch_size,
        "epochs": args.epochs, "train_samples": args.train, "test_samples": args.test,
        "inputs": "mnist" if args.mnist else "random sparse images",
        "wall_s_trace_on": times[True], "wall_s_trace_off": times[False],
        "median_wall_s_trace_on": on, "median_wall_s_trace_off": off,
        "slowdown": on / off - 1.0, "trace_file_bytes": trace_bytes,
        "recording_share": shares, "median_recording_share": statistics.median(shares),
    }
    write_report(args.out, report)
    print(f"median wall: trace on {on:.2f} s, off {off:.2f} s: A/B slowdown {100 * (on / off - 1):+.1f} %; "
          f"time spent recording: {100 * statistics.median(shares):.2f} % of the untraced work "
          f"(trace file {trace_bytes / 1e6:.1f} MB); wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
