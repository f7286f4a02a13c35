"""The behaviour the lab teaches, the *house format*, and how to score a model's replies against it.

Every assistant turn in the bundled dataset looks exactly like this (no trailing newline)::

    Answer: <one sentence>
    - <bullet>
    - <bullet>
    - <bullet>
    Confidence: high|medium|low

and every line says something: a reply whose lines repeat each other (the same bullet twice, a bullet that restates
the answer) or carry no words (``Answer: ...``) has the layout of the format but not the format; small models that
learned the layout often write exactly that, so the score does not count it.

The base SmolLM2 model never writes this by itself, so the share of replies that follow it
(`house_format_rate`) is a clear before/after number for a fine-tuning run. `is_degenerate` (looping replies)
measures any reply, whatever its data's format.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable

from labhelpers.base.text import normalise

CONFIDENCE_LEVELS = ("high", "medium", "low")
N_BULLETS = 3  # bullets per reply
# Two lines with at least this share of their words in common (Jaccard, on `normalise`-d words) say the same thing.
# Measured on the bundled data's 840 replies: no two lines of a reply share more than 0.36 of their words.
SAME_LINE_OVERLAP = 0.8

# One "Answer: " line, exactly three "- " lines, one "Confidence: " line; every line has text after its marker.
HOUSE_FORMAT_PATTERN = re.compile(
    r"Answer: [^\n]*\S[^\n]*\n"
    r"(?:- [^\n]*\S[^\n]*\n){3}"
    r"Confidence: (?:high|medium|low)"
)


def follows_house_format(text: str) -> bool:
    """True when ``text`` (surrounding whitespace ignored) is exactly one house-format reply whose lines each say
    something of their own.

    >>> follows_house_format("Answer: Yes.\\n- a\\n- b\\n- c\\nConfidence: high\\n")
    True
    >>> follows_house_format("Answer: Yes.\\n- a\\n- b\\nConfidence: high")
    False
    >>> follows_house_format("Answer: Yes.\\n- It is old.\\n- It is old.\\n- It is big.\\nConfidence: high")
    False
    """
    return HOUSE_FORMAT_PATTERN.fullmatch(text.strip()) is not None and not content_problems(text)


def _line_text(line: str) -> str:
    """What a line says, without its marker ("Answer: ", "- ")."""
    for marker in ("Answer:", "- "):
        if line.startswith(marker):
            return line[len(marker):]
    return line


def _same_thing(a: str, b: str) -> bool:
    """True when two lines say the same thing: equal once normalised, or most of their words shared.

    >>> _same_thing("It is old.", "it is OLD"), _same_thing("It is old.", "It is new.")
    (True, False)
    """
    a_words, b_words = set(normalise(a).split()), set(normalise(b).split())
    if not a_words or not b_words:
        return False
    return a_words == b_words or len(a_words & b_words) / len(a_words | b_words) >= SAME_LINE_OVERLAP


def content_problems(text: str) -> list[str]:
    """Why the lines of ``text`` do not each say something of their own: a line with marks but no words (``...``; an
    empty line is a layout problem, `house_format_problems` names it), or a line that repeats an earlier one (the Answer line and the bullets; the Confidence line is not compared). Empty when they do.

    >>> content_problems("Answer: ...\\n- a\\n- b\\n- c\\nConfidence: low")
    ["line 1 says nothing: 'Answer: ...'"]
    >>> content_problems("Answer: Yes.\\n- It helps.\\n- It helps a lot.\\n- It helps.\\nConfidence: low")
    ["line 4 repeats line 2: 'It helps.'"]
    """
    lines = [line for line in text.strip().split("\n") if not line.startswith("Confidence:")]
    problems = [f"line {number} says nothing: {line[:40]!r}" for number, line in enumerate(lines, start=1)
                if _line_text(line).strip() and not any(ch.isalnum() for ch in _line_text(line))]
    repeated: set[int] = set()
    for (i, a), (j, b) in itertools.combinations(enumerate(lines, start=1), 2):
        if j not in repeated and _same_thing(_line_text(a), _line_text(b)):
            repeated.add(j)
            problems.append(f"line {j} repeats line {i}: {_line_text(b).strip()[:60]!r}")
    return problems


def repeats_itself(text: str) -> bool:
    """True when two lines of ``text`` say the same thing (see `content_problems`).

    >>> repeats_itself("- Use a loop.\\n- use a loop!"), repeats_itself("Answer: a\\n- b")
    (True, False)
    """
    return any(" repeats line " in problem for problem in content_problems(text))


def house_format_problems(text: str) -> list[str]:
    """Human-readable reasons why ``text`` is not a house-format reply; empty when it is.

    >>> house_format_problems("Answer: Yes.\\n- a\\n- b\\n- c\\nConfidence: high")
    []
    >>> house_format_problems("Sure! Here you go.\\n- a\\n- b")
    ["no 'Answer:' first line", '2 bullets, expected 3', "no 'Confidence: high|medium|low' last line"]
    >>> house_format_problems("Answer: Yes.\\nAlso this.\\n- a\\n- b\\n- c\\nConfidence: very")
    ["line 2 is not a bullet: 'Also this.'", "no 'Confidence: high|medium|low' last line"]
    >>> house_format_problems("Answer: Paris.\\n- It is old.\\n- It is big.\\n- it is old!\\nConfidence: low")
    ["line 4 repeats line 2: 'it is old!'"]
    """
    lines = text.strip().split("\n")
    problems: list[str] = []
    first = 0 if lines[0].startswith("- ") else 1  # a reply that opens with a bullet: count it as one
    if first == 0 or not re.fullmatch(r"Answer: [^\n]*\S[^\n]*", lines[0]):
        problems.append("no 'Answer:' first line")
    has_confidence = len(lines) > 1 and re.fullmatch(r"Confidence: (?:high|medium|low)", lines[-1]) is not None
    end = len(lines) - 1 if len(lines) > 1 and lines[-1].startswith("Confidence:") else len(lines)
    middle = lines[first:end]
    bullets = [line for line in middle if re.fullmatch(r"- [^\n]*\S[^\n]*", line)]
    if len(bullets) != N_BULLETS:
        problems.append(f"{len(bullets)} bullets, expected {N_BULLETS}")
    for number, line in enumerate(middle, start=first + 1):
        if line not in bullets:
            problems.append(f"line {number} is not a bullet: {line[:40]!r}")
    if not has_confidence:
        problems.append("no 'Confidence: high|medium|low' last line")
    return problems + content_problems(text)


def house_format_rate(texts: Iterable[str]) -> float:
    """Share of ``texts`` that follow the house format (0.0 for no texts).

    >>> house_format_rate(["Answer: A.\\n- x\\n- y\\n- z\\nConfidence: low", "Hello!"])
    0.5
    >>> house_format_rate([])
    0.0
    """
    results = [follows_house_format(text) for text in texts]
    return sum(results) / len(results) if results else 0.0


def data_teaches_house_format(replies: Iterable[str], threshold: float = 0.9) -> bool:
    """True when at least ``threshold`` of a dataset's reference replies follow the house format.

    Only then is the house-format rate a before/after measure; on other data (e.g. the real no_robots, whose
    replies are free-form) the rate stays at 0% however well the run went, and saying so prevents a false alarm.

    >>> data_teaches_house_format(["Answer: a\\n- b\\n- c\\n- d\\nConfidence: low"] * 9 + ["free text"])
    True
    >>> data_teaches_house_format(["Sure! Here is a poem."])
    False
    """
    return house_format_rate(replies) >= threshold


# ----------------------------------------------------------------- any reply, format or not
def repeated_ngram_share(text: str, n: int = 4) -> float:
    """Share of word n-grams that repeat an earlier one (0 = no repetition; loops approach 1).

    >>> repeated_ngram_share("a b c d e f"), round(repeated_ngram_share("go on " * 10), 2)
    (0.0, 0.88)
    """
    words = text.split()
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    return 1 - len(set(grams)) / len(grams) if grams else 0.0


def is_degenerate(text: str, threshold: float = 0.5) -> bool:
    """True for looping text: at least half of its 4-grams repeat.

    >>> is_degenerate("yes " * 20), is_degenerate("Answer: Paris.\\n- a\\n- b\\n- c")
    (True, False)
    """
    return repeated_ngram_share(text) >= threshold
