"""Reading and writing the flat TOML tables that presets and run configs use."""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NoReturn

import tomli_w

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["check_keys", "read_toml", "refuse", "toml_value", "write_toml_tables"]


def read_toml(path: str | Path, what: str) -> dict[str, Any]:
    """Parse a TOML file; ``what`` names the kind of file in error messages."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} does not exist or is not a file")
    with path.open("rb") as fh:
        try:
            return tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"{what} {path}: not valid TOML ({exc})") from exc


def refuse(where: str, name: str, value: Any, requirement: str) -> NoReturn:
    """Refuse one setting in one line: ``{where}{name} = {value!r}: {requirement}`` (``where``
    is e.g. ``"config "`` or ``"DeviceModel."``)."""
    raise ValueError(f"{where}{name} = {value!r}: {requirement}")


def check_keys(
    given: Iterable[str],
    known: Iterable[str],
    where: str = "",
    *,
    what: str = "setting(s)",
    known_as: str | None = None,
    message: str | None = None,
    error: type[Exception] = ValueError,
) -> None:
    """Refuse the names in ``given`` that are not in ``known``, all of them in one error.

    The message is ``"{where}: unknown {what} {unknown}"`` (``unknown`` the sorted list),
    followed by ``"; {known_as}: {known}"`` (the sorted known names) when ``known_as`` is
    given. ``message`` replaces it with a format string over the fields ``where``, ``what``,
    ``unknown``, ``unknown_list`` (comma-joined), ``known`` (sorted list) and ``known_list``
    (comma-joined, in ``known``'s order). ``error`` is the exception class raised."""
    known = list(known)
    unknown = sorted(set(given) - set(known))
    if not unknown:
        return
    if message is None:
        message = "{where}: unknown {what} {unknown}"
        if known_as is not None:
            message += f"; {known_as}: {{known}}"
    raise error(
        message.format(
            where=where, what=what, unknown=unknown, unknown_list=", ".join(unknown),
            known=sorted(known), known_list=", ".join(known),
        )
    )


def _check_scalar(value: Any) -> None:
    """Refuse what the flat tables may not hold: anything but bool, int, finite float, str
    (tomli-w would write ``nan``/``inf``, which the readers of these files must not see)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"cannot write non-finite value {value!r} to TOML")
    if not isinstance(value, bool | int | float | str):
        raise TypeError(f"cannot write {type(value).__name__} to TOML")


def toml_value(value: Any) -> str:
    """One scalar as TOML (bool, int, finite float, str)."""
    _check_scalar(value)
    return tomli_w.dumps({"v": value}).removeprefix("v = ").rstrip("\n")


def write_toml_tables(path: str | Path, tables: dict[str, dict[str, Any]], *, header: str) -> Path:
    """Write ``{table: {key: scalar}}`` as a TOML file with a comment line on top."""
    path = Path(path)
    for table in tables.values():
        for value in table.values():
            _check_scalar(value)
    path.write_text(f"# {header}\n\n" + tomli_w.dumps(tables), encoding="utf-8")
    return path
