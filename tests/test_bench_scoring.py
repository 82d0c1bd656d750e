"""The paper's scoring: numbers within ±10 %, otherwise normalised exact match."""

from __future__ import annotations

import pytest

from llmcompiler_graph.bench import extract_number, is_correct, normalize_answer


@pytest.mark.parametrize(
    ("prediction", "label", "ok"),
    [
        ("5931.8", "5931.80", True),
        ("The answer is: 6,400", "5931.80", True),  # +7.9 %
        ("6600 meters", "5931.80", False),  # +11.3 %
        ("Action: Finish(1.94)", "1.94", True),
        ("-3.0", "-3.2", True),
        ("between 3 and 4", "3.5", False),  # two different numbers: no single answer
        ("0.05", "0", True),
        ("Yes.", "yes", True),
        ("The Mariana Trench", "Mariana Trench", True),
        ("Answer: Sahara  desert!", "Sahara Desert", True),
        ("no", "yes", False),
        ("", "yes", False),
        ("Star Wars Episode IV - A New Hope", "Star Wars Episode IV - A New Hope", True),
    ],
)
def test_is_correct(prediction: str, label: str, ok: bool) -> None:
    assert is_correct(prediction, label) is ok


def test_normalize_and_extract() -> None:
    assert normalize_answer("  The  Answer is: An Apple. ") == "apple"
    assert extract_number("about 1,234.5 km") == 1234.5
    assert extract_number("no number") is None
