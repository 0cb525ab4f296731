"""The one-way doors between the packages: the engine (``bsl/``) knows devices only through
their public face.

Every import statement of every module under ``bsl/`` (at module level or inside a
function) is read with :mod:`ast`: none may name ``drivers``, ``pyvisa`` or ``sims``, and
from ``devices`` only ``devices`` itself and ``devices.interface`` may be imported.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BSL = ROOT / "bsl"

FORBIDDEN = ("drivers", "pyvisa", "sims")
"""Top-level packages the engine must not import."""
PUBLIC_DEVICES = ("devices", "devices.interface")
"""The modules of ``devices`` the engine may import."""

ALLOWED: frozenset[tuple[str, str]] = frozenset()
"""``(module file relative to the repository, imported module)`` pairs let through for now.
Empty: every exception has been removed (keep it so; add an entry only with a comment saying
which change removes it)."""


def _imports(path: Path) -> list[tuple[int, str]]:
    """``(line, absolute module name)`` of every import statement of ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.lineno, node.module))
    return out


def _violation(module: str) -> bool:
    top = module.split(".")[0]
    if top in FORBIDDEN:
        return True
    return top == "devices" and module not in PUBLIC_DEVICES


def test_bsl_imports_only_the_public_face_of_devices() -> None:
    files = sorted(BSL.rglob("*.py"))
    assert files, "no modules found under bsl/"
    found = []
    for path in files:
        rel = path.relative_to(ROOT).as_posix()
        for line, module in _imports(path):
            if _violation(module) and (rel, module) not in ALLOWED:
                found.append(f"{rel}:{line}: imports {module}")
    assert not found, "bsl/ reaches past the public face of devices:\n" + "\n".join(found)


@pytest.mark.parametrize(
    ("source", "bad"),
    [
        ("import pyvisa", True),
        ("def f():\n    from drivers import InstrumentError", True),
        ("from sims.spec import load", True),
        ("from devices.sim.presets import get_preset", True),
        ("import devices.hil.wiring", True),
        ("from devices import Crossbar", False),
        ("from devices.interface import OpCounters", False),
        ("from .config import TrainConfig", False),
        ("import devicesx", False),
    ],
)
def test_the_walker_sees_every_kind_of_import(tmp_path: Path, source: str, bad: bool) -> None:
    path = tmp_path / "m.py"
    path.write_text(source + "\n", encoding="utf-8")
    assert any(_violation(module) for _, module in _imports(path)) is bad


def test_allowed_exceptions_are_still_needed() -> None:
    """An allow-list entry whose import is gone must be removed (the list only shrinks)."""
    stale = [
        (rel, module) for rel, module in ALLOWED
        if not (ROOT / rel).exists() or module not in {m for _, m in _imports(ROOT / rel)}
    ]
    assert not stale, f"allow-list entries no longer needed: {stale}"


def test_hardware_errors_come_from_devices_without_importing_pyvisa_early() -> None:
    """``import devices`` loads neither pyvisa nor the bench path; ``devices.HARDWARE_ERRORS``
    (what ``bsl`` catches as a hardware failure) is PyVISA's and the drivers' error types."""
    import subprocess
    import sys

    code = (
        "import sys, devices\n"
        "early = sorted(m for m in ('pyvisa', 'drivers', 'devices.hil.bench') if m in sys.modules)\n"
        "assert not early, early\n"
        "import pyvisa.errors, drivers\n"
        "assert devices.HARDWARE_ERRORS == (pyvisa.errors.Error, drivers.InstrumentError)\n"
        "assert devices.hardware_errors() == devices.HARDWARE_ERRORS\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
