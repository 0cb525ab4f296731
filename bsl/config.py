"""The run configuration: one validated dataclass, settable from TOML and from flags.

A TOML run file holds the same names as the dataclass fields, either at top level or
in a ``[train]`` table, e.g.::

    [train]
    dataset = "mnist"
    layers = "512"
    epochs = 10
    preset = "rram"

Flags given on the command line override the file. Relative paths in a run file
(``wiring``, ``limits``, ``data_dir``, ``out`` and ``preset`` when it names a file) are
taken relative to the run file's own folder, so it works from any directory; paths
given as flags stay relative to the current directory. The effective configuration is
saved with every run (``RUN_DIR/config.toml``, with those paths made absolute, and
inside ``summary.json``).
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devices.presets import DEFAULT_PRESET, PRESETS, get_preset
from devices.toml_io import read_toml, write_toml_tables

from .data import DATASETS
from .network import INFERENCE_MODES, parse_layers


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run (units in field docs)."""

    dataset: str = "digits"
    """``digits`` (built in), ``digits4`` (digits 0-3 at 4x4: 16 inputs, 4 classes, for small
    bench arrays), ``mnist``, ``fashion-mnist`` or ``idx`` (a folder of IDX files)."""
    data_dir: str = ""
    """Folder with the IDX files (else ``BSL_DATA_DIR``, else the download cache)."""
    train_limit: int = 0
    """Use a seeded random subset of this many training samples (0 = all)."""
    test_limit: int = 0
    """Use a seeded random subset of this many test samples (0 = all)."""
    rule: str = "bsl"
    """Learning rule: ``bsl``, ``sgd`` (float baseline) or ``manhattan``."""
    device: str = "sim"
    """Where device weights live: ``sim`` (the simulated crossbar) or ``visa`` (a crossbar
    on bench instruments: needs ``wiring`` and ``limits``; ``preset`` then gives the
    nominal device figures, e.g. a fit of the real devices)."""
    wiring: str = ""
    """``visa``: the wiring TOML file (instruments, terminals, pins of each layer's array)."""
    limits: str = ""
    """``visa``: the limits TOML file (safety limits and read/pulse settings)."""
    resource: str = ""
    """``visa``: VISA resource of the SMU, overriding the wiring file's."""
    visa_library: str = ""
    """``visa``: PyVISA backend, e.g. ``@py`` (pyvisa-py); empty = PyVISA's default."""
    preset: str = DEFAULT_PRESET
    """Device preset name or preset TOML file."""
    scheme: str = "push_pull"
    """Differential-pair update scheme: ``push_pull`` or ``set_only``."""
    carry_period: int = 0
    """Periodic carry: every this many updates, transfer a low-significance array into the
    high-significance one (0 = off, one array per layer)."""
    carry_significance: float = 8.0
    """Periodic carry: how much finer the low-significance array's weight is (> 1)."""
    layers: str = "128"
    """Hidden layers, e.g. ``512`` or ``c8k5s2,64`` (output layer added)."""
    init_spread: float = 0.3
    """Initial weights: each device starts within ``mid +- init_spread / 2`` of its range, so
    weights ``(G+ - G-) / (g_max - g_min)`` spread over about ``+-init_spread``."""
    gain_scale: float = 16.0
    """Pre-activation gain ``gain_scale / sqrt(fan_in)`` applied to ``X @ W``."""
    epochs: int = 15
    """Passes over the training set."""
    batch_size: int = 8
    """Samples per update; 1 is the per-sample (hardware-faithful) mode."""
    batch_reduce: str = "sum"
    """How a mini-batch's ternary updates combine: ``sum`` (pulse counts) or ``sign``."""
    update_probability: float = 0.2
    """Each pulse is sent with this probability (device rules' learning rate), in (0, 1]."""
    hidden_update_scale: float = 1.0
    """Factor on ``update_probability`` for hidden layers (device rules); 1 = same as output
    (the product must stay <= 1)."""
    anneal: float = 0.85
    """Per-epoch factor on ``update_probability`` (device rules) and ``lr`` (sgd): epoch ``e``
    (from 0) uses ``rate * anneal**e``."""
    dead_zone: float = 0.3
    """Output errors with ``|t - p|`` at or below this are not propagated (BSL)."""
    hidden_dead_zone: float = 0.0
    """Hidden errors (the transposed crossbar read, in gain-scaled weight units) at or below
    this magnitude are not propagated (BSL); 0 = pure sign."""
    output_derivative: bool = False
    """Multiply the output sign error by the binary derivative (BSL)."""
    lr: float = 1.0
    """Learning rate of the ``sgd`` float baseline."""
    inference: str = "deterministic"
    """Inference mode of the per-epoch test accuracy: ``deterministic`` or ``stochastic``."""
    eval_samples: int = 10
    """Binary passes averaged in ``stochastic`` inference."""
    seed: int = 0
    """Seeds devices, data order and every random draw."""
    trace: bool = True
    """Write the trace file ``RUN_DIR/traces.h5`` (metrics, pulses, conductance snapshots)."""
    snapshot_every: int = 0
    """Also snapshot conductances every this many batches (0: only at the start and after
    every epoch)."""
    checkpoint_every: int = 0
    """Also checkpoint every this many batches (0: at the start and after every epoch)."""
    checkpoint_every_s: float = 60.0
    """Also checkpoint once this many seconds of wall time have passed since the last
    checkpoint, so a kill loses at most about this much work (0 = off)."""
    out: str = ""
    """Run folder (default ``runs/<rule>-<dataset>-<time>``)."""
    progress: bool = True
    """Show progress bars."""

    def __post_init__(self) -> None:
        _validate(self)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of every field."""
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> TrainConfig:
        """A validated copy with some fields changed."""
        return dataclasses.replace(self, **changes)


def _fail(name: str, value: Any, requirement: str) -> None:
    raise ValueError(f"config {name} = {value!r}: {requirement}")


def _validate(c: TrainConfig) -> None:
    from .rules import RULES

    kinds: dict[str, type | tuple[type, ...]] = {"int": int, "float": (int, float), "str": str, "bool": bool}
    for f in dataclasses.fields(c):
        value = getattr(c, f.name)
        expected = kinds[str(f.type)]
        if not isinstance(value, expected) or (isinstance(value, bool) and f.type != "bool"):
            _fail(f.name, value, f"must be of type {f.type}")
    if c.dataset not in DATASETS:
        _fail("dataset", c.dataset, f"choose one of {DATASETS}")
    if c.rule not in RULES:
        _fail("rule", c.rule, f"choose one of {sorted(RULES)}")
    if c.device not in ("sim", "visa"):
        _fail("device", c.device, "choose 'sim' or 'visa'")
    if c.device == "visa":
        _validate_bench(c)
    if c.scheme not in ("push_pull", "set_only"):
        _fail("scheme", c.scheme, "choose 'push_pull' or 'set_only'")
    if c.batch_reduce not in ("sum", "sign"):
        _fail("batch_reduce", c.batch_reduce, "choose 'sum' or 'sign'")
    if c.inference not in INFERENCE_MODES:
        _fail("inference", c.inference, f"choose one of {INFERENCE_MODES}")
    for name in ("epochs", "batch_size", "eval_samples"):
        if getattr(c, name) < 1:
            _fail(name, getattr(c, name), "must be >= 1")
    if not (c.carry_significance > 1 and math.isfinite(c.carry_significance)):
        _fail("carry_significance", c.carry_significance, "must be a finite number > 1")
    for name in ("train_limit", "test_limit", "seed", "carry_period", "snapshot_every", "checkpoint_every"):
        if getattr(c, name) < 0:
            _fail(name, getattr(c, name), "must be >= 0")
    if not 0 < c.update_probability <= 1:
        _fail("update_probability", c.update_probability, "must lie in (0, 1]")
    if not 0 <= c.hidden_update_scale * c.update_probability <= 1:
        _fail("hidden_update_scale", c.hidden_update_scale, "must be >= 0, with update_probability * it <= 1")
    if not 0 < c.anneal <= 1:
        _fail("anneal", c.anneal, "must lie in (0, 1]")
    if not 0 <= c.dead_zone < 1:
        _fail("dead_zone", c.dead_zone, "must lie in [0, 1)")
    if not (c.checkpoint_every_s >= 0 and math.isfinite(c.checkpoint_every_s)):
        _fail("checkpoint_every_s", c.checkpoint_every_s, "must be a finite number of seconds >= 0")
    if not (c.hidden_dead_zone >= 0 and math.isfinite(c.hidden_dead_zone)):
        _fail("hidden_dead_zone", c.hidden_dead_zone, "must be a finite number >= 0")
    if not (c.lr > 0 and math.isfinite(c.lr)):
        _fail("lr", c.lr, "must be a finite number > 0")
    if not 0 <= c.init_spread <= 1:
        _fail("init_spread", c.init_spread, "must lie in [0, 1]")
    if not (c.gain_scale > 0 and math.isfinite(c.gain_scale)):
        _fail("gain_scale", c.gain_scale, "must be a finite number > 0")
    get_preset(c.preset)  # an unknown preset or a bad preset file fails here, for every rule
    parse_layers(c.layers)


def _validate_bench(c: TrainConfig) -> None:
    """A ``visa`` run's files are read and checked here, before any instrument is touched."""
    from devices.hil_settings import load_hil_settings
    from devices.wiring import load_wiring

    if not c.wiring or not c.limits:
        _fail("device", c.device, "needs both a wiring file (wiring) and a limits file (limits)")
    if c.carry_period:
        _fail("carry_period", c.carry_period, "periodic carry is not available on instruments yet (use 0)")
    load_wiring(c.wiring, c.resource or None)
    load_hil_settings(c.limits)


def field_docs() -> dict[str, str]:
    """The one-line doc of every :class:`TrainConfig` field (its attribute docstring)."""
    tree = ast.parse(inspect.getsource(TrainConfig))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs: dict[str, str] = {}
    for node, after in zip(body, body[1:], strict=False):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            if isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant):
                docs[node.target.id] = " ".join(str(after.value.value).replace("``", "").split())
    return docs


PATH_FIELDS = ("data_dir", "wiring", "limits", "out", "preset")
"""Fields that name files or folders (``preset`` only when it is not a built-in name)."""


def _path_fields(values: dict[str, Any], folder: Path) -> list[str]:
    """The set path fields of ``values``; a preset counts if it is a ``.toml`` name or a
    file in ``folder`` (else it stays a name, and an unknown one fails as such)."""
    def is_path(name: str, value: Any) -> bool:
        if not (isinstance(value, str) and value):
            return False
        if name != "preset":
            return True
        return value not in PRESETS and (value.endswith(".toml") or (folder / value).exists())
    return [name for name in PATH_FIELDS if is_path(name, values.get(name))]


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a TOML run file into a dict of config fields (unknown names refused), with
    relative paths taken relative to the file's folder (see the module doc)."""
    data = read_toml(path, "config file")
    table = data.get("train", data)
    if not isinstance(table, dict):
        raise ValueError(f"config file {path}: 'train' must be a table of settings, got {table!r}")
    table = dict(table)
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(table) - known)
    if unknown:
        raise ValueError(f"config file {path}: unknown setting(s) {unknown}")
    folder = Path(path).parent
    for name in _path_fields(table, folder):
        given = Path(os.path.expanduser(table[name]))  # Path.expanduser raises for an unknown ~user
        table[name] = str(given if given.is_absolute() else folder / given)
    return table


def save_config(config: TrainConfig, path: str | Path) -> Path:
    """Write the effective configuration as a TOML run file, path fields made absolute
    (so that it reloads from anywhere)."""
    values = config.to_dict()
    for name in _path_fields(values, Path.cwd()):
        values[name] = os.path.abspath(os.path.expanduser(values[name]))
    return write_toml_tables(path, {"train": values}, header="memristor-bsl run configuration")
