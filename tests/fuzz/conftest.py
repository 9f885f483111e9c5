"""Hypothesis profiles for the fuzz tests (``@pytest.mark.fuzz``).

``ci`` (the default, what ``make test`` runs): 10,000 cases per test, no per-case deadline (each test
bounds its cases' time itself), no example database (nothing written to the tree). ``dev``: 300 cases,
for a quick local run: ``HYPOTHESIS_PROFILE=dev pytest tests/fuzz``.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_COMMON = {
    "deadline": None,
    "database": None,
    "derandomize": False,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    "print_blob": True,
}
settings.register_profile("ci", max_examples=10_000, **_COMMON)
settings.register_profile("dev", max_examples=300, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
