"""The packing TODO check of notebook 05: it passes correct packers and names the typical mistakes."""

from __future__ import annotations

import pytest

from labhelpers.checks import TodoCheckError, check_pack_examples


def _row():
    return {"input_ids": [], "position_ids": [], "seq_lengths": []}


def _add(row, ids, continuous=False):
    start = len(row["input_ids"]) if continuous else 0
    row["input_ids"] += ids
    row["position_ids"] += list(range(start, start + len(ids)))
    row["seq_lengths"].append(len(ids))


def best_fit_decreasing(examples, max_length):
    """The notebook's reference: truncate, longest first, into the fullest row that still has room."""
    rows = []
    for ids in sorted((list(e[:max_length]) for e in examples), key=len, reverse=True):
        fitting = [r for r in rows if len(r["input_ids"]) + len(ids) <= max_length]
        row = max(fitting, key=lambda r: len(r["input_ids"])) if fitting else None
        if row is None:
            row = _row()
            rows.append(row)
        _add(row, ids)
    return rows


def first_fit(examples, max_length, *, truncate=True, continuous=False):
    rows = []
    for ids in examples:
        ids = list(ids[:max_length]) if truncate else list(ids)
        row = next((r for r in rows if len(r["input_ids"]) + len(ids) <= max_length), None)
        if row is None:
            row = _row()
            rows.append(row)
        _add(row, ids, continuous)
    return rows


def test_reference_best_fit_decreasing_passes(capsys):
    check_pack_examples(best_fit_decreasing)
    assert capsys.readouterr().out.startswith("✓ pack_examples passes 5 toy cases")


def test_first_fit_passes_too(capsys):
    check_pack_examples(first_fit)
    assert "positions restart at 0" in capsys.readouterr().out


def test_tensor_rows_are_accepted():
    torch = pytest.importorskip("torch")

    def as_tensors(examples, max_length):
        return [{k: torch.tensor(v) for k, v in row.items()} for row in best_fit_decreasing(examples, max_length)]

    check_pack_examples(as_tensors)


def test_catches_positions_that_continue_across_examples():
    with pytest.raises(TodoCheckError, match=r"^row 0: position_ids continue across examples at index 5 \(got 5, expected 0\)"):
        check_pack_examples(lambda ex, n: first_fit(ex, n, continuous=True))


def test_catches_wrong_positions_inside_an_example():
    def off_by_one(examples, max_length):
        rows = best_fit_decreasing(examples, max_length)
        for row in rows:
            row["position_ids"] = [p + 1 for p in row["position_ids"]]
        return rows

    with pytest.raises(TodoCheckError, match=r"row 0: position_ids\[0\] is 1, expected 0.*count 0, 1, 2"):
        check_pack_examples(off_by_one)


def test_catches_rows_longer_than_max_length():
    def one_row(examples, max_length):
        row = _row()
        for ids in examples:
            _add(row, list(ids[:max_length]))
        return [row]

    with pytest.raises(TodoCheckError, match=r"row 0 has 22 tokens, more than max_length=8.*len\(row\) \+ len\(example\)"):
        check_pack_examples(one_row)


def test_catches_missing_truncation():
    with pytest.raises(TodoCheckError, match=r"row \d has 12 tokens, more than max_length=8: example 1 has 12 tokens "
                                             r"and was not truncated\. Fix: truncate"):
        check_pack_examples(lambda ex, n: first_fit(ex, n, truncate=False))


def test_catches_overflow_kept_as_extra_rows():
    def split_overflow(examples, max_length):  # like TRL's bfd_split: the tail becomes another example
        pieces = [e[i:i + max_length] for e in examples for i in range(0, len(e), max_length)]
        return first_fit(pieces, max_length)

    with pytest.raises(TodoCheckError, match=r"example 1 has 12 tokens, more than max_length=8, and all of them were kept"):
        check_pack_examples(split_overflow)


def test_catches_lost_examples():
    def next_fit_dropping(examples, max_length):  # drops an example that does not fit the current row
        row = _row()
        for ids in examples:
            ids = list(ids[:max_length])
            if len(row["input_ids"]) + len(ids) <= max_length:
                _add(row, ids)
        return [row]

    with pytest.raises(TodoCheckError, match=r"tokens lost: 7 of the 7 tokens of example 2 are in no row"):
        check_pack_examples(next_fit_dropping)


def test_catches_duplicated_tokens():
    def shared_row(examples, max_length):  # the classic mutable-default bug: every row is the same list
        rows, current = [], _row()
        for ids in examples:
            ids = list(ids[:max_length])
            if len(current["input_ids"]) + len(ids) > max_length:
                rows.append(dict(current))
                current["seq_lengths"] = []
                current = {**current, "input_ids": [], "position_ids": []}
            _add(current, ids)
        rows.append(current)
        return rows + rows[:1]

    with pytest.raises(TodoCheckError, match=r"token 100 \(example 0, position 0\) appears 2 times: tokens duplicated"):
        check_pack_examples(shared_row)


def test_catches_examples_split_across_rows():
    def wrapped(examples, max_length):  # TRL's "wrapped": concatenate everything, cut every max_length tokens
        stream = [t for e in examples for t in e[:max_length]]
        rows = []
        for i in range(0, len(stream), max_length):
            row = _row()
            _add(row, stream[i:i + max_length])
            rows.append(row)
        return rows

    with pytest.raises(TodoCheckError, match=r"example 3 \(2 tokens\) is split across rows \[1, 2\].*'wrapped' strategy"):
        check_pack_examples(wrapped)


def test_catches_wrong_seq_lengths():
    def one_length(examples, max_length):
        rows = best_fit_decreasing(examples, max_length)
        for row in rows:
            row["seq_lengths"] = [len(row["input_ids"])]
        return rows

    with pytest.raises(TodoCheckError, match=r"row 0 has seq_lengths \[8\], but it holds examples of \[7, 1\] tokens"):
        check_pack_examples(one_length)


def test_catches_one_example_per_row():
    def unpacked(examples, max_length):
        rows = []
        for ids in examples:
            row = _row()
            _add(row, list(ids[:max_length]))
            rows.append(row)
        return rows

    with pytest.raises(TodoCheckError, match=r"made 6 rows; greedy packing \(first-fit or best-fit\) needs only 3"):
        check_pack_examples(unpacked)


def test_catches_edited_input():
    def in_place(examples, max_length):
        for ids in examples:
            del ids[max_length:]
        return best_fit_decreasing(examples, max_length)

    with pytest.raises(TodoCheckError, match=r"changed the example lists it was given"):
        check_pack_examples(in_place)


def test_catches_wrong_return_shape():
    with pytest.raises(TodoCheckError, match=r'row 0 is list.*"input_ids", "position_ids" and "seq_lengths"'):
        check_pack_examples(lambda ex, n: [[t for t in e[:n]] for e in ex])
    with pytest.raises(TodoCheckError, match=r"returned NoneType"):
        check_pack_examples(lambda ex, n: None)
