"""Hypothesis strategies for the input fuzzing (``test_soak_fuzz.py``): TOML documents with the
right keys and wrong values, raw text and bytes, mutations of valid files, trace CSVs."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from typing import Any

from hypothesis import strategies as st

# -- writing TOML ------------------------------------------------------------------------------


def _escape(text: str) -> str:
    out = []
    for ch in text:
        if ch in '"\\' or ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def toml_value(value: Any) -> str:
    """Any generated value as a TOML value (inline tables and arrays nest)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return _escape(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_escape(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(type(value))


def toml_document(doc: dict[str, Any]) -> str:
    """``{key: value}``: scalars and inline values at top level, ``{name: dict}`` as
    ``[name]`` tables, ``{name: [dict, ...]}`` as ``[[name]]`` arrays of tables."""
    top, tables, arrays = [], [], []
    for key, value in doc.items():
        if isinstance(value, dict):
            tables.append((key, value))
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            arrays.append((key, value))
        else:
            top.append(f"{_escape(key)} = {toml_value(value)}")
    lines = top
    for key, table in tables:
        lines += ["", f"[{_escape(key)}]", *(f"{_escape(k)} = {toml_value(v)}" for k, v in table.items())]
    for key, items in arrays:
        for table in items:
            lines += ["", f"[[{_escape(key)}]]"]
            lines += [f"{_escape(k)} = {toml_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


# -- values ---------------------------------------------------------------------------------------

TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=24)
WEIRD_TEXT = st.sampled_from(["", " ", "0", "-1", "nan", "inf", "1e400", "~nobody/x", "..", "/", ".",
                              "a.toml", "/nonexistent/x.toml", "\u00e9\u4e2d\U0001f600", "\t", "-", "--x",
                              "1,2", "c8k5s2", "c0k5", "rram.toml", "ideal", "rram", "x" * 300, "\x00"])
FLOATS = st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                   st.sampled_from([0.0, -0.0, -1.0, 1.0, 0.5, 1e-300, 1e300, math.nan, math.inf, -math.inf]))
INTS = st.one_of(st.integers(-10, 100), st.integers(-(2**63), 2**63 - 1),
                 st.sampled_from([0, -1, 2**31, 10**30]))
DATES = st.one_of(st.datetimes(), st.dates(), st.times())
SCALARS = st.one_of(st.booleans(), INTS, FLOATS, TEXT, WEIRD_TEXT, DATES)
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                        st.dictionaries(TEXT, inner, max_size=3)),
                      max_leaves=8)


def field_value(f: dataclasses.Field[Any],
                choices: dict[str, list[Any]] | None = None) -> st.SearchStrategy[Any]:
    """A value for dataclass field ``f``: a plausible one of its type (or one of its
    ``choices``) or anything at all."""
    kind = str(f.type)
    plausible: st.SearchStrategy[Any] = {
        "int": INTS, "float": st.one_of(FLOATS, INTS), "bool": st.booleans(),
        "str": st.one_of(TEXT, WEIRD_TEXT),
    }.get(kind, VALUES)
    if choices and f.name in choices:
        plausible = st.one_of(st.sampled_from(choices[f.name]), plausible)
    return st.one_of(plausible, plausible, VALUES)


def table_of(cls: type | tuple[type, ...], *, choices: dict[str, list[Any]] | None = None,
             fixed: dict[str, Any] | None = None, extra_keys: int = 1) -> st.SearchStrategy[dict[str, Any]]:
    """A dict of some fields of dataclass ``cls`` (or of several, the first naming a field
    winning) with plausible-or-wrong values, plus sometimes unknown keys; ``fixed`` values
    are kept unless replaced."""
    named: dict[str, dataclasses.Field[Any]] = {}
    for klass in cls if isinstance(cls, tuple) else (cls,):
        for f in dataclasses.fields(klass):
            named.setdefault(f.name, f)
    fields = list(named.values())

    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Any]:
        out = dict(fixed or {})
        for f in draw(st.lists(st.sampled_from(fields), max_size=len(fields), unique_by=lambda f: f.name)):
            out[f.name] = draw(field_value(f, choices))
        for _ in range(draw(st.integers(0, extra_keys))):
            out[draw(TEXT)] = draw(VALUES)
        return out

    return build()


# -- raw and mutated files ----------------------------------------------------------------------

RAW = st.one_of(st.binary(max_size=400), TEXT.map(lambda t: t.encode("utf-8")),
                st.text(max_size=400).map(lambda t: t.encode("utf-8", "surrogatepass")))


@st.composite
def mutated(draw: st.DrawFn, text: str) -> bytes:
    """A valid file's text with a few random edits: lines dropped, repeated, swapped,
    values replaced, garbage inserted, the file cut short."""
    lines = text.splitlines()
    for _ in range(draw(st.integers(1, 4))):
        if not lines:
            lines = [""]
        i = draw(st.integers(0, len(lines) - 1))
        edit = draw(st.sampled_from(["drop", "repeat", "swap", "value", "insert", "cut", "bytes"]))
        if edit == "drop":
            del lines[i]
        elif edit == "repeat":
            lines.insert(i, lines[i])
        elif edit == "swap":
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        elif edit == "value" and "=" in lines[i]:
            key = lines[i].split("=", 1)[0]
            lines[i] = f"{key}= {toml_value(draw(VALUES))}"
        elif edit == "value" and "," in lines[i]:  # a CSV row: replace one cell
            cells = lines[i].split(",")
            cells[draw(st.integers(0, len(cells) - 1))] = draw(st.one_of(TEXT, WEIRD_TEXT)).replace("\n", " ")
            lines[i] = ",".join(cells)
        elif edit == "insert":
            lines.insert(i, draw(TEXT))
        elif edit == "cut":
            lines = lines[: i + 1]
            lines[-1] = lines[-1][: draw(st.integers(0, len(lines[-1])))]
    data = ("\n".join(lines) + "\n").encode("utf-8", "surrogatepass")
    if draw(st.integers(0, 9)) == 0:  # a few stray bytes
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.binary(min_size=1, max_size=4)) + data[at:]
    return data


# -- trace CSVs ---------------------------------------------------------------------------------

COLUMNS = ["device", "cycle", "pulse", "polarity", "conductance_S"]
CELL = st.one_of(
    st.integers(-3, 40).map(str), st.integers(-(2**70), 2**70).map(str),
    st.sampled_from(["set", "reset", "SET", " Reset ", "", "nan", "inf", "-inf", "1e400", "-1e-5", "1.5",
                     "2.0", "1e-5", "9" * 30, "0x10", "1_000", "#", "\"", "'", "0.0", "1e308", "-0", "1e300",
                     str(2**63), str(-(2**63) - 1), str(2**63 - 1), "4" * 5000]),
    FLOATS.map(repr), TEXT.map(lambda t: t.replace("\r", " ").replace("\n", " ")),
)


@st.composite
def trace_csv(draw: st.DrawFn) -> bytes:
    """A trace CSV: a header (the columns, maybe reordered, missing, repeated or extra)
    and rows of plausible-or-wrong cells; sometimes comments, blank lines, a BOM."""
    header = draw(st.permutations(COLUMNS))
    if draw(st.integers(0, 4)) == 0:
        header = draw(st.lists(st.sampled_from([*COLUMNS, "extra", " pulse ", ""]), max_size=7)) or header
    rows = []
    rate = draw(st.sampled_from([0, 3, 10, 25]))  # % of cells replaced: deep errors need mostly good rows
    for n in range(draw(st.integers(0, 12))):
        if draw(st.integers(0, 9)) == 0:
            rows.append(draw(st.sampled_from(["", "# comment", ",,,,", " "])))
            continue
        good = [draw(st.integers(0, 2)), draw(st.integers(0, 2)), n,
                draw(st.sampled_from(["set", "reset"])), draw(st.floats(1e-6, 1e-4))]
        cells = [str(v) for v in good]
        for i in range(len(cells)):
            if draw(st.integers(0, 99)) < rate:
                cells[i] = draw(CELL)
        order = {name: v for name, v in zip(COLUMNS, cells, strict=True)}
        row = [order.get(h.strip(), draw(CELL)) for h in header]
        if draw(st.integers(0, 29)) == 0:
            row = row[: draw(st.integers(0, len(row)))]
        rows.append(",".join(c.replace(",", ";") for c in row))
    text = "\n".join([",".join(header), *rows]) + "\n"
    if draw(st.integers(0, 9)) == 0:
        text = "\ufeff" + text
    return text.encode("utf-8", "surrogatepass")
