"""TODO check of notebook 05 (packing): the student's greedy packer on toy id lists (rows within max_length,
examples whole, positions restarting at 0, no token lost or duplicated, as few rows as a greedy packer)."""

from __future__ import annotations

from labhelpers.checks.core import TodoCheckError, passed, require, student_code


def _pack_toy_cases() -> list[tuple[list[list[int]], int]]:
    """(examples, max_length) for :func:`check_pack_examples`. Example k holds ids 100*(k+1)+j, so every token
    tells which example and which position it came from."""
    def make(lengths: list[int]) -> list[list[int]]:
        return [[100 * (k + 1) + j for j in range(n)] for k, n in enumerate(lengths)]

    return [
        (make([5, 3, 7, 2, 4, 1]), 8),
        (make([3, 3, 3, 3]), 6),
        (make([6, 12, 2, 5]), 8),  # example 1 is longer than max_length: truncated to its first 8 tokens
        (make([4]), 4),
        (make([9, 1, 1, 1, 2, 8, 3]), 10),
    ]


def _greedy_row_count(lengths: list[int], max_length: int, decreasing: bool, best: bool = False,
                      strict: bool = False) -> int:
    """Rows a greedy packer needs for examples of ``lengths`` (truncated): first-fit, or best-fit (the fullest row
    with room) with ``best``; in order, or longest first with ``decreasing``. ``strict`` is the off-by-one packer that
    tests ``len(row) + len(example) < max_length``, so an example that exactly fills a row's room opens a new row.

    >>> _greedy_row_count([3, 3], 6, False), _greedy_row_count([3, 3], 6, False, strict=True)
    (1, 2)
    """
    free: list[int] = []
    for n in sorted(lengths, reverse=True) if decreasing else lengths:
        n = min(n, max_length)
        fits = [i for i, room in enumerate(free) if (room > n if strict else room >= n)]
        if fits:
            free[min(fits, key=lambda i: free[i]) if best else fits[0]] -= n
        else:
            free.append(max_length - n)
    return len(free)


def _int_list(value: object) -> list[int]:
    if hasattr(value, "tolist"):
        value = value.tolist()
    return [int(x) for x in value]  # type: ignore[union-attr]


def _runs(ids: list[int]) -> list[tuple[int, list[int]]]:
    """(example index, its token positions) for each maximal run of one example's tokens in a toy row."""
    runs: list[tuple[int, list[int]]] = []
    for token in ids:
        k, j = token // 100 - 1, token % 100
        if runs and runs[-1][0] == k:
            runs[-1][1].append(j)
        else:
            runs.append((k, [j]))
    return runs


@student_code("pack_examples")
def check_pack_examples(pack_examples) -> None:
    """Run the student's ``pack_examples(examples, max_length)`` on toy id lists and name the first problem found:
    rows longer than max_length, tokens lost or duplicated, examples split across rows, positions not restarting,
    wrong ``seq_lengths``, or far more rows than a greedy packer needs.

    >>> def first_fit(examples, max_length):
    ...     rows = []
    ...     for ids in examples:
    ...         ids = list(ids[:max_length])
    ...         row = next((r for r in rows if len(r["input_ids"]) + len(ids) <= max_length), None)
    ...         if row is None:
    ...             row = {"input_ids": [], "position_ids": [], "seq_lengths": []}
    ...             rows.append(row)
    ...         row["input_ids"] += ids; row["position_ids"] += range(len(ids)); row["seq_lengths"].append(len(ids))
    ...     return rows
    >>> check_pack_examples(first_fit)
    ✓ pack_examples passes 5 toy cases: each example whole in one row (truncated to max_length), positions restart at 0, no token lost or duplicated
    """
    import copy
    from collections import Counter

    for examples, max_length in _pack_toy_cases():
        given = copy.deepcopy(examples)
        call = f"pack_examples(examples of {[len(e) for e in examples]} tokens, max_length={max_length})"
        rows = pack_examples(given, max_length)
        require(isinstance(rows, (list, tuple)), f"{call} returned {type(rows).__name__}",
                'return a list of rows, each a dict with "input_ids", "position_ids" and "seq_lengths"')
        rows = list(rows)
        for r, row in enumerate(rows):
            require(isinstance(row, dict) and {"input_ids", "position_ids", "seq_lengths"} <= set(row),
                    f"{call}: row {r} is {type(row).__name__}"
                    + (f" with keys {sorted(row)}" if isinstance(row, dict) else ""),
                    'make each row a dict with "input_ids", "position_ids" and "seq_lengths"')
        ids = [_int_list(row["input_ids"]) for row in rows]
        positions = [_int_list(row["position_ids"]) for row in rows]
        lengths = [_int_list(row["seq_lengths"]) for row in rows]
        known = {t for e in examples for t in e}

        # 1. row size and foreign tokens
        for r, row_ids in enumerate(ids):
            foreign = [t for t in row_ids if t not in known]
            if foreign:
                raise TodoCheckError(f"{call}: row {r} holds id {foreign[0]}, which is in no example (padding?). Fix: "
                                     "do not pad or add tokens: a packed row is just its examples' ids one after another")
            if len(row_ids) > max_length:
                long = [k for k, _ in _runs(row_ids) if len(examples[k]) > max_length]
                detail = (f": example {long[0]} has {len(examples[long[0]])} tokens and was not truncated" if long else "")
                raise TodoCheckError(
                    f"{call}: row {r} has {len(row_ids)} tokens, more than max_length={max_length}{detail}. Fix: "
                    + ("truncate each example to its first max_length tokens before packing (ids[:max_length])" if long else
                       "before adding an example, check that len(row) + len(example) <= max_length; else try another row "
                       "or open a new one"))
        # 2. every (truncated) token exactly once
        counts = Counter(t for row_ids in ids for t in row_ids)
        for token, n in counts.items():
            require(n == 1, f"{call}: token {token} (example {token // 100 - 1}, position {token % 100}) appears {n} "
                    "times: tokens duplicated", "add each example to exactly one row, once (and start each new row empty)")
        for k, example in enumerate(examples):
            kept = [t for t in example if t in counts]
            if len(example) > max_length and len(kept) > max_length:
                raise TodoCheckError(
                    f"{call}: example {k} has {len(example)} tokens, more than max_length={max_length}, and all of them "
                    "were kept (spread over rows). Fix: truncate it to its first max_length tokens (TRL's 'bfd' does "
                    "the same; 'bfd_split' would keep the rest as a new example)")
            want = example[:max_length]
            lost = [t for t in want if t not in counts]
            require(not lost, f"{call}: tokens lost: {len(lost)} of the {len(want)} tokens of example {k} are in no row"
                    + (f" (it has {len(example)} tokens; keep its first {max_length})" if len(example) > max_length else ""),
                    "every example (truncated to max_length) must end up in some row: open a new row when none has room")
        # 3. each example whole, in order, in one row
        for k in range(len(examples)):
            where = sorted({r for r, row_ids in enumerate(ids) if any(t // 100 - 1 == k for t in row_ids)})
            require(len(where) == 1, f"{call}: example {k} ({min(len(examples[k]), max_length)} tokens) is split "
                    f"across rows {where}", "keep each example whole in one row: if it does not fit in the remaining "
                    "room, put it in another row or open a new one (cutting examples is the 'wrapped' strategy)")
        for r, row_ids in enumerate(ids):
            for k, js in _runs(row_ids):
                require(js == list(range(len(js))) and len(js) == min(len(examples[k]), max_length),
                        f"{call}: row {r}: the tokens of example {k} are not one contiguous block in their original order",
                        "append each example's ids to the row in one piece: row_ids += example")
        # 4. positions restart at 0 for each example
        for r, (row_ids, pos) in enumerate(zip(ids, positions)):
            require(len(pos) == len(row_ids), f"{call}: row {r} has {len(pos)} position_ids for {len(row_ids)} input_ids",
                    "give every token one position id")
            want = [j for _, js in _runs(row_ids) for j in range(len(js))]
            for i, (got, expected) in enumerate(zip(pos, want)):
                if got == expected:
                    continue
                if expected == 0 and i > 0 and got == pos[i - 1] + 1:
                    raise TodoCheckError(
                        f"row {r}: position_ids continue across examples at index {i} (got {got}, expected 0) in {call}. "
                        "Fix: restart at 0 for every example (extend position_ids with range(len(example))); continuous "
                        "positions make the model treat the row as one long document")
                raise TodoCheckError(f"row {r}: position_ids[{i}] is {got}, expected {expected} in {call}. Fix: "
                                     "positions count 0, 1, 2, ... inside each example")
        # 5. seq_lengths describe the examples of each row
        for r, (row_ids, got) in enumerate(zip(ids, lengths)):
            want = [len(js) for _, js in _runs(row_ids)]
            require(got == want, f"{call}: row {r} has seq_lengths {got}, but it holds examples of {want} tokens",
                    "append len(example) to the row's seq_lengths each time you add an example (they sum to the row length)")
        # 6. actually packed
        sizes = [len(e) for e in examples]
        limit = max(_greedy_row_count(sizes, max_length, d, b) for d in (False, True) for b in (False, True))
        if len(rows) > limit and len(rows) in {_greedy_row_count(sizes, max_length, d, b, strict=True)
                                               for d in (False, True) for b in (False, True)}:
            raise TodoCheckError(f"{call} made {len(rows)} rows, {limit} are enough: an example that fills a row's "
                                 "remaining room exactly went to a new row. Fix: an exactly full row still has room: "
                                 "use <= (len(row) + len(example) <= max_length), not <")
        require(len(rows) <= limit, f"{call} made {len(rows)} rows; greedy packing (first-fit or best-fit) needs only "
                f"{limit}", "before opening a new row, put the example into an existing row that still has room for it")
        require(given == examples, f"{call} changed the example lists it was given",
                "build new lists (ids[:max_length] makes a copy) instead of editing the input")
    passed(f"pack_examples passes {len(_pack_toy_cases())} toy cases: each example whole in one row (truncated to "
           "max_length), positions restart at 0, no token lost or duplicated")
