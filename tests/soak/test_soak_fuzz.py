"""Input fuzzing: every parser of user files, and the command line, either accepts an input
or refuses it in one line; never a traceback.

* Library parsers (run files with :class:`bsl.config.TrainConfig`, preset files, sweep
  files, wiring and limits files, trace CSVs) raise ``ValueError`` or ``OSError`` with a
  one-line message, nothing else.
* ``bsl train/fit/device-response/sweep/inspect`` with generated arguments exit 0, or
  exit 2 with ONE line on stderr, ``bsl <cmd>: error: ...``. Generated runs stay tiny
  (bounded epochs, samples, layers); a generated sweep that would start a cluster is not
  run (counted as ``skipped``).

Inputs: structured-but-wrong documents (the right keys; wrong types, values and ranges:
negative, NaN, inf, huge integers, empty strings, unicode, dates, nested tables), raw
bytes and text, and mutations of the shipped valid files. Cases per parser are counted in
:data:`CASES` (``soak_fuzz.py`` reports them). Profiles in ``conftest.py``: ``ci`` (default,
derandomized) and ``soak``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import itertools
import math
import os
import shutil
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fuzz_inputs import (
    INTS,
    RAW,
    TEXT,
    VALUES,
    WEIRD_TEXT,
    mutated,
    table_of,
    toml_document,
    trace_csv,
)
from hypothesis import example, given, settings
from hypothesis import strategies as st

from bsl.config import TrainConfig, config_names, load_config_file
from bsl.rules import RULES
from bsl.settings import flag_type_name
from devices.fitting.characterize import potentiation_depression, read_trace_csv
from devices.hil.settings import Limits, Operation, load_hil_settings
from devices.hil.wiring import load_wiring
from devices.sim.physics import STEP_MODELS, DeviceModel
from devices.sim.presets import PRESETS, get_preset, save_preset_file
from sims.spec import load_sweep

pytestmark = pytest.mark.usefixtures("single_thread")
PROFILE = os.environ.get("BSL_FUZZ_PROFILE", "ci")


def fewer_in_ci(n: int) -> Callable[[Any], Any]:
    """``n`` cases in the CI profile (slow tests); the soak keeps its own count."""
    return settings(max_examples=n) if PROFILE == "ci" else (lambda test: test)


ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "hil"
CASES: Counter[str] = Counter()
"""Cases run per parser (and ``<parser> skipped``), for the soak report."""
_seq = itertools.count()

RUN_CLASSES: tuple[type, ...] = (TrainConfig, *(rule.settings for _, rule in sorted(RULES.items())))
"""The fields a run file takes: every run's, then each registered rule's settings."""
TRAIN_CHOICES: dict[str, list[Any]] = {
    "dataset": ["digits", "digits4", "mnist", "idx"], "rule": ["bsl", "sgd", "manhattan"],
    "device": ["sim", "visa"], "scheme": ["push_pull", "set_only"], "batch_reduce": ["sum", "sign"],
    "inference": ["deterministic", "stochastic"], "preset": ["rram", "ideal", "agsi", "pcm"],
    "layers": ["16", "8,8", "c4k3s2,8", "", "c8k5"], "wiring": [str(EXAMPLES / "wiring.toml")],
    "limits": [str(EXAMPLES / "limits.toml")],
}


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def _write(work: Path, data: bytes | str, suffix: str) -> Path:
    path = work / f"case{next(_seq)}{suffix}"
    path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8", "surrogatepass"))
    return path


def clean(call: Callable[[], Any]) -> str:
    """Run a library parser: it works, or raises ValueError/OSError with one non-empty line
    (anything else propagates and fails the test)."""
    try:
        call()
    except (ValueError, OSError) as exc:
        text = str(exc)
        assert text and "\n" not in text and "\r" not in text, f"{type(exc).__name__} message: {text!r}"
        return "refused"
    return "accepted"


# -- run files -----------------------------------------------------------------------------------

RUN_DOCS = st.one_of(
    st.fixed_dictionaries({"train": table_of(RUN_CLASSES, choices=TRAIN_CHOICES)}),
    table_of(RUN_CLASSES, choices=TRAIN_CHOICES),
    st.fixed_dictionaries({"train": table_of(TrainConfig, choices=TRAIN_CHOICES),
                           "rule": st.one_of(*(table_of(rule.settings) for _, rule in sorted(RULES.items())),
                                             VALUES)}),
    st.fixed_dictionaries({"train": VALUES}),
    st.dictionaries(TEXT, VALUES, max_size=4),
)


def _run_file(path: Path) -> None:
    TrainConfig(**load_config_file(path))


@given(doc=RUN_DOCS)
@example(doc={"train": False})  # regression: TypeError from load_config_file
def test_run_files_structured(work: Path, doc: dict[str, Any]) -> None:
    CASES["run file"] += 1
    clean(lambda: _run_file(_write(work, toml_document(doc), ".toml")))


@given(data=st.one_of(RAW, mutated((EXAMPLES / "run.toml").read_text())))
def test_run_files_raw(work: Path, data: bytes) -> None:
    CASES["run file"] += 1
    clean(lambda: _run_file(_write(work, data, ".toml")))


# -- preset files --------------------------------------------------------------------------------

PRESET_DOCS = st.one_of(
    st.fixed_dictionaries({"device": table_of(DeviceModel, choices={"step_model": list(STEP_MODELS)})}),
    st.fixed_dictionaries({"device": table_of(DeviceModel, choices={"step_model": list(STEP_MODELS)},
                                              fixed=PRESETS["rram"].to_dict())}),
    st.fixed_dictionaries({"device": VALUES}, optional={"meta": VALUES}),
    st.dictionaries(TEXT, VALUES, max_size=4),
)


def _preset_text() -> str:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        return save_preset_file(PRESETS["rram"], Path(tmp) / "p.toml", meta={"source": "x"}).read_text()


@given(doc=PRESET_DOCS)
def test_preset_files_structured(work: Path, doc: dict[str, Any]) -> None:
    CASES["preset file"] += 1
    clean(lambda: get_preset(str(_write(work, toml_document(doc), ".toml"))))


@given(data=st.one_of(RAW, mutated(_preset_text())))
def test_preset_files_raw(work: Path, data: bytes) -> None:
    CASES["preset file"] += 1
    clean(lambda: get_preset(str(_write(work, data, ".toml"))))


# -- sweep files ---------------------------------------------------------------------------------

TRAIN_FIELDS = config_names()
MODEL_FIELDS = [f.name for f in dataclasses.fields(DeviceModel)]
SWEEP_KEYS = st.one_of(st.sampled_from(TRAIN_FIELDS), st.sampled_from(MODEL_FIELDS).map("device.".__add__),
                       TEXT, st.just("device."), st.just("out"))
SWEEP_VALUE = st.one_of(VALUES, st.sampled_from(["bsl", "sgd", "manhattan", 0, 1, 2, 0.3, "digits"]))
SWEEP_DOCS = st.fixed_dictionaries({}, optional={
    "base": st.one_of(table_of(RUN_CLASSES, choices=TRAIN_CHOICES, extra_keys=0), VALUES),
    "grid": st.one_of(st.dictionaries(SWEEP_KEYS, st.one_of(st.lists(SWEEP_VALUE, max_size=3), SWEEP_VALUE),
                                      max_size=3), VALUES),
    "points": st.one_of(st.lists(st.dictionaries(SWEEP_KEYS, SWEEP_VALUE, max_size=3), min_size=1,
                                 max_size=3), VALUES),
    "extra": VALUES,
})


@given(doc=SWEEP_DOCS)
@example(doc={"grid": False}).via("regression: AttributeError")
@example(doc={"points": [1]}).via("regression: TypeError")
@example(doc={"base": {"device.dw_min_std": 0.3}, "grid": {"seed": [1]}}).via("regression: TypeError")
def test_sweep_files_structured(work: Path, doc: dict[str, Any]) -> None:
    CASES["sweep file"] += 1
    clean(lambda: load_sweep(_write(work, toml_document(doc), ".toml")))


@given(data=st.one_of(RAW, mutated((ROOT / "sims" / "c2c_noise.toml").read_text())))
def test_sweep_files_raw(work: Path, data: bytes) -> None:
    CASES["sweep file"] += 1
    clean(lambda: load_sweep(_write(work, data, ".toml")))


# -- wiring and limits files ------------------------------------------------------------------

PIN = st.one_of(st.integers(-2, 80), INTS, VALUES)
ARRAY = st.fixed_dictionaries({}, optional={
    "rows": PIN, "cols": PIN, "first_pin": PIN,
    "word_line_pins": st.one_of(st.lists(PIN, max_size=6), VALUES),
    "plus_pins": st.one_of(st.lists(PIN, max_size=4), VALUES),
    "minus_pins": st.one_of(st.lists(PIN, max_size=4), VALUES),
    "junk": VALUES,
})
RESOURCE = st.one_of(st.sampled_from(["TCPIP::127.0.0.1::5025::SOCKET", "GPIB0::1::INSTR", ""]), TEXT, VALUES)
WIRING_DOCS = st.fixed_dictionaries({}, optional={
    "instruments": st.one_of(st.fixed_dictionaries({}, optional={
        "smu": RESOURCE, "matrix": RESOURCE, "smu_sense": RESOURCE,
        "smu_model": st.one_of(st.sampled_from(["b2900", "2450", "B2900"]), VALUES)}), VALUES),
    "terminals": st.one_of(st.fixed_dictionaries({}, optional={
        "drive_row": st.one_of(st.sampled_from(list("ABCDEFGHI") + ["", "AB", "a"]), VALUES),
        "sense_row": st.one_of(st.sampled_from(list("ABCDEFGHI") + ["", "AB"]), VALUES),
        "drive_channel": st.one_of(st.integers(0, 3), VALUES), "sense_channel": st.one_of(st.integers(0, 3),
                                                                                           VALUES)}), VALUES),
    "arrays": st.one_of(st.lists(ARRAY, min_size=1, max_size=3), VALUES),
    "extra": VALUES,
})


@given(doc=WIRING_DOCS)
@example(doc={"instruments": False}).via("regression: TypeError")
@example(doc={"instruments": {"smu": "S", "matrix": "M"}, "arrays": False}).via("regression: TypeError")
@example(doc={"instruments": {"smu": "S", "matrix": "M"},
              "arrays": [{"rows": 10**12, "cols": 1, "first_pin": 0}]}).via("regression: GBs allocated")
@example(doc={"instruments": {"smu": "S", "matrix": "M"},
              "arrays": [{"rows": 2, "cols": 1, "first_pin": math.inf}]}).via("regression: OverflowError")
@example(doc={"instruments": {"smu": "S", "matrix": "M"}, "terminals": {"drive_channel": []},
              "arrays": [{"rows": 2, "cols": 1, "first_pin": 0}]}).via("regression: TypeError")
@example(doc={"instruments": {"smu": "S", "matrix": "M"}, "terminals": {"drive_row": []},
              "arrays": [{"rows": 2, "cols": 1, "first_pin": 0}]}).via("regression: TypeError")
@example(doc={"instruments": {"smu": "S", "matrix": "M"},
              "arrays": [{"rows": 1, "cols": 1, "word_line_pins": [[0]], "plus_pins": [1],
                          "minus_pins": [2]}]}).via("regression: TypeError")
def test_wiring_files_structured(work: Path, doc: dict[str, Any]) -> None:
    CASES["wiring file"] += 1
    clean(lambda: load_wiring(_write(work, toml_document(doc), ".toml")))


@given(data=st.one_of(RAW, mutated((EXAMPLES / "wiring.toml").read_text())))
def test_wiring_files_raw(work: Path, data: bytes) -> None:
    CASES["wiring file"] += 1
    clean(lambda: load_wiring(_write(work, data, ".toml")))


LIMIT_DOCS = st.fixed_dictionaries({}, optional={
    "limits": st.one_of(table_of(Limits), table_of(Limits, fixed={"max_voltage_v": 2.0, "compliance_a": 1e-3,
                                                                   "max_pulse_width_s": 1e-3,
                                                                   "max_pulses_per_cell": 16}), VALUES),
    "operation": st.one_of(table_of(Operation), VALUES),
    "extra": VALUES,
})


@given(doc=LIMIT_DOCS)
@example(doc={"limits": False}).via("regression: TypeError")
def test_limits_files_structured(work: Path, doc: dict[str, Any]) -> None:
    CASES["limits file"] += 1
    clean(lambda: load_hil_settings(_write(work, toml_document(doc), ".toml")))


@given(data=st.one_of(RAW, mutated((EXAMPLES / "limits.toml").read_text())))
def test_limits_files_raw(work: Path, data: bytes) -> None:
    CASES["limits file"] += 1
    clean(lambda: load_hil_settings(_write(work, data, ".toml")))


# -- trace CSVs --------------------------------------------------------------------------------


def _valid_csv() -> str:
    import tempfile

    trace = potentiation_depression("rram", pulses=4, cycles=1, devices=2, seed=1, progress=False)
    with tempfile.TemporaryDirectory() as tmp:
        return trace.to_csv(Path(tmp) / "t.csv").read_text()


VALID_CSV = _valid_csv()
CSVS = st.one_of(trace_csv(), RAW, mutated(VALID_CSV))


@given(data=trace_csv())
@example(data=b"device,cycle,pulse,polarity,conductance_S\n" + str(10**23).encode() + b",0,0,set,1e-5\n"
         ).via("regression: OverflowError")
@example(data=b"device,cycle,pulse,polarity,conductance_S\n0,0,1e300,set,1e-5\n").via("regression")
def test_trace_csv_structured(work: Path, data: bytes) -> None:
    CASES["trace CSV"] += 1
    clean(lambda: read_trace_csv(_write(work, data, ".csv")))


@given(data=st.one_of(RAW, mutated(VALID_CSV)))
def test_trace_csv_raw(work: Path, data: bytes) -> None:
    CASES["trace CSV"] += 1
    clean(lambda: read_trace_csv(_write(work, data, ".csv")))


# -- the command line --------------------------------------------------------------------------


def cli(argv: list[str]) -> tuple[int, str]:
    """Run ``bsl ARGV`` in this process: (exit status, stderr). Exit 2 must come with one
    line ``bsl <cmd>: error: ...``; nothing may end in a traceback."""
    from bsl.cli import main

    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse
            code = exc.code if isinstance(exc.code, int) else 1
    text = err.getvalue()
    assert "Traceback" not in text, text
    assert code in (0, 2), (code, text)
    if code == 2:
        lines = text.strip("\n").split("\n")
        assert len(lines) == 1, text
        assert lines[0].startswith(f"bsl {argv[0]}: error: "), text
    return code, text


@pytest.mark.parametrize("argv", [  # regressions: argparse's usage block; "bsl:" for a sub-command's flags
    ["train", "--test-limit", "x"], ["fit"], ["train", "--epochs", "1", ""], ["fit", "x.csv", "--model", ""],
    ["device-response", "--pulses", "1"], ["inspect", "a", "b\nc"],
])
def test_cli_usage_errors_are_one_line(argv: list[str]) -> None:
    assert cli(argv)[0] == 2


def flag_text(kind: str) -> st.SearchStrategy[str]:
    numbers = {"int": st.integers(-5, 50).map(str), "float": st.floats(allow_nan=True).map(repr),
               "bool": st.sampled_from(["true", "false", "yes", "0", "maybe"]), "str": WEIRD_TEXT}[kind]
    return st.one_of(numbers, numbers, WEIRD_TEXT, TEXT.filter(lambda t: "\x00" not in t))


BOUNDED = {  # flags that size a run: only small values or wrong ones, so that no case trains for long
    "epochs": ["1", "0", "-1", "x", "1.5", "", "nan"], "train_limit": ["16", "8", "-1", "abc", "1e3"],
    "test_limit": ["16", "8", "-3", "x"], "eval_samples": ["1", "2", "0", "x"],
    "layers": ["8", "4,4", "c2k3s2,4", "", "0", "x", "c0k3", "8,c2k3", "-4"],
    "dataset": ["digits", "digits4", "idx", "mnist-typo", "x", ""],
    "batch_size": ["1", "4", "8", "0", "-1", "x"], "device": ["sim", "visa", "x"],
    "carry_period": ["0", "2", "-1", "x"], "preset": ["rram", "ideal", "pcm", "nope"],
    "snapshot_every": ["0", "1", "3", "-1", "x"], "checkpoint_every": ["0", "1", "3", "-1", "x"],
    "progress": ["false", "0", "no", "maybe"], "trace": ["true", "false", "x"],
}
ALWAYS = ("epochs", "train_limit", "test_limit", "eval_samples", "progress")


def _flag_kinds() -> dict[str, str]:
    """Every ``bsl train`` flag's field and value type (``int``, ``float``, ``str``, ``bool``):
    the fields every run has, then every registered rule's settings."""
    kinds: dict[str, str] = {}
    for klass in RUN_CLASSES:
        for f in dataclasses.fields(klass):
            if f.name != "rule_settings":
                kinds.setdefault(f.name, flag_type_name(klass, str(f.type)))
    return kinds


FLAG_KINDS = _flag_kinds()


@st.composite
def train_argv(draw: st.DrawFn, work: Path) -> list[str]:
    argv = ["train"]
    chosen = set(draw(st.lists(st.sampled_from(sorted(FLAG_KINDS)), max_size=8, unique=True)))
    for name, kind in FLAG_KINDS.items():
        if name == "out" or (name not in chosen and name not in ALWAYS):
            continue
        if name in ALWAYS and draw(st.integers(0, 3)):  # mostly valid: some cases must train
            value = BOUNDED[name][0]
        elif name in BOUNDED:
            value = draw(st.sampled_from(BOUNDED[name]))
        else:
            value = draw(flag_text(kind))
        argv += [f"--{name.replace('_', '-')}", value]
    extra = draw(st.sampled_from(["", "config", "resume", "preset file", "junk"]))
    if extra == "config":
        argv += ["--config", str(_write(work, toml_document(draw(RUN_DOCS)), ".toml"))]
    elif extra == "resume":
        argv += ["--resume", draw(st.sampled_from([str(work), str(work / "nothing"), "", "/"]))]
    elif extra == "preset file":
        argv += ["--preset", str(_write(work, toml_document(draw(PRESET_DOCS)), ".toml"))]
    elif extra == "junk":
        argv += draw(st.lists(st.one_of(WEIRD_TEXT, st.sampled_from(["--epochs", "-h", "--no", "--out"])),
                              max_size=3))
    return [*argv, "--out", str(work / f"run{next(_seq)}")]


@pytest.fixture(scope="module")
def cli_work(work: Path) -> Iterator[Path]:
    folder = work / "cli"
    folder.mkdir()
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@given(data=st.data())
def test_cli_train(cli_work: Path, data: st.DataObject) -> None:
    argv = data.draw(train_argv(cli_work))
    CASES["cli train"] += 1
    code, _ = cli(argv)
    CASES["cli train ran"] += code == 0


@given(csv=CSVS, model=st.one_of(st.sampled_from(["linear", "exponential", "soft_bounds"]), WEIRD_TEXT),
       write=st.sampled_from(["", "p.toml", "p.txt", "missing/p.toml", "dir"]))
def test_cli_fit(cli_work: Path, csv: bytes, model: str, write: str) -> None:
    CASES["cli fit"] += 1
    argv = ["fit", str(_write(cli_work, csv, ".csv")), "--model", model]
    if write == "dir":
        argv += ["--write-preset", str(cli_work)]
    elif write:
        argv += ["--write-preset", str(cli_work / f"{next(_seq)}{write}")]
    cli(argv)


SMALL = st.one_of(st.integers(-2, 6).map(str), WEIRD_TEXT)


@given(pulses=SMALL, cycles=SMALL, devices=SMALL, seed=st.one_of(st.integers(-3, 10**6).map(str), WEIRD_TEXT),
       preset=st.one_of(st.sampled_from(["rram", "ideal", "pcm", "agsi", "nope", "file"]), WEIRD_TEXT),
       out=st.sampled_from(["t.csv", "missing/t.csv", "dir", ""]), doc=PRESET_DOCS)
def test_cli_device_response(cli_work: Path, pulses: str, cycles: str, devices: str, seed: str, preset: str,
                             out: str, doc: dict[str, Any]) -> None:
    CASES["cli device-response"] += 1
    if preset == "file":
        preset = str(_write(cli_work, toml_document(doc), ".toml"))
    target = str(cli_work) if out == "dir" else str(cli_work / f"{next(_seq)}{out}") if out else ""
    cli(["device-response", "--pulses", pulses, "--cycles", cycles, "--devices", devices, "--seed", seed,
         "--preset", preset, "--out", target, "--no-progress"])


@given(spec=st.one_of(SWEEP_DOCS.map(toml_document).map(str.encode), RAW,
                      mutated((ROOT / "sims" / "c2c_noise.toml").read_text())),
       workers=st.one_of(st.sampled_from(["0", "1", "-1", "x"]), WEIRD_TEXT),
       dashboard=st.sampled_from(["", ":0", "x"]), scheduler=st.booleans(),
       progress=st.sampled_from(["false", "x"]))
def test_cli_sweep(cli_work: Path, spec: bytes, workers: str, dashboard: str, scheduler: bool,
                   progress: str) -> None:
    """A sweep that would start a cluster and train is not run (``cli sweep skipped``)."""
    import importlib.util

    path = _write(cli_work, spec, ".toml")
    argv = ["sweep", str(path), "--out", str(cli_work / f"study{next(_seq)}"), "--workers", workers,
            "--progress", progress]
    if dashboard:
        argv += ["--dashboard", dashboard]
    if scheduler and dashboard:  # refused before any connection is tried
        argv += ["--scheduler", "tcp://127.0.0.1:1"]
    stops_early = (workers.lstrip("-").isdigit() and int(workers) < 0) or progress == "x" or \
        (dashboard and (scheduler or importlib.util.find_spec("bokeh") is None))
    if not stops_early and clean(lambda: load_sweep(path)) == "accepted":
        CASES["cli sweep skipped"] += 1
        return
    CASES["cli sweep"] += 1
    cli(argv)


@pytest.fixture(scope="module")
def run_folders(work: Path) -> dict[str, Path]:
    """A finished and an unfinished tiny run, to damage."""
    from bsl.train import train

    base = {"dataset": "digits", "layers": "4", "epochs": 1, "train_limit": 16, "test_limit": 8,
            "eval_samples": 1, "progress": False, "checkpoint_every": 1}
    done = train(TrainConfig(**base, out=str(work / "done"))).run_dir

    def stop(step: int, epoch: int, stats: object) -> None:
        if step == 2:
            raise KeyboardInterrupt

    with contextlib.suppress(KeyboardInterrupt):
        train(TrainConfig(**base, out=str(work / "stopped")), on_step=stop)
    return {"done": done, "stopped": work / "stopped"}


RUN_FILES = ["traces.h5", "summary.json", "config.toml", "checkpoint.pt"]


@fewer_in_ci(60)  # each case copies a run folder, and may resume it
@given(which=st.sampled_from(["done", "stopped", "missing", "file", "empty"]),
       damage=st.lists(st.tuples(st.sampled_from(RUN_FILES),
                                 st.sampled_from(["delete", "truncate", "flip", "replace"]), st.floats(0, 1),
                                 st.one_of(RAW, VALUES.map(repr).map(str.encode))), max_size=3),
       events=st.one_of(st.integers(-3, 20).map(str), WEIRD_TEXT))
@example(which="stopped", damage=[("traces.h5", "truncate", 0.0, b"")], events="0").via("regression")
@example(which="done", damage=[("traces.h5", "flip", 0.1875, b""), ("summary.json", "delete", 0.0, b"")],
         events="0").via("regression: AttributeError")
@example(which="done", damage=[("summary.json", "replace", 0.0, b"{}")], events="0").via("regression")
def test_cli_inspect(cli_work: Path, run_folders: dict[str, Path], which: str,
                     damage: list[tuple[str, str, float, bytes]], events: str) -> None:
    CASES["cli inspect"] += 1
    target = cli_work / f"inspect{next(_seq)}"
    if which in ("done", "stopped"):
        shutil.copytree(run_folders[which], target)
        for name, how, where, data in damage:
            path = target / name
            if not path.exists():
                continue
            size = path.stat().st_size
            if how == "delete":
                path.unlink()
            elif how == "truncate":
                with path.open("r+b") as fh:
                    fh.truncate(int(size * where))
            elif how == "flip":
                with path.open("r+b") as fh:
                    fh.seek(min(int(size * where), max(0, size - 1)))
                    fh.write(data[:8] or b"\xff")
            else:
                path.write_bytes(data)
    elif which == "file":
        target.write_bytes(b"not a run")
    elif which == "empty":
        target.mkdir()
    try:
        cli(["inspect", str(target), "--events", events])
        if which in ("done", "stopped"):  # continue it: a damaged checkpoint or trace is refused in one line
            CASES["cli train --resume"] += 1
            cli(["train", "--resume", str(target), "--progress", "false"])
    finally:
        if target.is_dir():
            shutil.rmtree(target, ignore_errors=True)
