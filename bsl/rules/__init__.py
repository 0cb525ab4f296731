"""Learning rules behind a name registry.

A rule is a small object made from the run config; the training loop only calls
``rule.train_step(net, x, target, gen)`` and ``rule.uses_devices``. To add a rule,
write a module here with a :class:`LearningRule` subclass decorated with
``@register("name")`` and import it below; the loop does not change. Another package adds
a rule the same way in its own module, named by an entry point of the group
``memristor_bsl.rules`` (see the README's "Plugins"): :func:`load_plugins` imports it when
this package is imported.

The rule's own settings are a frozen :class:`RuleSettings` dataclass named by its
``settings`` class attribute (one docstring per field, units in it; checks in
``validate``): the run config holds one as ``config.rule_settings``, run files give them
in a ``[rule]`` table, and ``bsl train`` gets a flag per field. Settings shared by the
device rules (``update_probability``, ``hidden_update_scale``) are in
:class:`DeviceRuleSettings`; ``anneal`` is in the base. Rules reuse the loop
:func:`bsl.rules.base.backprop`, shaped by :class:`bsl.rules.base.BackpropHooks`.
"""

from __future__ import annotations

import sys
from importlib.metadata import entry_points

from . import bold, boolnet, bsl, logic, manhattan, sgd  # noqa: E402,F401  (registration side effect)
from .base import RULES, DeviceRuleSettings, LearningRule, RuleSettings, StepStats, register

__all__ = ["RULES", "DeviceRuleSettings", "LearningRule", "RuleSettings", "StepStats", "register", "get_rule",
           "load_plugins"]

RULE_GROUP = "memristor_bsl.rules"
"""The entry-point group naming modules that register rules with :func:`register`."""
_LOADED: set[tuple[str, str]] = set()


def load_plugins() -> None:
    """Import each plugin module of :data:`RULE_GROUP` not imported yet (its ``@register``
    adds its rules); one that fails is left out with one line on stderr naming it."""
    for ep in sorted(entry_points(group=RULE_GROUP), key=lambda ep: (ep.name, ep.value)):
        if (ep.name, ep.value) in _LOADED:
            continue
        _LOADED.add((ep.name, ep.value))
        try:
            ep.load()
        except Exception as exc:
            dist = getattr(ep, "dist", None)
            where = f", from {dist.name}" if dist is not None else ""
            print(f"bsl: rule plugin {ep.name!r} ({ep.value}{where}) not loaded: {type(exc).__name__}: "
                  f"{' '.join(str(exc).split())}", file=sys.stderr)


def get_rule(name: str) -> type[LearningRule]:
    """The rule class registered under ``name``."""
    if name not in RULES:
        load_plugins()  # one installed since this package was imported
    try:
        return RULES[name]
    except KeyError:
        raise ValueError(f"unknown rule {name!r}: choose one of {sorted(RULES)}") from None


load_plugins()
