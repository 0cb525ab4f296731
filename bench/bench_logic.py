"""Benchmark: inference of a discretised logic-gate network, bit-packed against the plain
Boolean reference and against the torch model that trains it.

Times, on one random circuit of the given layer sizes and ``--samples`` random inputs:

* ``packed``    - :func:`bsl.logic.packed.evaluate_packed` (64 samples per uint64 word),
  packing and unpacking included;
* ``reference`` - :meth:`bsl.logic.discrete.DiscreteNet.evaluate_bits` (one bool per sample and gate);
* ``torch``     - the same circuit as the trained model computes it (a frozen
  :class:`bsl.logic.layers.WiredGates` per layer, float tensors).

Each the median of ``--repeats`` runs; the two Boolean evaluations must agree. Writes a JSON
report and prints a short table::

    python bench/bench_logic.py --layers 6000,2000 --features 784 --thresholds 0.25,0.5,0.75 --samples 10000
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from report import write_report

from bsl.logic.packed import packed_speed, random_net


def torch_seconds(net, bits: np.ndarray, repeats: int) -> float:
    """Median time of the circuit evaluated as float tensors (gates first), as the model does."""
    from bsl.logic.gates import COEFFICIENTS, relaxed_gate

    layers = [(torch.as_tensor(d.a), torch.as_tensor(d.b), torch.as_tensor(COEFFICIENTS[d.gate]))
              for d in net.layers]
    x = torch.from_numpy(bits.T.astype(np.float32)).contiguous()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        with torch.no_grad():
            h = x
            for a, b, coef in layers:
                h = relaxed_gate(h[a], h[b], coef)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--layers", default="6000,2000", help="gate layer sizes (default 6000,2000)")
    p.add_argument("--features", type=int, default=784)
    p.add_argument("--thresholds", default="0.25,0.5,0.75")
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--samples", type=int, default=10000)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "logic.json"))
    args = p.parse_args()
    sizes = tuple(int(s) for s in args.layers.split(","))
    thresholds = tuple(float(t) for t in args.thresholds.split(","))
    net = random_net(args.features, sizes, args.classes, thresholds, seed=0)
    rng = np.random.default_rng(1)
    bits = net.encoder.encode(rng.random((args.samples, args.features)))
    speed = packed_speed(net, bits, repeats=args.repeats)
    torch_s = torch_seconds(net, bits, args.repeats)
    report = {**speed, "layers": list(sizes), "input_bits": net.encoder.bits, "torch_s": torch_s,
              "torch_samples_per_s": args.samples / torch_s, "packed_over_torch": torch_s / speed["packed_s"]}
    out = write_report(args.out, report)
    print(f"{net.gates} gates, {net.encoder.bits} input bits, {args.samples} samples "
          f"(median of {args.repeats}):")
    for name in ("packed", "reference", "torch"):
        seconds = report[f"{name}_s"]
        print(f"  {name:<9} {1e3 * seconds:8.1f} ms  {args.samples / seconds:12,.0f} samples/s")
    print(f"  packed = reference: {report['equal']}; report: {out}")
    return 0 if report["equal"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
