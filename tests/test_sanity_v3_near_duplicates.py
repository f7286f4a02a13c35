"""Near duplicates (sanity v3, "trust nothing about the data" 2): rows that differ only in case, whitespace,
punctuation or Unicode width are duplicates; exact and near are counted apart, the normalisation is named, and the cost
on a 50 MB file stays small. Rows that differ in a word, a number or a symbol are not."""

from __future__ import annotations

import copy
import json
import random
import string
import time

import pytest

from labhelpers.sanity.dataset import NORMALISATION, duplicate_findings, near_key, normalise, special_token_findings
from sanity_setup import chat_rows

U = {"role": "user", "content": "How do I reverse a list in Python?"}
A = {"role": "assistant", "content": "Use reversed(xs) or xs[::-1]."}


def conv(user: str = U["content"], reply: str = A["content"]) -> list[dict]:
    return [{"role": "user", "content": user}, {"role": "assistant", "content": reply}]


# (case id, the variant of U's content, equal once normalised?)
VARIANTS = [
    ("lower case", "how do i reverse a list in python?", True),
    ("extra whitespace", "  How do I  reverse a\nlist in Python ?", True),
    ("no punctuation", "How do I reverse a list in Python", True),
    ("other punctuation", "How do I reverse a list in Python!!!", True),
    ("full-width letters (NFKC)", "Ｈｏｗ do I reverse a list in Python?", True),
    ("curly quotes and dashes", "How do I reverse a “list” — in Python?", True),
    ("non-breaking spaces", "How\u00a0do I reverse a list in Python?", True),
    ("one word differs", "How do I sort a list in Python?", False),
    ("a number differs", "How do I reverse a list of 3 in Python?", False),
    ("a symbol differs", "How do I reverse a list in Python++?", False),
]


@pytest.mark.parametrize("case, variant, same", VARIANTS, ids=[c[0] for c in VARIANTS])
def test_normalisation(case, variant, same):
    assert (near_key(conv(variant)) == near_key(conv())) is same, (normalise(variant), normalise(U["content"]))


def test_math_operators_stay_apart():
    forms = [normalise(f"What is 6 {op} 3?") for op in "+-*/%^="]
    assert len(set(forms)) == len(forms), forms


def _rows(n: int = 40) -> list[list[dict]]:
    return [conv(f"Question {i}: how do I do task number {i}?", f"Answer {i}: like this, step {i}.") for i in range(n)]


def _shout(c: list[dict]) -> list[dict]:
    return [{**m, "content": m["content"].upper() + "!"} for m in c]


# (case id, train, eval, finding id, status, words in the message)
BROKEN = [
    ("near copies in train", lambda: _rows() + [_shout(c) for c in _rows()[:3]], None, "train_duplicates", "warn",
     ["3 duplicate conversations among 43 train rows: 0 exact, 3 near"]),
    ("exact and near counted apart", lambda: _rows() + _rows()[:2] + [_shout(c) for c in _rows()[5:8]], None,
     "train_duplicates", "warn", ["5 duplicate conversations among 45 train rows: 2 exact, 3 near"]),
    ("eval near copies of train", _rows, lambda: [_shout(c) for c in _rows()[:5]] + _rows(50)[40:], "eval_overlap",
     "fail", ["5 of 15 eval conversations (33%) also in train: 0 exact, 5 near"]),
    ("eval: exact and near", _rows, lambda: _rows()[:1] + [_shout(_rows()[1])] + _rows(60)[40:], "eval_overlap", "warn",
     ["2 of 22 eval conversations (9%) also in train: 1 exact, 1 near"]),
    ("whitespace-only variants", lambda: _rows() + [[{**m, "content": " ".join(m["content"].split()) + "  "} for m in c]
                                                    for c in _rows()[:2]], None, "train_duplicates", "warn",
     ["2 duplicate conversations", "0 exact, 2 near"]),
]


@pytest.mark.parametrize("case, train, eval_rows, check, status, words", BROKEN, ids=[c[0] for c in BROKEN])
def test_near_duplicates_are_counted_apart(case, train, eval_rows, check, status, words):
    findings = {f.check: f for f in duplicate_findings(train(), eval_rows() if eval_rows else None)}
    finding = findings[check]
    assert finding.status == status, finding
    for word in words + [NORMALISATION]:
        assert word in finding.message, f"{word!r} not in {finding.message!r}"
    assert "near_key" in finding.fix  # near copies present: the fix says how to key on the normalised text


HEALTHY = [
    ("distinct rows", _rows, lambda: _rows(50)[40:]),
    ("templated rows differing in a number", lambda: [conv(f"What is {i} + {i}?", f"{2 * i}") for i in range(30)],
     lambda: [conv(f"What is {i} + {i}?", f"{2 * i}") for i in range(30, 40)]),
    ("operators differ", lambda: [conv(f"What is 6 {op} 3?", str(eval(f"6 {op} 3"))) for op in "+-*/"] + _rows(),
     None),
    ("bundled data", lambda: [r["messages"] for r in chat_rows(100, short=False)],
     lambda: [r["messages"] for r in chat_rows(30, "test", short=False)]),
]


@pytest.mark.parametrize("case, train, eval_rows", HEALTHY, ids=[c[0] for c in HEALTHY])
def test_no_false_alarm(case, train, eval_rows):
    findings = duplicate_findings(train(), eval_rows() if eval_rows else None)
    for f in findings:
        if f.check in ("train_duplicates", "eval_overlap"):
            assert f.status == "pass" and "0 exact, 0 near" in f.message, f


def _synthetic_jsonl(path, megabytes: int = 50, seed: int = 0) -> int:
    """A chat JSONL of about ``megabytes`` MB: distinct rows, 1% exact and 1% near copies, some eval overlap."""
    rng = random.Random(seed)
    words = ["".join(rng.choices(string.ascii_lowercase, k=rng.randint(2, 9))) for _ in range(4000)]
    size, n = 0, 0
    recent: list[list[dict]] = []
    with open(path, "w", encoding="utf-8") as f:
        while size < megabytes * 1_000_000:
            if recent and n % 100 == 0:
                messages = copy.deepcopy(rng.choice(recent))
            elif recent and n % 100 == 1:
                messages = [{**m, "content": m["content"].upper() + " !"} for m in rng.choice(recent)]
            else:
                messages = conv(" ".join(rng.choices(words, k=rng.randint(10, 120))) + "?",
                                " ".join(rng.choices(words, k=rng.randint(20, 400))) + ".")
                recent = (recent + [messages])[-50:]
            line = json.dumps({"messages": messages}) + "\n"
            f.write(line)
            size += len(line)
            n += 1
    return n


def test_cost_on_a_50_mb_file(tmp_path, tokenizer):
    path = tmp_path / "big.jsonl"
    n = _synthetic_jsonl(path)
    convs = [json.loads(line)["messages"] for line in path.open(encoding="utf-8")]
    assert len(convs) == n and path.stat().st_size >= 50_000_000
    start = time.perf_counter()
    findings = duplicate_findings(convs, convs[:2000])
    dup_s = time.perf_counter() - start
    start = time.perf_counter()
    special = special_token_findings(convs, tokenizer)
    special_s = time.perf_counter() - start
    print(f"\n50 MB ({n:,} rows): duplicates (exact + near) {dup_s:.2f} s, special-token text {special_s:.2f} s")
    train = next(f for f in findings if f.check == "train_duplicates")
    assert train.status == "warn" and "exact" in train.message and "near" in train.message
    assert special[0].status == "pass"
    assert dup_s < 20 and special_s < 10  # ~2 s and ~0.5 s on an idle 2-core CI box; loose for a busy one
