"""Benchmark: training throughput of ``bsl`` on the simulated noisy crossbar vs ``sgd`` float.

Same network (784-512-10 by default, MNIST-sized), same batch size, same inputs, measured
in one run: samples per second of ``rule.train_step`` over a fixed number of samples,
after warm-up, at batch 32 and in the per-sample mode (batch 1); BSL twice, with the
compiled pulse kernel and with the torch reference (``BSL_KERNEL=torch``). Inputs are MNIST images
when ``--mnist DIR`` is given, else random images with MNIST-like sparsity (no data
needed). Writes JSON and prints a table::

    python bench/bench_train.py --samples 3200 --out bench/results/train.json
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch
from report import write_report

from bsl.backend import build_model
from bsl.config import TrainConfig
from bsl.data import load_dataset
from bsl.rules import get_rule
from bsl.seeds import Seeds
from devices.sim.accel import KERNEL_ENV

#: (result name, rule, pulse kernel) of each arm, run in this order at every batch size.
ARMS = (("bsl", "bsl", "auto"), ("sgd", "sgd", "auto"), ("bsl_torch", "bsl", "torch"))


def inputs(n: int, mnist: str | None, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` images ``(n, 1, 28, 28)`` in [0, 1] and labels."""
    gen = torch.Generator().manual_seed(seed)
    if mnist:
        ds = load_dataset("mnist", data_dir=mnist, train_limit=n, seed=seed)
        return ds.x_train, ds.y_train
    x = torch.rand(n, 1, 28, 28, generator=gen)
    x = torch.where(x < 0.8, torch.zeros_like(x), x)  # about 20 % lit pixels, like MNIST
    return x, torch.randint(0, 10, (n,), generator=gen)


def throughput(config: TrainConfig, x: torch.Tensor, y: torch.Tensor, warmup: int,
               kernel: str = "auto") -> float:
    """Samples per second of the rule's training step (``kernel``: the arrays' pulse update)."""
    rule = get_rule(config.rule)(config)
    os.environ[KERNEL_ENV] = kernel
    try:
        net = build_model(config, rule.uses_devices, (1, 28, 28), 10)
    finally:
        del os.environ[KERNEL_ENV]
    gen = torch.Generator().manual_seed(Seeds(config.seed).training)  # as bsl train's run stream
    eye = torch.eye(10)
    b = config.batch_size
    batches = [(x[i:i + b], eye[y[i:i + b]]) for i in range(0, len(y) - b + 1, b)]
    for xb, tb in batches[:warmup]:
        rule.train_step(net, xb, tb, gen)
    t0 = time.perf_counter()
    for xb, tb in batches[warmup:]:
        rule.train_step(net, xb, tb, gen)
    elapsed = time.perf_counter() - t0
    return (len(batches) - warmup) * b / elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", default="512")
    parser.add_argument("--preset", default="rram")
    parser.add_argument("--samples", type=int, default=3200, help="timed samples per case")
    parser.add_argument("--batch-sizes", default="32,1")
    parser.add_argument("--mnist", default=None, help="folder with MNIST IDX files (optional)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    parser.add_argument("--out", default="bench/results/train.json")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    x, y = inputs(args.samples + 64, args.mnist, seed=0)
    rows = []
    for b in (int(s) for s in args.batch_sizes.split(",")):
        warmup = max(8, 256 // b)  # batches; also loads (or compiles) every kernel variant
        result = {"batch_size": b}
        for arm, rule, kernel in ARMS:
            config = TrainConfig(rule=rule, preset=args.preset, layers=args.layers, batch_size=b,
                                 progress=False)
            result[f"{arm}_samples_per_s"] = throughput(config, x, y, warmup, kernel)
        result["ratio_bsl_over_sgd"] = result["bsl_samples_per_s"] / result["sgd_samples_per_s"]
        result["ratio_bsl_torch_over_sgd"] = result["bsl_torch_samples_per_s"] / result["sgd_samples_per_s"]
        rows.append(result)
    report = {
        "network": f"784-{args.layers}-10", "preset": args.preset, "samples": args.samples,
        "inputs": "mnist" if args.mnist else "random sparse images",
        "results": rows,
    }
    write_report(args.out, report)
    print(f"network {report['network']}, preset {args.preset}, torch threads {torch.get_num_threads()}")
    print(f"{'batch':>5}  {'bsl samples/s':>14}  {'sgd samples/s':>14}  {'bsl/sgd':>8}  "
          f"{'bsl torch ref':>14}")
    for r in rows:
        print(f"{r['batch_size']:>5}  {r['bsl_samples_per_s']:>14.0f}  {r['sgd_samples_per_s']:>14.0f}  "
              f"{r['ratio_bsl_over_sgd']:>8.3f}  {r['bsl_torch_samples_per_s']:>14.0f}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
