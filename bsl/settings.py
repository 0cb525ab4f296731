"""Helpers shared by the setting dataclasses (:class:`bsl.config.TrainConfig` and the rules'
own settings, :class:`bsl.rules.base.RuleSettings`): the one-line error, the field type
check (``int``, ``float``, ``str``, ``bool`` and ``Literal[...]`` of strings) and the
attribute docstrings that become flag help."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import sys
import textwrap
from typing import Any, Literal, get_args, get_origin

from devices import refuse

_KINDS: dict[str, type | tuple[type, ...]] = {"int": int, "float": (int, float), "str": str, "bool": bool}


def fail(name: str, value: Any, requirement: str) -> None:
    """Refuse a setting in one line: ``config NAME = VALUE: REQUIREMENT``."""
    refuse("config ", name, value, requirement)


def literal_choices(cls: type, type_text: str) -> tuple[Any, ...] | None:
    """The choices of a ``Literal[...]`` annotation string of a field of ``cls`` (written
    out, or the name of a ``Literal`` alias in the module of ``cls`` or of a base), else None."""
    if type_text.startswith("Literal[") and type_text.endswith("]"):
        return tuple(ast.literal_eval("(" + type_text[len("Literal["):-1] + ",)"))
    for klass in cls.__mro__:
        alias = vars(sys.modules[klass.__module__]).get(type_text)
        if alias is not None and get_origin(alias) is Literal:
            return get_args(alias)
    return None


def choose_text(choices: tuple[Any, ...]) -> str:
    """``choose 'a' or 'b'`` for two choices, else ``choose one of (...)``."""
    if len(choices) == 2:
        return f"choose {choices[0]!r} or {choices[1]!r}"
    return f"choose one of {choices}"


def check_types(obj: Any, skip: tuple[str, ...] = ()) -> None:
    """Refuse a field whose value does not match its annotation (a bool is not an int)."""
    for f in dataclasses.fields(obj):
        if f.name in skip:
            continue
        value, type_text = getattr(obj, f.name), str(f.type)
        choices = literal_choices(type(obj), type_text)
        if choices is not None:
            if not isinstance(value, str) or value not in choices:
                fail(f.name, value, choose_text(choices))
            continue
        expected = _KINDS[type_text]
        if not isinstance(value, expected) or (isinstance(value, bool) and type_text != "bool"):
            fail(f.name, value, f"must be of type {f.type}")


def flag_type_name(cls: type, type_text: str) -> str:
    """``int``, ``float``, ``str`` or ``bool``: the value type of the flag of a field of ``cls``."""
    return "str" if literal_choices(cls, type_text) is not None else type_text


def attribute_docs(cls: type) -> dict[str, str]:
    """The one-line doc of every field of the dataclass ``cls`` and its dataclass bases (the
    string right after the field), ``cls``'s own docs winning."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass) or klass is object:
            continue
        tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        body = tree.body[0].body  # type: ignore[attr-defined]
        for node, after in zip(body, body[1:], strict=False):
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                if isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant):
                    docs[node.target.id] = " ".join(str(after.value.value).replace("``", "").split())
    return docs
