"""The wiring map of a hardware-in-the-loop bench, read from a TOML file.

It says which instruments are used (VISA resource strings), which switch-matrix rows
carry the SMU terminals, and, for every crossbar (one per network layer, in layer
order), which matrix column ("pin") each word line and each G+/G- bit line is on.
The instrument-backed crossbar and the emulator read the same file. Example::

    [instruments]
    smu = "TCPIP::127.0.0.1::5025::SOCKET"     # Keysight B2912A: two channels
    smu_model = "b2900"                        # or "2450": then smu_sense names the second SMU
    matrix = "TCPIP::127.0.0.1::5026::SOCKET"  # Keithley 707B/708B (TSP)

    [terminals]
    drive_row = "A"        # matrix row wired to the drive terminal (sources V)
    sense_row = "B"        # matrix row wired to the sense terminal (0 V, measures I)
    drive_channel = 1      # B2900 channels
    sense_channel = 2

    [[arrays]]             # layer 0: 17 word lines, 8 weights (16 bit lines)
    rows = 17
    cols = 8
    first_pin = 0          # word lines on pins 0..16, G+ bit lines next, then G- bit lines

    [[arrays]]
    rows = 9
    cols = 4
    word_line_pins = [33, 34, 35, 36, 37, 38, 39, 40, 41]   # explicit lists work too
    plus_pins = [42, 43, 44, 45]
    minus_pins = [46, 47, 48, 49]

A pin ``p`` is matrix slot ``p // 12 + 1``, column ``p % 12 + 1``; the crosspoint of
terminal row ``R`` and pin ``p`` is named like ``1A05`` (slot, row letter, column).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..toml_io import check_keys, read_toml

PINS_PER_SLOT = 12
SLOTS = 6
MATRIX_ROWS = "ABCDEFGH"
SMU_MODELS = ("b2900", "2450")


class WiringError(ValueError):
    """The wiring file is inconsistent or incomplete."""


def crosspoint(row: str, pin: int) -> str:
    """The 707B channel name of matrix row ``row`` and pin ``pin``, e.g. ``1A05``."""
    return f"{pin // PINS_PER_SLOT + 1}{row}{pin % PINS_PER_SLOT + 1:02d}"


@dataclass(frozen=True)
class ArrayWiring:
    """The pins of one crossbar's lines."""

    rows: int
    cols: int
    word_line_pins: tuple[int, ...]
    plus_pins: tuple[int, ...]
    """Bit line of each weight's G+ device (column ``j``)."""
    minus_pins: tuple[int, ...]
    """Bit line of each weight's G- device."""

    def pins(self) -> tuple[int, ...]:
        return self.word_line_pins + self.plus_pins + self.minus_pins


@dataclass(frozen=True)
class Wiring:
    """A whole bench: instruments, terminal rows and one :class:`ArrayWiring` per layer."""

    smu: str
    matrix: str
    smu_model: str = "b2900"
    smu_sense: str = ""
    """Resource of the second SMU when ``smu_model = "2450"`` (sense terminal)."""
    drive_row: str = "A"
    sense_row: str = "B"
    drive_channel: int = 1
    sense_channel: int = 2
    arrays: tuple[ArrayWiring, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.smu_model not in SMU_MODELS:
            raise WiringError(f"smu_model = {self.smu_model!r}: choose one of {SMU_MODELS}")
        if self.smu_model == "2450" and not self.smu_sense:
            raise WiringError("smu_model = '2450' needs smu_sense, the resource of the second SMU")
        for name in ("drive_row", "sense_row"):
            row = getattr(self, name)
            if not (isinstance(row, str) and len(row) == 1 and row in MATRIX_ROWS):
                raise WiringError(f"{name} = {getattr(self, name)!r}: a matrix row letter A-H")
        if self.drive_row == self.sense_row:
            raise WiringError("drive_row and sense_row must differ")
        if self.smu_model == "b2900" and self.drive_channel == self.sense_channel:
            raise WiringError("drive_channel and sense_channel must differ on a two-channel SMU")
        if not self.arrays:
            raise WiringError("no [[arrays]]: wire at least one crossbar")
        seen: dict[int, str] = {}
        for k, a in enumerate(self.arrays):
            for p in a.pins():
                if not 0 <= p < PINS_PER_SLOT * SLOTS:
                    raise WiringError(f"array {k}: pin {p} outside 0..{PINS_PER_SLOT * SLOTS - 1}")
                if p in seen:
                    raise WiringError(f"pin {p} is wired twice ({seen[p]} and array {k})")
                seen[p] = f"array {k}"

    def shape(self, index: int) -> tuple[int, int]:
        return self.arrays[index].rows, self.arrays[index].cols


def _array(k: int, table: dict[str, Any]) -> ArrayWiring:
    try:
        rows, cols = int(table["rows"]), int(table["cols"])
    except (KeyError, TypeError, ValueError, OverflowError):
        raise WiringError(f"array {k}: needs integer rows and cols") from None
    if rows < 1 or cols < 1:
        raise WiringError(f"array {k}: rows and cols must be >= 1")
    if rows + 2 * cols > PINS_PER_SLOT * SLOTS:  # before any pin list is built from them
        raise WiringError(f"array {k}: {rows} rows and {cols} cols need {rows + 2 * cols} pins, more than "
                          f"the matrix has (pins outside 0..{PINS_PER_SLOT * SLOTS - 1})")
    if "first_pin" in table:
        try:
            first = int(table["first_pin"])
        except (TypeError, ValueError, OverflowError):
            raise WiringError(f"array {k}: first_pin must be an integer, "
                              f"got {table['first_pin']!r}") from None
        word = tuple(range(first, first + rows))
        plus = tuple(range(first + rows, first + rows + cols))
        minus = tuple(range(first + rows + cols, first + rows + 2 * cols))
    else:
        try:
            word, plus, minus = (tuple(int(p) for p in table[name])
                                 for name in ("word_line_pins", "plus_pins", "minus_pins"))
        except KeyError as exc:
            raise WiringError(f"array {k}: give first_pin or {exc.args[0]}") from None
        except (TypeError, ValueError, OverflowError):
            raise WiringError(f"array {k}: word_line_pins, plus_pins and minus_pins must be lists of "
                              "integers") from None
    expected = (("word_line_pins", word, rows), ("plus_pins", plus, cols), ("minus_pins", minus, cols))
    for name, pins, n in expected:
        if len(pins) != n:
            raise WiringError(f"array {k}: {name} has {len(pins)} pins, expected {n}")
    return ArrayWiring(rows, cols, word, plus, minus)


def load_wiring(path: str | Path, smu: str | None = None) -> Wiring:
    """Read a wiring file; ``smu`` overrides its SMU resource (``--resource``)."""
    data = read_toml(path, "wiring file")
    instruments = data.get("instruments", {})
    terminals = data.get("terminals", {})
    check_keys(data, ("instruments", "terminals", "arrays"), f"wiring file {path}", what="table(s)",
               error=WiringError)
    for name, value in (("instruments", instruments), ("terminals", terminals)):
        if not isinstance(value, dict):
            raise WiringError(f"wiring file {path}: [{name}] must be a table, got {value!r}")
    arrays = data.get("arrays", [])
    if not (isinstance(arrays, list) and all(isinstance(t, dict) for t in arrays)):
        raise WiringError(f"wiring file {path}: arrays must be [[arrays]] tables, got {arrays!r}")
    try:
        channels = int(terminals.get("drive_channel", 1)), int(terminals.get("sense_channel", 2))
    except (TypeError, ValueError, OverflowError):
        raise WiringError(f"wiring file {path}: [terminals] drive_channel and sense_channel must be "
                          "integers") from None
    try:
        return Wiring(
            smu=smu or instruments["smu"], matrix=instruments["matrix"],
            smu_model=instruments.get("smu_model", "b2900"), smu_sense=instruments.get("smu_sense", ""),
            drive_row=terminals.get("drive_row", "A"), sense_row=terminals.get("sense_row", "B"),
            drive_channel=channels[0], sense_channel=channels[1],
            arrays=tuple(_array(k, t) for k, t in enumerate(arrays)),
        )
    except KeyError as exc:
        raise WiringError(f"wiring file {path}: [instruments] needs {exc.args[0]}") from None
