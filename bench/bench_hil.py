"""Benchmark: instrument traffic and host time per training sample on the hardware path.

Trains BSL on ``digits4`` (a 16-8-4 network on the 17x8 and 9x4 arrays of
``examples/hil/wiring.toml``) through the real drivers and pyvisa-py against the bench
emulator with zero added latency, and counts, between the end of the first and of the
last training batch, the SCPI/TSP commands the emulator executed (``;``-joined commands
count one each), those that returned a reply, and the host seconds, per sample and per
batch. Writes JSON::

    python bench/bench_hil.py --samples 96 --batch-size 8 --out bench/results/hil.json
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import torch
from report import write_report

from bsl.config import TrainConfig, load_config_file
from bsl.train import train
from devices.hil.emulator import Emulator

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "hil"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=96, help="training samples (one epoch)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--out", default="bench/results/hil.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    marks: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp, \
            Emulator(EXAMPLES / "wiring.toml", preset="rram", seed=0, init_spread=0.3) as emu:
        wiring = (EXAMPLES / "wiring.toml").read_text()
        wiring = wiring.replace("TCPIP::127.0.0.1::5025::SOCKET", emu.resources["smu"])
        wiring = wiring.replace("TCPIP::127.0.0.1::5026::SOCKET", emu.resources["matrix"])
        (Path(tmp) / "wiring.toml").write_text(wiring)
        values = {**load_config_file(EXAMPLES / "run.toml"), "wiring": str(Path(tmp) / "wiring.toml"),
                  "limits": str(EXAMPLES / "limits.toml"), "out": str(Path(tmp) / "run"), "progress": False,
                  "epochs": 1, "train_limit": args.samples, "test_limit": 8, "eval_samples": 1,
                  "batch_size": args.batch_size}
        config = TrainConfig(**values)
        n_steps = -(-args.samples // args.batch_size)

        def on_step(step: int, epoch: int, stats: object) -> None:
            if step == 1:
                marks["first"] = (len(emu.log), time.perf_counter())
            if step == n_steps:
                marks["last"] = (len(emu.log), time.perf_counter())

        summary = train(config, on_step=on_step).summary
        (r0, t0), (r1, t1) = marks["first"], marks["last"]
        records = list(emu.log.records)[r0:r1]
    samples = (n_steps - 1) * args.batch_size
    kinds = Counter(r["instrument"] for r in records)
    queries = sum(1 for r in records if r.get("reply") is not None)
    report = {
        "network": "16-8-4 (digits4), arrays 17x8 and 9x4", "rule": "bsl", "batch_size": args.batch_size,
        "timed_batches": n_steps - 1, "timed_samples": samples, "latency_s": 0.0,
        "commands_per_sample": len(records) / samples, "commands_per_batch": len(records) / (n_steps - 1),
        "commands_by_instrument_per_sample": {k: v / samples for k, v in kinds.items()},
        "queries_per_sample": queries / samples,
        "host_s_per_sample": (t1 - t0) / samples, "host_s_per_batch": (t1 - t0) / (n_steps - 1),
        "test_accuracy": summary["test_accuracy"],
    }
    write_report(args.out, report)
    print(f"{report['commands_per_sample']:.0f} commands ({report['queries_per_sample']:.0f} with a reply) "
          f"and {1e3 * report['host_s_per_sample']:.1f} ms of host time per training sample at batch "
          f"{args.batch_size} ({report['commands_by_instrument_per_sample']}); wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
