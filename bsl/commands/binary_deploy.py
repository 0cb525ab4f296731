"""``bsl deploy-binary RUN_DIR``: a trained boolnet/bireal network on simulated binary crossbars.

Example::

    bsl train --rule boolnet --layers 16,16,32 --out runs/boolnet
    bsl deploy-binary runs/boolnet --preset binary_rram --seed 1

Programs every binary layer onto its own array of the preset (program-and-verify), evaluates
the test set through the arrays' reads, prints the accuracy next to the software one and
writes ``RUN_DIR/deploy_<preset>_seed<N>.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    """Add the ``deploy-binary`` sub-command."""
    p = subparsers.add_parser(
        "deploy-binary", help="evaluate a trained boolnet/bireal network on simulated binary crossbars",
        description="Read RUN_DIR/binary_net.pt (a finished boolnet or bireal run), program its binary "
        "weights onto simulated binary devices and evaluate the run's test set through the device reads.")
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a finished boolnet or bireal run folder")
    p.add_argument("--preset", default="binary_rram", help="binary device preset (default: binary_rram)")
    p.add_argument("--seed", type=int, default=0, help="array k is seeded SEED + k (default: 0)")
    p.add_argument("--test-limit", type=int, default=0, help="evaluate a seeded subset of this size (0: all)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Deploy, evaluate, print and write the result."""
    from bsl.boolnet.adapter import NET_FILE, load_net
    from bsl.boolnet.deploy import accuracy, deploy, undeploy
    from bsl.data import load_dataset
    from bsl.rules.base import check_device_kind

    check_device_kind("bsl deploy-binary", "binary", args.preset)
    if args.seed < 0 or args.test_limit < 0:
        raise ValueError("--seed and --test-limit must be >= 0")
    net, meta = load_net(args.run_dir / NET_FILE)
    summary = json.loads((args.run_dir / "summary.json").read_text())
    config = summary["config"]
    data = load_dataset(config["dataset"], data_dir=config.get("data_dir") or None, seed=int(config["seed"]),
                        test_limit=args.test_limit or int(config.get("test_limit", 0)))
    software = accuracy(net, data.x_test, data.y_test)
    layers = deploy(net, args.preset, args.seed)
    on_devices = accuracy(net, data.x_test, data.y_test)
    undeploy(net)
    result = {"preset": args.preset, "seed": args.seed, "kind": meta["kind"],
              "test_samples": len(data.y_test), "software_accuracy": software,
              "crossbar_accuracy": on_devices, "layers": layers}
    out = args.run_dir / f"deploy_{Path(args.preset).stem}_seed{args.seed}.json"
    out.write_text(json.dumps(result, indent=2))
    bad = sum(layer["misprogrammed"] for layer in layers)
    devices = sum(layer["devices"] for layer in layers)
    print(f"{meta['kind']} on {args.preset}: test accuracy {on_devices:.4f} through the crossbars "
          f"(software {software:.4f}), {len(layers)} arrays, {devices} devices, {bad} cells left "
          f"misprogrammed; wrote {out}")
    return 0
