"""TODO check of notebook 05 (packing): the student's greedy packer on toy id lists (rows within max_length,
examples whole, positions restarting at 0, no token lost or duplicated, as few rows as a greedy packer)."""

from __future__ import annotations

from labhelpers.checks.core import TodoCheckError, call_student, passed, require, student_code


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


def _next_fit_row_count(lengths: list[int], max_length: int, decreasing: bool) -> int:
    """Rows of a next-fit packer (it only tries the last row opened), in order or longest first.

    >>> _next_fit_row_count([9, 1, 1, 1, 2, 8, 3], 10, False), _greedy_row_count([9, 1, 1, 1, 2, 8, 3], 10, False)
    (4, 3)
    """
    rows, room = 0, 0
    for n in sorted(lengths, reverse=True) if decreasing else lengths:
        n = min(n, max_length)
        if rows == 0 or n > room:
            rows, room = rows + 1, max_length
        room -= n
    return rows


def _int_list(value: object, what: str) -> list[int]:
    """``value`` (a list, tuple, array or tensor of ids) as a list of ints; a nested list or anything else that is
    not one id per element fails the check with ``what`` named (``"row 0's input_ids"``).

    >>> _int_list((3, 4), "row 0's input_ids")
    [3, 4]
    >>> _int_list([[100, 101], [200]], "row 0's input_ids")
    Traceback (most recent call last):
    ...
    labhelpers.checks.TodoCheckError: row 0's input_ids holds [100, 101], a list, not one id per element. Fix: use += or .extend(), not .append(): row["input_ids"] += ids adds the ids themselves
    """
    import numbers

    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, (str, bytes, dict)) or not hasattr(value, "__iter__"):
        one = "one length per example in the row" if "seq_lengths" in what else "one per token"
        raise TodoCheckError(f"{what} is {type(value).__name__} {str(value)[:60]}, not a list. Fix: make it a list of "
                             f"ints, {one}")
    out = []
    for x in value:  # type: ignore[union-attr]
        if hasattr(x, "tolist") and not isinstance(x, numbers.Number):
            x = x.tolist()
        if isinstance(x, bool) or not isinstance(x, numbers.Integral) and not (isinstance(x, float) and x.is_integer()):
            kind = type(x).__name__
            shown = str(list(x) if isinstance(x, range) else x)[:60]
            nested = hasattr(x, "__iter__") and not isinstance(x, (str, bytes))
            raise TodoCheckError(
                f"{what} holds {shown}, a {kind}, not one id per element. Fix: "
                + ('use += or .extend(), not .append(): row["input_ids"] += ids adds the ids themselves' if nested
                   else "keep ints only, one per token"))
        out.append(int(x))
    return out


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


_PACK_HINTS = (
    ("empty sequence", "when no row has room for the example, open a new row: max() or min() of no rows raises"),
    ("argument is empty", "when no row has room for the example, open a new row: max() or min() of no rows raises"),
    ("IndexError", "rows[-1] or rows[0] fails while there are no rows yet: open the first row before you read one"),
    ("KeyError", 'start each row as {"input_ids": [], "position_ids": [], "seq_lengths": []}'),
)


def _require_input_untouched(call: str, examples: list[list[int]], given: object, given_lists: list[list[int]],
                             rows: list, max_length: int) -> None:
    """Fail, naming how, when the student's packer changed the example lists it was given (``given``, whose inner
    lists were ``given_lists`` before the call; ``examples`` is an untouched copy)."""
    def plain(value: object) -> object:  # numpy arrays or tensors put in place of a list compare as lists
        if isinstance(value, (str, bytes, dict)):
            return repr(value)
        try:
            return [plain(v) for v in value] if hasattr(value, "__iter__") else int(value)  # type: ignore[arg-type]
        except (TypeError, ValueError, RecursionError):
            return repr(value)

    originals, given = given, plain(given)
    if given == examples and plain(given_lists) == examples:
        return
    changed = f"{call} changed the example lists it was given"
    copy_fix = "start each row with a copy, list(ids) or ids[:max_length], so the row never is the caller's list"
    for r, row in enumerate(rows):
        for k, own in enumerate(given_lists):
            if isinstance(row, dict) and row.get("input_ids") is own:
                raise TodoCheckError(f"{changed}: row {r}'s input_ids is example {k}'s own list, so adding to the row "
                                     f"grew the example too (it now has {len(own)} tokens, it had {len(examples[k])}). "
                                     f"Fix: {copy_fix}")
    now_ids, before_ids = list(map(id, originals)) if isinstance(originals, list) else [], list(map(id, given_lists))
    if now_ids != before_ids and sorted(now_ids) == sorted(before_ids):  # the same lists, in another order
        raise TodoCheckError(f"{call} reordered the list of examples it was given (examples.sort() sorts the caller's "
                             "list in place). Fix: use sorted(examples, key=len, reverse=True): it returns a new list "
                             "and leaves the input alone")
    for k, example in enumerate(examples):
        for now in (plain(given_lists[k]), given[k] if isinstance(given, list) and k < len(given) else example):
            if now == example or not isinstance(now, list):
                continue
            if len(now) < len(example) and list(now) == example[:len(now)]:
                raise TodoCheckError(f"{changed}: example {k} was cut to {len(now)} tokens in place (del ids[max_length:], "
                                     "ids[:] = ... or examples[k] = ...). Fix: build new lists instead of editing the input: "
                                     "ids = ids[:max_length] makes a copy")
            if len(now) > len(example) and list(now[:len(example)]) == example:
                raise TodoCheckError(f"{changed}: example {k} grew to {len(now)} tokens: you added to the example's own "
                                     f"list. Fix: {copy_fix}")
    raise TodoCheckError(f"{changed}. Fix: build new lists (ids[:max_length] makes a copy) instead of editing the input")


def _require_known_tokens(call: str, r: int, row_ids: list[int], known: set[int], max_length: int) -> None:
    """Fail when row ``r`` holds ids of no example, naming padding or a separator when the ids sit where those go."""
    foreign_at = [i for i, t in enumerate(row_ids) if t not in known]
    if not foreign_at:
        return
    values = sorted({row_ids[i] for i in foreign_at})
    trailing = foreign_at == list(range(foreign_at[0], len(row_ids)))
    if trailing and len(values) == 1 and len(row_ids) == max_length and foreign_at[0] > 0:
        raise TodoCheckError(f"{call}: row {r} ends with {len(foreign_at)} x id {values[0]}, which is in no example: you "
                             "padded the row to max_length. Fix: do not pad: a packed row is just its examples' ids one "
                             "after another (a collator pads a batch later, if it needs to)")
    if len(values) == 1 and all(i > 0 and row_ids[i - 1] in known for i in foreign_at):
        i = foreign_at[0]
        before = row_ids[i - 1] // 100 - 1
        where = (f"between example {before} and example {row_ids[i + 1] // 100 - 1}"
                 if i + 1 < len(row_ids) and row_ids[i + 1] in known else f"after example {before}")
        raise TodoCheckError(f"{call}: row {r} holds id {values[0]}, which is in no example, {where}: a separator "
                             "between examples. Fix: add nothing between examples: seq_lengths "
                             "and the restarting position_ids mark the boundaries (and each example's ids already end "
                             "with its own end-of-turn token)")
    raise TodoCheckError(f"{call}: row {r} holds id {values[0]}, which is in no example (padding?). Fix: do not pad or "
                         "add tokens: a packed row is just its examples' ids one after another")


def _require_no_token_lost(call: str, examples: list[list[int]], kept: set[int], max_length: int) -> None:
    """Fail when a token of an example's first max_length is in no row, naming a skipped long example, a cut to
    max_length - 1, or a last row never appended."""
    lost = {k: [t for t in e[:max_length] if t not in kept] for k, e in enumerate(examples)}
    lost = {k: v for k, v in lost.items() if v}
    if not lost:
        return
    whole = [k for k, v in lost.items() if len(v) == min(len(examples[k]), max_length)]
    for k in whole:
        if len(examples[k]) > max_length:
            raise TodoCheckError(f"{call}: example {k} ({len(examples[k])} tokens) is in no row: skipped: an example "
                                 f"longer than max_length={max_length} is kept, truncated to its first max_length tokens. "
                                 "Fix: truncate it (ids[:max_length]) instead of leaving it out")
    for k, v in lost.items():
        n_kept = min(len(examples[k]), max_length) - len(v)
        if len(examples[k]) >= max_length and 0 < n_kept < max_length and v == examples[k][n_kept:max_length]:
            minus = f"max_length - {max_length - n_kept} = {n_kept}" if n_kept < max_length else str(n_kept)
            raise TodoCheckError(
                f"{call}: tokens lost: example {k} ({len(examples[k])} tokens) was cut to {minus} tokens, its first "
                f"max_length={max_length} belong in the row. Fix: truncate with ids[:max_length]"
                + (" (the packer adds no EOS of its own, so no room is needed for one)" if n_kept == max_length - 1 else ""))
    sizes = [min(len(examples[k]), max_length) for k in whole]
    if len(whole) == len(lost) and sum(sizes) <= max_length:
        raise TodoCheckError(f"{call}: tokens lost: examples {whole} ({sizes} tokens) are in no row, and together they "
                             "fill one row: did you forget to append the last row after the loop? Fix: after the loop, "
                             "append the row you were still filling (when it is not empty)")
    k, v = next(iter(lost.items()))
    want = examples[k][:max_length]
    raise TodoCheckError(f"{call}: tokens lost: {len(v)} of the {len(want)} tokens of example {k} are in no row"
                         + (f" (it has {len(examples[k])} tokens; keep its first {max_length})"
                            if len(examples[k]) > max_length else "")
                         + ". Fix: every example (truncated to max_length) must end up in some row: open a new row when "
                           "none has room")


@student_code("pack_examples")
def check_pack_examples(pack_examples) -> None:
    """Run the student's ``pack_examples(examples, max_length)`` on toy id lists and name the first problem found:
    the input edited, rows longer than max_length, padding or separators, tokens lost or duplicated, examples split
    across rows, positions not restarting, wrong ``seq_lengths``, or more rows than a greedy packer needs.

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
    from itertools import accumulate

    for examples, max_length in _pack_toy_cases():
        given = copy.deepcopy(examples)
        given_lists = list(given)  # the inner lists themselves: a row that *is* one of them grows the caller's example
        call = f"pack_examples(examples of {[len(e) for e in examples]} tokens, max_length={max_length})"
        rows = call_student(pack_examples, given, max_length, name="pack_examples", hints=_PACK_HINTS)
        require(isinstance(rows, (list, tuple)), f"{call} returned {type(rows).__name__}",
                ("end the function with return rows; " if rows is None else "")
                + 'return a list of rows, each a dict with "input_ids", "position_ids" and "seq_lengths"')
        rows = list(rows)
        for r, row in enumerate(rows):
            require(isinstance(row, dict) and {"input_ids", "position_ids", "seq_lengths"} <= set(row),
                    f"{call}: row {r} is {type(row).__name__}"
                    + (f" with keys {sorted(map(str, row))}" if isinstance(row, dict) else ""),
                    'make each row a dict with "input_ids", "position_ids" and "seq_lengths"')
        _require_input_untouched(call, examples, given, given_lists, rows, max_length)
        ids = [_int_list(row["input_ids"], f"{call}: row {r}'s input_ids") for r, row in enumerate(rows)]
        positions = [_int_list(row["position_ids"], f"{call}: row {r}'s position_ids") for r, row in enumerate(rows)]
        lengths = [_int_list(row["seq_lengths"], f"{call}: row {r}'s seq_lengths") for r, row in enumerate(rows)]
        known = {t for e in examples for t in e}

        # 1. row size and foreign tokens
        for r, row_ids in enumerate(ids):
            _require_known_tokens(call, r, row_ids, known, max_length)
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
        _require_no_token_lost(call, examples, set(counts), max_length)
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
            sizes = [len(js) for _, js in _runs(row_ids)]
            if len(pos) != len(row_ids) and pos == [j for end in accumulate(sizes) for j in range(end)]:
                raise TodoCheckError(f"{call}: row {r} has {len(pos)} position_ids for {len(row_ids)} input_ids: each "
                                     "example added range(len(row)), the row's length after adding it. Fix: extend "
                                     "position_ids with range(len(example)), the example's own length")
            require(len(pos) == len(row_ids), f"{call}: row {r} has {len(pos)} position_ids for {len(row_ids)} input_ids",
                    "give every token one position id: extend position_ids with range(len(example)) as you add it")
            want = [j for n in sizes for j in range(n)]
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
            ends = list(accumulate(want))
            if got != want and got in (ends, [0] + ends):
                raise TodoCheckError(f"{call}: row {r} has seq_lengths {got}: cumulative ends (like cu_seqlens), not "
                                     f"the lengths {want} of its examples. Fix: append len(example), not len(row), each "
                                     "time you add an example (they sum to the row length)")
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
        too_many = f"{call} made {len(rows)} rows; greedy packing (first-fit or best-fit) needs only {limit}"
        require(not (len(rows) > limit and len(rows) == len(examples)), f"{too_many}: one example per row, nothing packed",
                "before opening a new row, put the example into an existing row that still has room for it")
        next_fit = {_next_fit_row_count(sizes, max_length, d) for d in (False, True)}
        require(not (len(rows) > limit and len(rows) in next_fit),
                f"{too_many}: you only try the last row opened (next-fit)", "look through every row for room (first "
                "fit: the first row with room; best fit: the fullest one) and open a new row only when none has room")
        require(len(rows) <= limit, too_many,
                "before opening a new row, put the example into an existing row that still has room for it")
    passed(f"pack_examples passes {len(_pack_toy_cases())} toy cases: each example whole in one row (truncated to "
           "max_length), positions restart at 0, no token lost or duplicated")
