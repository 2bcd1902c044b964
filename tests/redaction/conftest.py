from __future__ import annotations

import pytest

from servicelog.redaction import RedactionPolicy


@pytest.fixture
def policy() -> RedactionPolicy:
    """A fresh default policy with the PII patterns on (the production profile's)."""
    return RedactionPolicy(pii=True)
