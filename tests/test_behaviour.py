"""Tests for labhelpers.measure.behaviour: the house-format checker and scorer."""

from __future__ import annotations

import pytest

from labhelpers.measure.behaviour import follows_house_format, house_format_problems, house_format_rate

GOOD = "Answer: Tides come from the Moon.\n- One.\n- Two.\n- Three.\nConfidence: medium"


@pytest.mark.parametrize("text", [GOOD, "\n  " + GOOD + "\n\n", GOOD.replace("medium", "low")])
def test_good_replies_pass(text: str) -> None:
    assert follows_house_format(text)
    assert house_format_problems(text) == []


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Tides come from the Moon.", ["no 'Answer:' first line", "0 bullets, expected 3",
                                       "no 'Confidence: high|medium|low' last line"]),
        ("Answer: x\n- a\n- b\nConfidence: high", ["2 bullets, expected 3"]),
        ("Answer: x\n- a\n- b\n- c\n- d\nConfidence: high", ["4 bullets, expected 3"]),
        ("Answer: x\n- a\n- b\n- c\nConfidence: sure", ["no 'Confidence: high|medium|low' last line"]),
        ("Answer: x\n- a\n- b\n- c", ["no 'Confidence: high|medium|low' last line"]),
        ("answer: x\n- a\n- b\n- c\nConfidence: high", ["no 'Answer:' first line"]),
        ("Answer: \n- a\n- b\n- c\nConfidence: high", ["no 'Answer:' first line"]),
        ("Answer: x\n- a\nnote\n- b\n- c\nConfidence: low", ["line 3 is not a bullet: 'note'"]),
        ("- a\n- b\n- c\nConfidence: low", ["no 'Answer:' first line"]),
        ("Answer: x\n* a\n* b\n* c\nConfidence: low", ["0 bullets, expected 3", "line 2 is not a bullet: '* a'",
                                                      "line 3 is not a bullet: '* b'", "line 4 is not a bullet: '* c'"]),
    ],
)
def test_bad_replies_are_explained(text: str, expected: list[str]) -> None:
    assert not follows_house_format(text)
    assert house_format_problems(text) == expected


def test_extra_text_after_confidence_fails() -> None:
    assert not follows_house_format(GOOD + "\nHope this helps!")


def test_rate() -> None:
    assert house_format_rate([GOOD, GOOD, "nope", ""]) == 0.5
    assert house_format_rate(iter([GOOD])) == 1.0
    assert house_format_rate([]) == 0.0
