"""Reading tidy pulse-response trace CSV files (the layout of :mod:`devices.fitting.characterize`)
written by :meth:`~devices.fitting.characterize.Trace.to_csv` or by a lab."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import numpy as np

from .characterize import POLARITIES, TRACE_COLUMNS, Trace


def read_trace_csv(path: str | Path) -> Trace:
    """Read a tidy trace CSV (see the module doc) written by :meth:`Trace.to_csv` or a lab.

    The header row must name the columns ``device, cycle, pulse, polarity, conductance_S``
    (any order; surrounding spaces and a UTF-8 byte-order mark are tolerated; further
    columns are ignored). Blank lines and lines starting with ``#`` are skipped.
    ``device``, ``cycle`` and ``pulse`` are integers (``pulse >= 0``), ``polarity`` is
    ``set`` or ``reset`` (any case), ``conductance_S`` a finite number ``>= 0`` (S).
    Branches may have any length and need not start at pulse 0.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: invalid content; the message names the file, the line and the column.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"trace file {path} does not exist")
    if path.is_dir():
        raise ValueError(f"trace file {path} is a directory")
    with path.open("r", encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(fh)
        try:
            return _parse_trace(reader, path)
        except UnicodeDecodeError as exc:
            raise ValueError(
                f"{path}: not a UTF-8 text file ({exc.reason} at byte {exc.start})"
            ) from exc
        except csv.Error as exc:
            raise ValueError(f"{path}, line {reader.line_num}: malformed CSV ({exc})") from exc


def _parse_trace(reader: Any, path: Path) -> Trace:
    header: list[str] | None = None
    header_line = 0
    for row in reader:
        if _skip(row):
            continue
        header = [h.strip() for h in row]
        header_line = reader.line_num
        break
    expected = ",".join(TRACE_COLUMNS)
    if header is None:
        raise ValueError(f"{path}, line 1: empty file, expected a header row '{expected}'")
    where = f"{path}, line {header_line}"
    for name in TRACE_COLUMNS:
        if name not in header:
            raise ValueError(
                f"{where}: missing column {name!r} (header has {header}; required: {expected})"
            )
        if header.count(name) > 1:
            raise ValueError(f"{where}: column {name!r} appears more than once in the header")
    index = {name: header.index(name) for name in TRACE_COLUMNS}

    cols: dict[str, list] = {name: [] for name in TRACE_COLUMNS}
    lines: list[int] = []
    seen: dict[tuple[int, int, str, int], int] = {}
    for row in reader:
        if _skip(row):
            continue
        line = reader.line_num
        values = {}
        for name, i in index.items():
            raw = row[i].strip() if i < len(row) else ""
            if raw == "":
                raise ValueError(f"{path}, line {line}, column {name!r}: missing value")
            values[name] = _parse_value(raw, name, path, line)
        key = (int(values["device"]), int(values["cycle"]), str(values["polarity"]), int(values["pulse"]))
        if key in seen:
            raise ValueError(
                f"{path}, line {line}, column 'pulse': device {key[0]}, cycle {key[1]}, "
                f"{key[2]} pulse {key[3]} already appears on line {seen[key]}"
            )
        seen[key] = line
        for name in TRACE_COLUMNS:
            cols[name].append(values[name])
        lines.append(line)
    if not lines:
        raise ValueError(f"{path}, line {header_line}: no data rows after the header")
    return Trace(
        device=np.array(cols["device"], dtype=np.int64),
        cycle=np.array(cols["cycle"], dtype=np.int64),
        pulse=np.array(cols["pulse"], dtype=np.int64),
        polarity=np.array(cols["polarity"], dtype=str),
        conductance_S=np.array(cols["conductance_S"], dtype=np.float64),
        source=str(path),
    )


def _skip(row: list[str]) -> bool:
    return not row or all(not cell.strip() for cell in row) or row[0].lstrip().startswith("#")


def _parse_value(raw: str, name: str, path: Path, line: int) -> int | float | str:
    where = f"{path}, line {line}, column {name!r}"
    if name == "polarity":
        pol = raw.lower()
        if pol not in POLARITIES:
            raise ValueError(f"{where}: unknown polarity {raw!r} (expected 'set' or 'reset')")
        return pol
    if name == "conductance_S":
        try:
            g = float(raw)
        except ValueError:
            raise ValueError(f"{where}: {raw!r} is not a number (conductance in S)") from None
        if not math.isfinite(g):
            raise ValueError(f"{where}: conductance {raw!r} is not finite")
        if g < 0:
            raise ValueError(f"{where}: conductance {raw!r} is negative (must be >= 0 S)")
        return g
    try:
        value = int(raw)
    except ValueError:
        try:
            as_float = float(raw)
        except ValueError:
            raise ValueError(f"{where}: {raw!r} is not an integer") from None
        if not (math.isfinite(as_float) and as_float.is_integer()):
            raise ValueError(f"{where}: {raw!r} is not an integer") from None
        value = int(as_float)
    if not -(2**63) <= value < 2**63:
        raise ValueError(f"{where}: {raw!r} is out of range (a 64-bit integer)")
    if name == "pulse" and value < 0:
        raise ValueError(f"{where}: pulse number {value} is negative (must be >= 0)")
    return value


__all__ = ["read_trace_csv"]
