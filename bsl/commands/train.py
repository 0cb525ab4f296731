"""``bsl train``: train a network on a crossbar (simulated by default) with a learning rule.

Every flag is also a setting of a TOML run file (``--config run.toml``, fields of
:class:`bsl.config.TrainConfig`); flags override the file. Example::

    bsl train                                   # digits, default noisy RRAM, BSL
    bsl train --dataset mnist --data-dir ~/data/mnist --layers 512 --epochs 10
    bsl train --config run.toml --rule sgd --out runs/baseline
    bsl train --resume runs/baseline            # continue an interrupted run
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from bsl.commands.arguments import boolean
from devices.presets import preset_names


def register(subparsers: Any) -> None:
    """Add the ``train`` sub-command with one flag per config field."""
    from bsl.config import TrainConfig, field_docs

    p = subparsers.add_parser(
        "train",
        help="train a network on the (simulated) crossbar",
        description="Train with binary stochastic learning (or a baseline rule) on a crossbar. "
        f"Device presets: {', '.join(preset_names())} or a preset .toml file.",
    )
    p.add_argument("--config", metavar="RUN.toml", help="TOML run file; flags override it")
    p.add_argument("--resume", metavar="RUN_DIR",
                   help="continue the interrupted run in RUN_DIR from its latest checkpoint, with its saved "
                   "config (only --progress may be given with it)")
    docs = field_docs()
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        kind = {"int": int, "float": float, "str": str, "bool": boolean}[str(f.type)]
        p.add_argument(flag, dest=f.name, type=kind, default=None,
                       help=f"{docs.get(f.name, '')} (default: {f.default!r})")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Build the effective config (defaults < file < flags), train, print the result."""
    from bsl.config import TrainConfig, load_config_file
    from bsl.train import resume, train

    if args.resume:
        extra = [f.name for f in dataclasses.fields(TrainConfig)
                 if f.name != "progress" and getattr(args, f.name) is not None]
        if args.config or extra:
            given = ["config"] * bool(args.config) + extra
            raise ValueError(f"--resume continues a run with its saved config; drop "
                             f"{', '.join('--' + name.replace('_', '-') for name in given)}")
        _report(resume(args.resume, progress=args.progress))
        return 0
    values: dict[str, Any] = {}
    if args.config:
        values.update(load_config_file(args.config))
    for f in dataclasses.fields(TrainConfig):
        flag_value = getattr(args, f.name)
        if flag_value is not None:
            values[f.name] = flag_value
    _report(train(TrainConfig(**values)))
    return 0


def _report(result: Any) -> None:
    s = result.summary
    modes = ", ".join(f"{mode} {s[f'test_accuracy_{mode}']:.4f}" for mode in ("deterministic", "stochastic")
                      if s[f"test_accuracy_{mode}"] is not None)
    print(
        f"test accuracy {s['test_accuracy']:.4f} ({s['inference']}; {modes}), "
        f"train accuracy {s['train_accuracy']:.4f}, "
        f"{s['samples_per_s']:.0f} samples/s, {s['wall_s']:.1f} s; run in {result.run_dir}"
    )
