"""A test STI-CA, its x5u server and a signer for every test here (tests/support/stir.py)."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.stir import Sti, sti


@pytest.fixture
def world(tmp_path: Path) -> Iterator[Sti]:
    with sti(tmp_path) as made:
        yield made
