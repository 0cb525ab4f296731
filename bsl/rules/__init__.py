"""Learning rules behind a name registry.

A rule is a small object made from the run config; the training loop only calls
``rule.train_step(net, x, target, gen)`` and ``rule.uses_devices``. To add a rule,
write a module here with a :class:`LearningRule` subclass decorated with
``@register("name")`` and import it below; the loop does not change.
"""

from __future__ import annotations

from . import bsl, manhattan, sgd  # noqa: E402,F401  (registration side effect)
from .base import RULES, LearningRule, StepStats, register

__all__ = ["RULES", "LearningRule", "StepStats", "register", "get_rule"]


def get_rule(name: str) -> type[LearningRule]:
    """The rule class registered under ``name``."""
    try:
        return RULES[name]
    except KeyError:
        raise ValueError(f"unknown rule {name!r}: choose one of {sorted(RULES)}") from None
