"""``bsl train``: train a network on a crossbar (simulated by default) with a learning rule.

Every flag is also a setting of a TOML run file (``--config run.toml``): fields of
:class:`bsl.config.TrainConfig`, and the settings of every registered learning rule
(generated from the rules' settings dataclasses, ``LearningRule.settings``; a setting of
a rule other than ``--rule``'s is checked and ignored). Flags override the file. Example::

    bsl train                                   # digits, default noisy RRAM, BSL
    bsl train --dataset mnist --data-dir ~/data/mnist --layers 512 --epochs 10
    bsl train --config run.toml --rule sgd --out runs/baseline
    bsl train --resume runs/baseline            # continue an interrupted run
    bsl train --resume runs/hil --reprogram     # on instruments: restore the arrays if they differ
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from bsl.commands.arguments import boolean
from devices import preset_names


def config_flags() -> list[tuple[str, type, str, Any]]:
    """``(name, settings class, help, default)`` of every flag made from a setting: the
    TrainConfig fields, then each registered rule's settings (a name shared by rules once)."""
    from bsl.config import TrainConfig, all_setting_names, common_field_names, field_docs
    from bsl.rules import RULES

    docs = field_docs()
    flags: list[tuple[str, type, str, Any]] = []
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    for name in common_field_names():
        flags.append((name, TrainConfig, docs.get(name, ""), defaults[name]))
    for name, rules in all_setting_names().items():
        settings = RULES[rules[0]].settings
        default = {f.name: f.default for f in dataclasses.fields(settings)}[name]
        doc = field_docs(settings).get(name, "")
        flags.append((name, settings, f"{doc} [rule setting: {', '.join(rules)}]", default))
    return flags


def register(subparsers: Any) -> None:
    """Add the ``train`` sub-command with one flag per config field and rule setting."""
    from bsl.settings import flag_type_name

    p = subparsers.add_parser(
        "train",
        help="train a network on the (simulated) crossbar",
        description="Train with binary stochastic learning (or a baseline rule) on a crossbar. "
        f"Device presets: {', '.join(preset_names())} or a preset .toml file.",
    )
    p.add_argument("--config", metavar="RUN.toml", help="TOML run file; flags override it")
    p.add_argument("--resume", metavar="RUN_DIR",
                   help="continue the interrupted run in RUN_DIR from its latest checkpoint, with its saved "
                   "config (only --progress and --reprogram may be given with it); on instruments the "
                   "arrays are first checked against the run's last conductance snapshot")
    p.add_argument("--reprogram", action="store_true",
                   help="with --resume on instruments: if the arrays differ from the last snapshot, "
                   "program them back to it (program-and-verify), then check again")
    for name, owner, doc, default in config_flags():
        flag = "--" + name.replace("_", "-")
        type_text = str({f.name: f.type for f in dataclasses.fields(owner)}[name])
        kind = {"int": int, "float": float, "str": str, "bool": boolean}[flag_type_name(owner, type_text)]
        p.add_argument(flag, dest=name, type=kind, default=None, help=f"{doc} (default: {default!r})")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Build the effective config (defaults < file < flags), train, print the result."""
    from bsl.config import TrainConfig, config_names, load_config_file
    from bsl.train import resume, train

    names = [name for name in config_names() if hasattr(args, name)]
    if args.resume:
        extra = [name for name in names if name != "progress" and getattr(args, name) is not None]
        if args.config or extra:
            given = ["config"] * bool(args.config) + extra
            raise ValueError(f"--resume continues a run with its saved config; drop "
                             f"{', '.join('--' + name.replace('_', '-') for name in given)}")
        _report(resume(args.resume, progress=args.progress, reprogram=args.reprogram))
        return 0
    if args.reprogram:
        raise ValueError("--reprogram goes with --resume RUN_DIR (it re-programs that run's arrays)")
    values: dict[str, Any] = {}
    if args.config:
        values.update(load_config_file(args.config))
    for name in names:
        flag_value = getattr(args, name)
        if flag_value is not None:
            values[name] = flag_value
    _report(train(TrainConfig(**values)))
    return 0


def _report(result: Any) -> None:
    """Print the final lines: test and train accuracy with how each was measured, speed,
    wall time and the run folder (see :func:`bsl.report.final_lines`)."""
    from bsl.report import final_lines

    print("\n".join(final_lines(result.summary, result.run_dir)))
