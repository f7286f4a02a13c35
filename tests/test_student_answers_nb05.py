"""Notebook 05's TODO, `pack_examples(examples, max_length)`, as students write it: near misses that the check must
reject with their own mistake named, and right answers written differently from the solution that it must accept.
Every failure is one clean line (a TodoCheckError, never a crash inside the student's code or the check)."""

from __future__ import annotations

import heapq
import time

import numpy as np
import pytest

from labhelpers.checks import TodoCheckError, check_pack_examples


def _row():
    return {"input_ids": [], "position_ids": [], "seq_lengths": []}


# ------------------------------------------------------------------------------------------- wrong answers
def forgets_the_last_row(examples, max_length):
    """Fills one row at a time and appends it when the next example does not fit, but never after the loop."""
    rows, row = [], _row()
    for ids in examples:
        ids = ids[:max_length]
        if len(row["input_ids"]) + len(ids) > max_length:
            rows.append(row)
            row = _row()
        row["input_ids"] += ids
        row["position_ids"] += range(len(ids))
        row["seq_lengths"].append(len(ids))
    return rows


def continuous_positions(examples, max_length):
    rows = []
    for ids in examples:
        ids = list(ids[:max_length])
        row = next((r for r in rows if len(r["input_ids"]) + len(ids) <= max_length), None)
        if row is None:
            row = _row()
            rows.append(row)
        row["input_ids"] += ids
        row["position_ids"] = list(range(len(row["input_ids"])))  # one count over the whole row
        row["seq_lengths"].append(len(ids))
    return rows


def concatenate_and_chunk(examples, max_length):
    """TRL's 'wrapped': one stream cut every max_length tokens, examples cross the row boundaries."""
    stream = [t for e in examples for t in e[:max_length]]
    rows = []
    for start in range(0, len(stream), max_length):
        chunk = stream[start:start + max_length]
        rows.append({"input_ids": chunk, "position_ids": list(range(len(chunk))), "seq_lengths": [len(chunk)]})
    return rows


def strictly_less(examples, max_length):
    rows = []
    for ids in sorted((e[:max_length] for e in examples), key=len, reverse=True):
        fitting = [r for r in rows if len(r["input_ids"]) + len(ids) < max_length]
        if fitting:
            row = max(fitting, key=lambda r: len(r["input_ids"]))
        else:
            row = _row()
            rows.append(row)
        row["input_ids"] += ids
        row["position_ids"] += range(len(ids))
        row["seq_lengths"].append(len(ids))
    return rows


def _first_fit(pieces, max_length):
    rows = []
    for ids in pieces:
        row = next((r for r in rows if len(r["input_ids"]) + len(ids) <= max_length), None)
        if row is None:
            row = _row()
            rows.append(row)
        row["input_ids"] += ids
        row["position_ids"] += range(len(ids))
        row["seq_lengths"].append(len(ids))
    return rows


def room_for_an_eos(examples, max_length):
    return _first_fit([e[:max_length - 1] for e in examples], max_length)


def skips_long_examples(examples, max_length):
    return _first_fit([list(e) for e in examples if len(e) <= max_length], max_length)


def sorts_in_place(examples, max_length):
    examples.sort(key=len, reverse=True)
    return _first_fit([e[:max_length] for e in examples], max_length)


def row_is_the_example(examples, max_length):
    """A new row starts with the example's own list; += on it later grows the caller's example."""
    rows = []
    for ids in examples:
        if len(ids) > max_length:
            ids = ids[:max_length]
        row = next((r for r in rows if len(r["input_ids"]) + len(ids) <= max_length), None)
        if row is None:
            rows.append({"input_ids": ids, "position_ids": list(range(len(ids))), "seq_lengths": [len(ids)]})
        else:
            row["input_ids"] += ids
            row["position_ids"] += range(len(ids))
            row["seq_lengths"].append(len(ids))
    return rows


def eos_between_examples(examples, max_length):
    sep = 0
    rows = []
    for ids in examples:
        ids = list(ids[:max_length])
        row = next((r for r in rows if len(r["input_ids"]) + len(ids) + 1 <= max_length), None)
        if row is None:
            row = _row()
            rows.append(row)
        elif row["input_ids"]:
            row["input_ids"].append(sep)
            row["position_ids"].append(0)
        row["input_ids"] += ids
        row["position_ids"] += range(len(ids))
        row["seq_lengths"].append(len(ids))
    return rows


def pads_to_max_length(examples, max_length, pad_id=0):
    rows = _first_fit([e[:max_length] for e in examples], max_length)
    for row in rows:
        room = max_length - len(row["input_ids"])
        row["input_ids"] += [pad_id] * room
        row["position_ids"] += [0] * room
    return rows


def appends_instead_of_extending(examples, max_length):
    rows = []
    for ids in examples:
        ids = ids[:max_length]
        row = next((r for r in rows if sum(map(len, r["input_ids"])) + len(ids) <= max_length), None)
        if row is None:
            row = _row()
            rows.append(row)
        row["input_ids"].append(ids)
        row["position_ids"].append(list(range(len(ids))))
        row["seq_lengths"].append(len(ids))
    return rows


def cumulative_lengths(examples, max_length):
    rows = []
    for ids in examples:
        ids = ids[:max_length]
        row = next((r for r in rows if len(r["input_ids"]) + len(ids) <= max_length), None)
        if row is None:
            row = _row()
            rows.append(row)
        row["input_ids"] += ids
        row["position_ids"] += range(len(ids))
        row["seq_lengths"].append(len(row["input_ids"]))  # where the example ends, as in cu_seqlens
    return rows


def positions_of_the_row(examples, max_length):
    rows = []
    for ids in examples:
        ids = ids[:max_length]
        row = next((r for r in rows if len(r["input_ids"]) + len(ids) <= max_length), None)
        if row is None:
            row = _row()
            rows.append(row)
        row["input_ids"] += ids
        row["position_ids"] += range(len(row["input_ids"]))  # the row's length, after adding
        row["seq_lengths"].append(len(ids))
    return rows


def next_fit(examples, max_length):
    rows = []
    for ids in examples:
        ids = ids[:max_length]
        if not rows or len(rows[-1]["input_ids"]) + len(ids) > max_length:
            rows.append(_row())
        rows[-1]["input_ids"] += ids
        rows[-1]["position_ids"] += range(len(ids))
        rows[-1]["seq_lengths"].append(len(ids))
    return rows


def max_of_no_rows(examples, max_length):
    rows = []
    for ids in sorted((e[:max_length] for e in examples), key=len, reverse=True):
        row = max((r for r in rows if len(r["input_ids"]) + len(ids) <= max_length), key=lambda r: len(r["input_ids"]))
        row["input_ids"] += ids
    return rows


def one_example_per_row(examples, max_length):
    return [{"input_ids": e[:max_length], "position_ids": list(range(len(e[:max_length]))),
             "seq_lengths": [len(e[:max_length])]} for e in examples]


def positions_from_one(examples, max_length):
    rows = _first_fit([e[:max_length] for e in examples], max_length)
    for row in rows:
        row["position_ids"] = [p + 1 for p in row["position_ids"]]
    return rows


# (name, student function, distinctive words of the message it must get)
WRONG = [
    ("last row never appended", forgets_the_last_row, "did you forget to append the last row after the loop"),
    ("positions continue over the row", continuous_positions, "position_ids continue across examples"),
    ("concatenate and chunk", concatenate_and_chunk, "'wrapped' strategy"),
    ("< instead of <=", strictly_less, "an exactly full row still has room: use <="),
    ("truncated to max_length - 1", room_for_an_eos, "cut to max_length - 1 = 7 tokens"),
    ("long examples skipped", skips_long_examples, "skipped: an example longer than max_length"),
    ("examples.sort() in place", sorts_in_place, "reordered the list of examples it was given"),
    ("a row is the example's own list", row_is_the_example, "is example 0's own list"),
    ("a separator between examples", eos_between_examples, "a separator between examples"),
    ("rows padded to max_length", pads_to_max_length, "padded the row to max_length"),
    ("append, not extend", appends_instead_of_extending, "use += or .extend(), not .append()"),
    ("seq_lengths cumulative", cumulative_lengths, "cumulative"),
    ("positions over the row's length", positions_of_the_row, "range(len(row))"),
    ("next-fit", next_fit, "next-fit"),
    ("max() of no rows", max_of_no_rows, "pack_examples raised ValueError"),
    ("one example per row", one_example_per_row, "one example per row"),
    ("positions from 1", positions_from_one, "count 0, 1, 2"),
]


# ------------------------------------------------------------------------------------------- right answers
def first_fit_for_else(examples, max_length):
    """First fit, the for/else idiom, .extend and a copy."""
    rows = []
    for example in examples:
        ids = list(example)[:max_length]
        for row in rows:
            if len(row["input_ids"]) + len(ids) <= max_length:
                break
        else:
            row = {"input_ids": [], "position_ids": [], "seq_lengths": []}
            rows.append(row)
        row["input_ids"].extend(ids)
        row["position_ids"].extend(range(len(ids)))
        row["seq_lengths"].append(len(ids))
    return rows


def bins_then_dicts(examples, max_length):
    """Best-fit decreasing on bins of examples (indices), the dicts built at the end with comprehensions."""
    order = sorted(range(len(examples)), key=lambda k: -min(len(examples[k]), max_length))
    bins: list[list[int]] = []
    used: list[int] = []
    for k in order:
        n = min(len(examples[k]), max_length)
        candidates = [b for b in range(len(bins)) if used[b] + n <= max_length]
        if candidates:
            b = max(candidates, key=used.__getitem__)
            bins[b].append(k)
            used[b] += n
        else:
            bins.append([k])
            used.append(n)
    return tuple({"input_ids": [t for k in b for t in examples[k][:max_length]],
                  "position_ids": [j for k in b for j in range(min(len(examples[k]), max_length))],
                  "seq_lengths": [min(len(examples[k]), max_length) for k in b]} for b in bins)


def numpy_rows(examples, max_length):
    """First-fit decreasing; rows are numpy arrays of int64 (np.concatenate), lengths numpy ints."""
    pieces = sorted((np.asarray(e[:max_length], dtype=np.int64) for e in examples), key=len, reverse=True)
    rows = []
    for ids in pieces:
        for row in rows:
            if row["input_ids"].size + ids.size <= max_length:
                row["input_ids"] = np.concatenate([row["input_ids"], ids])
                row["position_ids"] = np.concatenate([row["position_ids"], np.arange(ids.size)])
                row["seq_lengths"].append(np.int64(ids.size))
                break
        else:
            rows.append({"input_ids": ids.copy(), "position_ids": np.arange(ids.size), "seq_lengths": [np.int64(ids.size)]})
    return rows


def best_fit_with_a_heap(examples, max_length):
    """Best fit in input order: the fullest row with room found by popping a heap of (free room, row index)."""
    rows, heap = [], []
    for ids in examples:
        ids = ids[:max_length]
        skipped, chosen = [], None
        while heap:
            room, r = heapq.heappop(heap)
            if room >= len(ids):
                chosen = r
                break
            skipped.append((room, r))
        for item in skipped:
            heapq.heappush(heap, item)
        if chosen is None:
            chosen = len(rows)
            rows.append({"input_ids": [], "position_ids": [], "seq_lengths": []})
        row = rows[chosen]
        row["input_ids"] = row["input_ids"] + list(ids)
        row["position_ids"] = row["position_ids"] + [*range(len(ids))]
        row["seq_lengths"] = row["seq_lengths"] + [len(ids)]
        heapq.heappush(heap, (max_length - len(row["input_ids"]), chosen))
    return rows


RIGHT = [
    ("first fit, for/else", first_fit_for_else),
    ("bins of indices, dicts at the end", bins_then_dicts),
    ("numpy rows", numpy_rows),
    ("best fit with a heap", best_fit_with_a_heap),
]


@pytest.mark.parametrize("name, student, words", WRONG, ids=[w[0] for w in WRONG])
def test_wrong_packer_is_named(name, student, words):
    with pytest.raises(TodoCheckError) as err:
        check_pack_examples(student)
    assert words in str(err.value) and "Fix:" in str(err.value), str(err.value)


@pytest.mark.parametrize("name, student", RIGHT, ids=[r[0] for r in RIGHT])
def test_right_packer_is_accepted(name, student, capsys):
    check_pack_examples(student)
    assert capsys.readouterr().out.startswith("✓ pack_examples passes"), name


@pytest.mark.parametrize("name, student, words", WRONG, ids=[w[0] for w in WRONG])
def test_every_failure_is_one_clean_line(name, student, words):
    """A TodoCheckError, never another exception from inside the student's code or the check; one line in Jupyter."""
    try:
        check_pack_examples(student)
    except TodoCheckError as err:
        shown = err._render_traceback_()
        assert type(err) is TodoCheckError and len(shown) == 1 and "\n" not in shown[0], shown
        assert shown[0].startswith("TodoCheckError: ") and "Traceback" not in shown[0]
    else:
        pytest.fail(f"{name} was accepted")


def test_the_check_cost_is_small():
    start = time.perf_counter()
    check_pack_examples(first_fit_for_else)
    assert time.perf_counter() - start < 1


def test_the_solution_notebooks_answer_passes(capsys):
    """The TODO cell of solutions/05_packing.ipynb, as it is, passes the check."""
    import json
    from pathlib import Path

    cells = json.loads((Path(__file__).parents[1] / "solutions" / "05_packing.ipynb").read_text())["cells"]
    source = next("".join(c["source"]) for c in cells if "def pack_examples" in "".join(c["source"]))
    namespace: dict = {}
    exec(source, namespace)
    check_pack_examples(namespace["pack_examples"])
    assert capsys.readouterr().out.startswith("✓ pack_examples passes")
