from __future__ import annotations

from pathlib import Path

import pytest

from protocols import Protocol, load_protocol

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def gt() -> Protocol:
    return load_protocol("gt-eri")


@pytest.fixture(scope="session")
def hn() -> Protocol:
    return load_protocol("hn-cicesct")
