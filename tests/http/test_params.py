"""Request parameters (http/params.py): the urlencoded parser the ping path uses instead of
``urllib.parse.parse_qsl`` must give exactly its pairs."""

from __future__ import annotations

import random
from urllib.parse import parse_qsl

import pytest

from rtbridge.http.params import query_pairs

EDGES = [
    "", "&", "&&a=1&", "a", "a=", "=b", "a=b&&c", "k=v=w", ";a=1", "a=1;b=2",
    "key=k&caller_number=%2B12025550102&caller_state=CA", "caller_number=+12025550102",
    "a+b%20c=d+e", "%zz=%4", "a=%", "a=%E2%82%AC", "a=%ff%fe", "é=ü", "a=%2B%2b%20+",
]  # fmt: skip


@pytest.mark.parametrize("text", EDGES)
def test_the_pairs_of_parse_qsl_on_edge_cases(text: str) -> None:
    assert query_pairs(text) == parse_qsl(text, keep_blank_values=True)


def test_the_pairs_of_parse_qsl_on_random_text() -> None:
    rng = random.Random(20261206)
    alphabet = "ab=&%+2Bf0 é;x"
    for _ in range(5000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 16)))
        assert query_pairs(text) == parse_qsl(text, keep_blank_values=True), text
