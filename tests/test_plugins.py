"""Commands and rules from other packages: entry points of ``memristor_bsl.commands`` and
``memristor_bsl.rules``, found by ``bsl.cli`` and ``bsl.rules``.

Each test installs a tiny distribution for its own session only: a folder on ``sys.path``
holding the plugin package and its ``*.dist-info`` (METADATA and entry_points.txt), which
``importlib.metadata`` finds as it finds an installed package.
"""

from __future__ import annotations

import json
import re
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from bsl.cli import main

PLUGIN_COMMANDS = '''
def register(subparsers):
    p = subparsers.add_parser("hello", help="greet (a test plugin)")
    p.add_argument("--name", default="world")
    p.set_defaults(run=run)


def run(args):
    print(f"hello {args.name}")
    return 0
'''

PLUGIN_RULES = '''
from bsl.rules import register
from bsl.rules.sgd import SoftwareSGD


@register("plugin-sgd")
class PluginSGD(SoftwareSGD):
    """The float baseline under another name."""
'''


def _distribution(site: Path, dist: str, package: str, files: dict[str, str], entry_points: str) -> None:
    """Write ``package`` (``files`` by name) and ``dist``'s metadata into the folder ``site``."""
    (site / package).mkdir(parents=True)
    for name, text in files.items():
        (site / package / name).write_text(textwrap.dedent(text))
    info = site / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder on ``sys.path`` for this test's plugins; their modules and rules go afterwards."""
    from bsl import rules

    folder = tmp_path / "site"
    folder.mkdir()
    before_rules, before_loaded, before_modules = dict(rules.RULES), set(rules._LOADED), set(sys.modules)
    yield folder
    monkeypatch.undo()  # sys.path first, so that nothing finds the plugins again
    rules.RULES.clear()
    rules.RULES.update(before_rules)
    rules._LOADED.intersection_update(before_loaded)
    for name in set(sys.modules) - before_modules:
        if name.split(".")[0] in ("plugin_pkg", "broken_pkg", "clash_pkg"):
            del sys.modules[name]


def _install(monkeypatch: pytest.MonkeyPatch, site: Path) -> None:
    monkeypatch.syspath_prepend(str(site))  # also invalidates the import caches


def _help(capsys: pytest.CaptureFixture[str]) -> tuple[str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    captured = capsys.readouterr()
    return captured.out, captured.err


def _commands(help_text: str) -> list[str]:
    """The sub-command names ``bsl --help`` lists (one per line under COMMAND)."""
    section = help_text.split("COMMAND\n", 1)[1].split("\noptions:", 1)[0]
    return re.findall(r"^ {4}(\S+)", section, flags=re.MULTILINE)  # help text wraps deeper


def test_builtin_commands_come_from_entry_points(capsys: pytest.CaptureFixture[str]) -> None:
    out, err = _help(capsys)
    assert err == ""
    names = _commands(out)
    assert names == ["deploy-binary", "device-response", "emulator", "energy", "export-logic", "fit",
                     "inspect", "plot", "route-logic", "sweep", "sweep-plot", "train"]


def test_plugin_adds_a_command_and_a_rule(site: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    files = {"__init__.py": PLUGIN_COMMANDS, "rules.py": PLUGIN_RULES}
    _distribution(site, "bsl-test-plugin", "plugin_pkg", files,
                  """
                  [memristor_bsl.commands]
                  hello = plugin_pkg:register

                  [memristor_bsl.rules]
                  plugin-sgd = plugin_pkg.rules
                  """)
    _install(monkeypatch, site)
    out, err = _help(capsys)
    assert err == ""
    names = _commands(out)
    assert "hello" in names and "train" in names and names == sorted(names)
    assert "greet (a test plugin)" in out

    assert main(["hello", "--name", "plugins"]) == 0
    assert capsys.readouterr().out == "hello plugins\n"

    from bsl import rules

    assert "plugin-sgd" not in rules.RULES  # bsl.rules was imported before the plugin was installed
    assert rules.get_rule("plugin-sgd").__name__ == "PluginSGD"  # found when asked for
    rules.load_plugins()  # what importing bsl.rules does in a new process: once per plugin
    assert rules.RULES["plugin-sgd"].name == "plugin-sgd"
    # bsl train trains with it (a tiny run)
    run_dir = site.parent / "run"
    code = main(["train", "--rule", "plugin-sgd", "--dataset", "digits", "--train-limit", "64",
                 "--test-limit", "32", "--layers", "8", "--epochs", "1", "--progress", "false",
                 "--out", str(run_dir)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert json.loads((run_dir / "summary.json").read_text())["config"]["rule"] == "plugin-sgd"


def test_broken_plugin_is_one_line_and_the_rest_works(site: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    _distribution(site, "bsl-broken-plugin", "broken_pkg",
                  {"__init__.py": 'raise ImportError("needs libfrobnicate")\n'},
                  """
                  [memristor_bsl.commands]
                  frobnicate = broken_pkg:register

                  [memristor_bsl.rules]
                  frobnicate = broken_pkg
                  """)
    _install(monkeypatch, site)
    out, err = _help(capsys)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("bsl: plugin 'frobnicate' (broken_pkg:register, from bsl-broken-plugin)")
    assert "ImportError: needs libfrobnicate" in lines[0]
    assert "train" in _commands(out) and "frobnicate" not in _commands(out)

    assert main(["inspect", str(site / "no-run-here")]) == 2  # another command still runs
    err = capsys.readouterr().err
    assert err.startswith("bsl: plugin 'frobnicate'") and "bsl inspect: error: " in err

    from bsl import rules

    rules.load_plugins()
    assert capsys.readouterr().err.strip().splitlines() == [
        "bsl: rule plugin 'frobnicate' (broken_pkg, from bsl-broken-plugin) not loaded: "
        "ImportError: needs libfrobnicate"]


def test_two_plugins_claiming_one_command_are_refused(site: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    files = {"__init__.py": PLUGIN_COMMANDS.replace('"hello"', '"plot"')}
    _distribution(site, "bsl-clash-plugin", "clash_pkg", files,
                  """
                  [memristor_bsl.commands]
                  myplot = clash_pkg:register
                  """)
    _install(monkeypatch, site)
    out, err = _help(capsys)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("bsl: command 'plot' is claimed by plugins ")
    assert "'myplot' (clash_pkg:register, from bsl-clash-plugin)" in lines[0]
    assert "'plot' (bsl.commands.plot:register, from memristor-bsl)" in lines[0]
    names = _commands(out)
    assert "plot" not in names and "inspect" in names


def test_command_modules_keep_the_package_doors() -> None:
    """``devices.commands`` imports nothing from ``bsl`` or ``sims``; ``bsl`` names no plugin of
    ``sims`` or ``devices`` (it finds them through the entry points only)."""
    import ast

    root = Path(__file__).resolve().parents[1]

    def imported(path: Path) -> set[str]:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        nodes = list(ast.walk(tree))
        names = {alias.name for node in nodes if isinstance(node, ast.Import) for alias in node.names}
        return names | {node.module for node in nodes
                        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module}

    for path in sorted((root / "devices" / "commands").glob("*.py")):
        assert not {m for m in imported(path) if m.split(".")[0] in ("bsl", "sims")}, path
    for path in sorted((root / "bsl").rglob("*.py")):
        bad = {m for m in imported(path) if m.split(".")[0] == "sims" or m.startswith("devices.commands")}
        assert not bad, path
