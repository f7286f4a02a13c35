"""Text as the lab compares it: one normal form for near duplicates (the sanity assistant's data checks) and for
repetition inside a reply (the house-format score).

    >>> normalise("  Hello,   WORLD!! ")
    'hello world'
"""

from __future__ import annotations

import functools
import unicodedata

NORMALISATION = "NFKC, casefolded, punctuation made spaces (operators * / % & # @ kept), whitespace collapsed"
_KEPT_PUNCTUATION = "*/%&#@\\"  # Unicode punctuation that is an operator in math and code: "6*3" is not "6/3"


@functools.lru_cache(maxsize=1)
def _punctuation_to_space() -> dict[int, str]:
    # every Unicode punctuation code point (category P*); none lies above U+1FFFF, so the scan stops there (~40 ms)
    return {c: " " for c in range(0x20000)
            if unicodedata.category(chr(c)).startswith("P") and chr(c) not in _KEPT_PUNCTUATION}


def normalise(text: str) -> str:
    """``text`` as the near-duplicate checks compare it: NFKC, casefolded, punctuation made spaces, whitespace collapsed.

    Letters, digits, symbols (``+``, ``=``, ``$``) and the operators ``* / % & # @ \\`` stay, so "2+2", "2*2" and
    "2/2" remain different rows.

    >>> normalise("  Hello,   WORLD!! ") == normalise("hello world") == normalise("ＨＥＬＬＯ—world")
    True
    >>> normalise("What is 2+2?"), normalise("What is 6*3?"), normalise("“Quoted”, (bracketed)")
    ('what is 2+2', 'what is 6*3', 'quoted bracketed')
    """
    return " ".join(unicodedata.normalize("NFKC", text).casefold().translate(_punctuation_to_space()).split())
