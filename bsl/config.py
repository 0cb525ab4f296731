"""The run configuration: validated dataclasses, settable from TOML and from flags.

:class:`TrainConfig` holds what every run has (data, network, device, epochs, batch size,
seed, files, progress...); each learning rule declares its own settings as a frozen
dataclass registered with the rule (``LearningRule.settings``, e.g.
:class:`bsl.rules.bsl.BslSettings`), held in ``TrainConfig.rule_settings``. A TOML run
file holds the TrainConfig fields in a ``[train]`` table (or at top level) and the rule's
settings in a ``[rule]`` table, e.g.::

    [train]
    dataset = "mnist"
    layers = "512"
    epochs = 10
    preset = "rram"
    rule = "bsl"

    [rule]              # settings of the rule above; another name is refused
    dead_zone = 0.2
    update_probability = 0.3

For compatibility a rule setting may also stand with the TrainConfig fields (at top
level or in ``[train]``), as older run files and sweep files have them: there a setting
of the chosen rule is used (over the ``[rule]`` table's), and a setting of another
registered rule (``lr`` in a bsl run, say) is checked and then ignored, so that one
sweep base serves several rules. ``TrainConfig(**values)`` takes the same flat names.

Flags given on the command line override the file (``bsl train`` has one flag per
TrainConfig field and per setting of every registered rule). Relative paths in a run file
(``wiring``, ``limits``, ``data_dir``, ``out`` and ``preset`` when it names a file) are
taken relative to the run file's own folder, so it works from any directory; paths
given as flags stay relative to the current directory. The effective configuration is
saved with every run (``RUN_DIR/config.toml`` as ``[train]`` and ``[rule]`` tables, with
those paths made absolute, and inside ``summary.json`` as one flat dict:
:meth:`TrainConfig.to_dict`).
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

import torch

from devices import DEFAULT_PRESET, PRESETS, check_keys, get_preset, read_toml, write_toml_tables

from .data import DATASETS
from .network import INFERENCE_MODES, parse_layers
from .settings import attribute_docs, check_types, fail

if TYPE_CHECKING:
    from .rules.base import RuleSettings

Scheme = Literal["push_pull", "set_only", "dep_only"]
"""Differential-pair update schemes."""
DeviceKind = Literal["sim", "visa"]
"""Where device weights live."""
InferenceMode = Literal["deterministic", "stochastic"]
"""Inference modes of the test accuracy (:data:`bsl.network.INFERENCE_MODES`)."""
assert get_args(InferenceMode) == INFERENCE_MODES


@dataclass(frozen=True, init=False)
class TrainConfig:
    """Everything that defines a training run (units in field docs); the learning rule's
    own settings are in ``rule_settings`` (see the module doc)."""

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
    device: DeviceKind = "sim"
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
    torch_device: str = "cpu"
    """Torch device of the run's tensors and simulated arrays: ``cpu``, ``cuda`` or
    ``cuda:N`` (simulator and float weights; the instrument path runs on ``cpu``)."""
    preset: str = DEFAULT_PRESET
    """Device preset name or preset TOML file."""
    scheme: Scheme = "push_pull"
    """Differential-pair update scheme: ``push_pull``, ``set_only`` (SET pulses only) or
    ``dep_only`` (RESET pulses only)."""
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
    inference: InferenceMode = "deterministic"
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
    rule_settings: RuleSettings = dataclasses.field(default=None)  # type: ignore[assignment]
    """The settings of ``rule`` (an instance of its ``settings`` class; given as that, as a
    dict of them, or as flat names: see the module doc)."""

    def __init__(self, **values: Any) -> None:
        """Take TrainConfig fields, ``rule_settings`` (the rule's settings object or a dict
        of them, unknown names refused) and flat rule settings (those of ``rule`` override
        ``rule_settings``; those of other rules are checked and ignored)."""
        from .rules import RULES

        given = values.pop("rule_settings", None)
        for name in _COMMON:
            object.__setattr__(self, name, values.pop(name, _DEFAULTS[name]))
        if not isinstance(self.rule, str) or self.rule not in RULES:
            _fail("rule", self.rule, f"choose one of {sorted(RULES)}")
        settings_cls = RULES[self.rule].settings
        shared = set().union(*(setting_field_names(r.settings) for r in RULES.values()))
        check_keys(values, shared, message="TrainConfig got unexpected keyword argument(s) {unknown}",
                   error=TypeError)
        own = set(setting_field_names(settings_cls))
        chosen: dict[str, Any] = {}
        if isinstance(given, settings_cls):
            chosen = dataclasses.asdict(given)
        elif isinstance(given, dict):
            check_keys(given, sorted(own), repr(self.rule),
                       message="rule {where} has no setting(s) {unknown} (its settings: {known_list})")
            chosen = dict(given)
        elif given is not None:  # another rule's settings (a copy with the rule changed)
            if not dataclasses.is_dataclass(given):
                _fail("rule_settings", given, f"must be a {settings_cls.__name__} or a dict of its fields")
            values = {**{k: v for k, v in dataclasses.asdict(given).items() if k in shared}, **values}
        for rule in RULES.values():  # other rules' flat settings: checked, then ignored
            theirs = {k: v for k, v in values.items() if k in setting_field_names(rule.settings)}
            if theirs and rule.settings is not settings_cls:
                rule.settings(**theirs)
        chosen.update({k: v for k, v in values.items() if k in own})
        object.__setattr__(self, "rule_settings", settings_cls(**chosen))
        _validate(self)

    def to_dict(self) -> dict[str, Any]:
        """Plain flat dict of every TrainConfig field and every rule setting (what
        ``summary.json`` and checkpoints hold; ``TrainConfig(**it)`` rebuilds the config)."""
        values = {name: getattr(self, name) for name in _COMMON}
        return {**values, **dataclasses.asdict(self.rule_settings)}

    def replace(self, **changes: Any) -> TrainConfig:
        """A validated copy with some fields (or rule settings, by flat name) changed."""
        return TrainConfig(**{**self.to_dict(), **changes})


_COMMON = tuple(f.name for f in dataclasses.fields(TrainConfig) if f.name != "rule_settings")
"""The TrainConfig fields every run has (all but ``rule_settings``)."""
_DEFAULTS = {f.name: f.default for f in dataclasses.fields(TrainConfig)}


def common_field_names() -> tuple[str, ...]:
    """The TrainConfig fields every run has (not the rule's settings)."""
    return _COMMON


def setting_field_names(settings: type) -> tuple[str, ...]:
    """The field names of a rule's settings class."""
    return tuple(f.name for f in dataclasses.fields(settings))


def all_setting_names() -> dict[str, list[str]]:
    """Every rule setting name with the registered rules that have it."""
    from .rules import RULES

    names: dict[str, list[str]] = {}
    for name, rule in sorted(RULES.items()):
        for field_name in setting_field_names(rule.settings):
            names.setdefault(field_name, []).append(name)
    return names


def config_names() -> list[str]:
    """Every name a run file, a sweep file or ``TrainConfig(**values)`` takes flat: the
    TrainConfig fields and the settings of every registered rule."""
    return [*_COMMON, *(n for n in all_setting_names() if n not in _COMMON)]


_fail = fail


def _validate(c: TrainConfig) -> None:
    """Check the TrainConfig fields (the rule's settings check themselves)."""
    check_types(c, skip=("rule_settings",))  # Literal fields (device, scheme, inference) too
    if c.dataset not in DATASETS:
        _fail("dataset", c.dataset, f"choose one of {DATASETS}")
    _validate_torch_device(c)
    if c.device == "visa":
        _validate_bench(c)
    for name in ("epochs", "batch_size", "eval_samples"):
        if getattr(c, name) < 1:
            _fail(name, getattr(c, name), "must be >= 1")
    if not (c.carry_significance > 1 and math.isfinite(c.carry_significance)):
        _fail("carry_significance", c.carry_significance, "must be a finite number > 1")
    for name in ("train_limit", "test_limit", "seed", "carry_period", "snapshot_every", "checkpoint_every"):
        if getattr(c, name) < 0:
            _fail(name, getattr(c, name), "must be >= 0")
    if not (c.checkpoint_every_s >= 0 and math.isfinite(c.checkpoint_every_s)):
        _fail("checkpoint_every_s", c.checkpoint_every_s, "must be a finite number of seconds >= 0")
    if not 0 <= c.init_spread <= 1:
        _fail("init_spread", c.init_spread, "must lie in [0, 1]")
    if not (c.gain_scale > 0 and math.isfinite(c.gain_scale)):
        _fail("gain_scale", c.gain_scale, "must be a finite number > 0")
    get_preset(c.preset)  # an unknown preset or a bad preset file fails here, for every rule
    parse_layers(c.layers)


def _validate_torch_device(c: TrainConfig) -> None:
    """``cpu``, or a CUDA device that this machine has (simulator only)."""
    if c.torch_device == "cpu":
        return
    if not re.fullmatch(r"cuda(:\d+)?", c.torch_device):
        _fail("torch_device", c.torch_device, "must be 'cpu', 'cuda' or 'cuda:N'")
    if not torch.cuda.is_available():
        _fail("torch_device", c.torch_device, "CUDA is not available on this machine (torch "
              f"{torch.__version__}); use 'cpu'")
    index = int(c.torch_device.partition(":")[2] or 0)
    if index >= torch.cuda.device_count():
        _fail("torch_device", c.torch_device, f"this machine has {torch.cuda.device_count()} CUDA device(s)")
    if c.device == "visa":
        _fail("torch_device", c.torch_device, "the instrument path runs on 'cpu'")


def _validate_bench(c: TrainConfig) -> None:
    """A ``visa`` run's files are read and checked here, before any instrument is touched
    (parsed once: :func:`devices.open_crossbars` reuses the result)."""
    from devices import check_bench_files

    if not c.wiring or not c.limits:
        _fail("device", c.device, "needs both a wiring file (wiring) and a limits file (limits)")
    if c.carry_period:
        _fail("carry_period", c.carry_period, "periodic carry is not available on instruments yet (use 0)")
    check_bench_files(c.wiring, c.limits, c.resource or None)


def field_docs(cls: type | None = None) -> dict[str, str]:
    """The one-line doc of every field of :class:`TrainConfig` (or of the settings
    dataclass ``cls``, bases included): its attribute docstring."""
    return attribute_docs(TrainConfig if cls is None else cls)


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
    from .rules import RULES

    data = read_toml(path, "config file")
    table = data.get("train", data)
    if not isinstance(table, dict):
        raise ValueError(f"config file {path}: 'train' must be a table of settings, got {table!r}")
    table = dict(table)
    rule_table = data.get("rule") if "train" in data else None
    if "train" not in data and isinstance(table.get("rule"), dict):  # no [train]: [rule] is at top level
        rule_table = table.pop("rule")
    if rule_table is not None and not isinstance(rule_table, dict):
        raise ValueError(f"config file {path}: 'rule' must be a table of the rule's settings, "
                         f"got {rule_table!r}")
    check_keys(table, config_names(), f"config file {path}")
    if rule_table is not None:
        rule = table.get("rule", _DEFAULTS["rule"])
        if rule not in RULES:
            _fail("rule", rule, f"choose one of {sorted(RULES)}")
        own = setting_field_names(RULES[rule].settings)
        check_keys(rule_table, own, f"config file {path}: [rule]: rule {rule!r}",
                   message="{where} has no setting(s) {unknown} (its settings: {known_list})")
        table["rule_settings"] = dict(rule_table)
    folder = Path(path).parent
    for name in _path_fields(table, folder):
        given = Path(os.path.expanduser(table[name]))  # Path.expanduser raises for an unknown ~user
        table[name] = str(given if given.is_absolute() else folder / given)
    return table


def save_config(config: TrainConfig, path: str | Path) -> Path:
    """Write the effective configuration as a TOML run file, path fields made absolute
    (so that it reloads from anywhere)."""
    values = {name: getattr(config, name) for name in _COMMON}
    for name in _path_fields(values, Path.cwd()):
        values[name] = os.path.abspath(os.path.expanduser(values[name]))
    tables = {"train": values, "rule": dataclasses.asdict(config.rule_settings)}
    return write_toml_tables(path, tables, header="memristor-bsl run configuration")
