"""What every fuzz test shares: the input (one byte string per case) and the per-case time bound."""

from __future__ import annotations

import time
from contextlib import contextmanager

from hypothesis import strategies as st

#: Per case: far more than any case needs (milliseconds), far less than a hang.
CASE_SECONDS = 5.0

#: The only thing hypothesis draws: ``bytegen.Reader`` turns it into the parser's input.
seeds = st.binary(max_size=400)


@contextmanager
def bounded(seconds: float = CASE_SECONDS):
    """Fail a case that takes longer than ``seconds`` (a hang shows as a failure, not a stuck run)."""
    started = time.monotonic()
    yield
    took = time.monotonic() - started
    assert took < seconds, f"one case took {took:.1f} s"
