"""Hypothesis profiles of the input fuzzing: ``ci`` (the default: a few hundred cases per
parser, derandomized, so CI is deterministic) and ``soak`` (at least 1,000 per parser;
``python tests/soak/soak_fuzz.py`` selects it with ``BSL_FUZZ_PROFILE=soak`` and a seed)."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_COMMON = {"deadline": None, "database": None, "print_blob": True,
           "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large,
                                     HealthCheck.filter_too_much]}
settings.register_profile("ci", max_examples=150, derandomize=True, **_COMMON)
settings.register_profile("soak", max_examples=1000, **_COMMON)
settings.load_profile(os.environ.get("BSL_FUZZ_PROFILE", "ci"))
