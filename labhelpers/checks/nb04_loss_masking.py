"""TODO checks of notebook 04 (loss masking): labels that train only the assistant replies, and the optional
assistant mask built from the token ids alone, naming the wrong span."""

from __future__ import annotations

from labhelpers.checks.core import TodoCheckError, call_student, passed, require, student_code


LABEL_CHECK_CONVERSATIONS = (
    ({"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "Blue."}),
    ({"role": "system", "content": "Be brief."}, {"role": "user", "content": "Capital of France?"},
     {"role": "assistant", "content": "Paris."}, {"role": "user", "content": "And of Italy?"},
     {"role": "assistant", "content": "Rome."}),
)


def _label_problem(tokenizer, ids: list[int], got: list[int], want: list[int]) -> str:
    """Describe the first wrong span of labels: which turn is trained or masked by mistake, decoded."""
    from labhelpers.views.display import token_roles, trained_spans

    roles = token_roles(tokenizer, ids)
    wrongly_trained = [g != -100 and w == -100 for g, w in zip(got, want)]
    wrongly_masked = [g == -100 and w != -100 for g, w in zip(got, want)]
    trained = masked = ""
    if any(wrongly_trained):
        parts = []
        for a, b in trained_spans(wrongly_trained):
            start = a
            for i in range(a, b + 1):  # split each wrong span where the turn changes
                if i == b or roles[i + 1] != roles[start]:
                    role = roles[start]
                    what = {"system": "the system turn", "user": "the user turn", "pad": "padding",
                            "assistant": "the assistant header"}.get(role, "text outside any turn")
                    parts.append(f"{what} at tokens {start}-{i} ({tokenizer.decode(ids[start:i + 1])[:60]!r})")
                    start = i + 1
        trained = f"{', '.join(parts[:3])}{' and more' if len(parts) > 3 else ''}"
    if any(wrongly_masked):
        spans = trained_spans(wrongly_masked)
        masked = ", ".join(f"tokens {a}-{b} ({tokenizer.decode(ids[a:b + 1])[:40]!r})" for a, b in spans[:2])
        masked += " and more" if len(spans) > 2 else ""
    if trained and masked:
        inverted = all((g != -100) == (w == -100) for g, w in zip(got, want))
        return (f"your labels train the prompt ({trained}) and mask the reply: -100 on the assistant's {masked}"
                + (": your mask is inverted" if inverted else "")
                + ". Fix: keep input_ids[i] where assistant_mask[i] is 1 and put -100 where it is 0"
                + (" (you swapped the two)" if inverted else ""))
    if trained:
        values = {got[i] for i, w in enumerate(wrongly_trained) if w}
        zero = " (not 0 or the pad id: only -100 is skipped by the loss)" if values <= {0, tokenizer.pad_token_id} else ""
        return (f"your labels train {trained}. "
                f"Fix: set labels to -100{zero} wherever assistant_mask is 0 (system, user, the "
                "'<|im_start|>assistant\\n' header)")
    if masked:
        a, b = trained_spans(wrongly_masked)[0]
        span = tokenizer.decode(ids[a:b + 1])
        if b == a and ids[a] == tokenizer.convert_tokens_to_ids("<|im_end|>"):
            return (f"your labels mask the end-of-turn token <|im_end|> at token {a}: the model would never learn to "
                    "stop. Fix: keep the label (= the input id) wherever assistant_mask is 1, <|im_end|> included")
        return (f"your labels mask assistant tokens {a}-{b}: {span!r}. Fix: the label of a reply token is its own "
                "input id (not -100)")
    pos = next(i for i, (g, w) in enumerate(zip(got, want)) if g != w)
    return (f"your label at token {pos} is {got[pos]} but the token there is {want[pos]} "
            f"({tokenizer.decode([want[pos]])!r}). Fix: labels are the input ids themselves (no shift: the model shifts "
            "them by one inside its loss), with -100 on masked positions")


def _type_name(value: object) -> str:
    """Type of ``value`` as a student would write it.

    >>> _type_name((1, 2)), _type_name(NotImplemented)
    ('tuple', 'NotImplementedType')
    """
    kind = type(value)
    root = kind.__module__.split(".")[0]
    return kind.__name__ if root == "builtins" else f"{root}.{kind.__name__}"


def _label_rows(tokenizer) -> list[tuple[str, list[int], list[int]]]:
    """(what the row is, input_ids, assistant_mask) for the label check: the check conversations as the template
    renders them, then the multi-turn one cut at max_length inside its last reply (the mask ends on a 1 there, so a
    loop that stops one token early shows)."""
    rows = []
    for conversation in LABEL_CHECK_CONVERSATIONS:
        enc = tokenizer.apply_chat_template(list(conversation), return_dict=True, return_assistant_tokens_mask=True)
        rows.append((f"{len(conversation)}-message conversation", list(enc["input_ids"]),
                     [int(m) for m in enc["assistant_masks"]]))
    what, ids, mask = rows[-1]
    if 1 in mask:
        cut = len(mask) - 1 - mask[::-1].index(1)  # the last reply's <|im_end|>: cut before it, inside the reply
        if cut >= 2 and mask[cut - 1]:
            rows.append((f"{what} cut at max_length={cut} (inside the last reply)", ids[:cut], mask[:cut]))
    return rows


def _as_label(value: object) -> int | None:
    """``value`` as an int label (ints, numpy ints, 0-d integer tensors), None when it is not one.

    >>> _as_label(5), _as_label(-100), _as_label("Blue"), _as_label(2.0), _as_label(True)
    (5, -100, None, None, None)
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    item = getattr(value, "item", None)
    if callable(item) and getattr(value, "ndim", 0) == 0:
        value = item()
        return value if isinstance(value, int) and not isinstance(value, bool) else None
    return None


def _labels_mistake(tokenizer, ids: list[int], mask: list[int], got: list[int], want: list[int]) -> str | None:
    """The near misses of build_labels recognised from the whole row (a wrong ignore value, a shift, a loop that
    stops early, every <|im_end|> kept), as 'problem. Fix: fix'; None for the others."""
    if got[:-1] == want[1:] or got[:-1] == ids[1:]:
        return ("your labels are shifted by one token to the left (label[i] = input_ids[i+1]). Fix: do not shift: "
                "the model compares logits[i] with labels[i+1] itself")
    if got[1:] == want[:-1]:
        return ("your labels are shifted by one token to the right (label[i] = input_ids[i-1]). Fix: do not shift: "
                "label[i] is input_ids[i] itself (or -100); the model shifts inside its loss")
    wrong = [g for g, w in zip(got, want) if g != w]
    value = wrong[0]
    if all(w != -100 or g == value for g, w in zip(got, want)) and all(g == w for g, w in zip(got, want) if w != -100):
        if value == -1:
            return ("you put -1 where assistant_mask is 0: the loss skips only -100 (CrossEntropyLoss's ignore_index); "
                    "-1 is not skipped, cross-entropy fails on it (target out of bounds). Fix: put -100 where "
                    "assistant_mask is 0")
        what = " (a real token id: <|endoftext|>, the pad token)" if value in (0, tokenizer.pad_token_id) else \
            f" (a real token id: {tokenizer.decode([value])!r})" if value >= 0 else ""
        return (f"you put {value} where assistant_mask is 0{what}: the model would learn to predict it on every "
                "prompt token; only -100 is skipped by the loss. Fix: put -100 where assistant_mask is 0")
    if got[:-1] == want[:-1]:
        return (f"your last label is {got[-1]}, expected {want[-1]} (assistant_mask is {mask[-1]} there): your loop "
                "stops one token early. Fix: go over every position: zip(input_ids, assistant_mask), or "
                "range(len(input_ids)), not range(len(input_ids) - 1)")
    end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    extra = [i for i, (g, w) in enumerate(zip(got, want)) if g != w]
    if all(want[i] == -100 and got[i] == ids[i] == end for i in extra):
        from labhelpers.views.display import token_roles

        roles = token_roles(tokenizer, ids)
        turns = sorted({roles[i] for i in extra})
        return (f"you train the <|im_end|> that closes the {' and '.join(turns)} turn{'s' if len(turns) > 1 else ''} "
                f"(tokens {', '.join(map(str, extra[:4]))}): only the assistant's <|im_end|> is the model's to write. "
                "Fix: follow assistant_mask alone: keep input_ids[i] only where it is 1")
    return None


@student_code("build_labels")
def check_build_labels(build_labels, tokenizer) -> None:
    """Compare the student's ``build_labels(input_ids, assistant_mask)`` with the reference on a single-turn and a
    multi-turn conversation and on a row cut inside a reply, naming the wrong span or the near miss.

    Needs a real chat tokenizer; tests/test_checks_basics.py and tests/test_student_answers_nb04.py run it on the
    reference, on answers written differently and on typical mistakes.
    """
    hints = (
        ("only supports boolean masks", "turn the mask into booleans first: torch.tensor(assistant_mask).bool() "
                                        "(~ on an int tensor flips bits, it is not a logical not)"),
        ("IndexError", "go over the positions of input_ids once, with zip(input_ids, assistant_mask)"),
    )
    for what, ids, mask in _label_rows(tokenizer):
        want = [i if m else -100 for i, m in zip(ids, mask)]
        got = call_student(build_labels, list(ids), list(mask), name="build_labels", hints=hints)
        require(isinstance(got, list), f"build_labels returned a {_type_name(got)}, not a list (the later cells "
                f"compare your labels with lists, and {_type_name(got)} == list does not give True or False)",
                "return a Python list of ints: e.g. labels.tolist()" if hasattr(got, "tolist") else
                "return a Python list of ints, e.g. list(labels)")
        if len(got) == len(ids) - 1 and [_as_label(x) for x in got] in (want[1:], want[:-1]):
            raise TodoCheckError(f"build_labels returned {len(got)} labels for {len(ids)} input ids: you dropped the "
                                 f"{'first' if [_as_label(x) for x in got] == want[1:] else 'last'} label (a shift by "
                                 "hand?). Fix: return one label per input id, unshifted: the model shifts by itself")
        require(len(got) == len(ids), f"build_labels returned {len(got)} labels for {len(ids)} input ids",
                "return one label per input id")
        bad = next(((i, x) for i, x in enumerate(got) if _as_label(x) is None), None)
        if bad is not None:
            i, x = bad
            raise TodoCheckError(f"{what}: label {i} is {x!r}, a {_type_name(x)}: labels are token ids (ints) or -100. "
                                 "Fix: keep input_ids[i] itself where assistant_mask[i] is 1, -100 elsewhere")
        got = [_as_label(x) for x in got]
        if got == want:
            continue
        mistake = _labels_mistake(tokenizer, ids, mask, got, want)
        raise TodoCheckError(f"{what}: " + (mistake or _label_problem(tokenizer, ids, got, want)))
    passed("labels train exactly the assistant replies and their <|im_end|>; everything else is -100")


def _mask_problem(tokenizer, ids: list[int], got: list[int], want: list[int]) -> str:
    """Describe what a wrong 0/1 assistant mask gets wrong, as 'problem. Fix: fix': a mask that marks nothing or never
    stops (a token string compared with ids), the header, the newline after <|im_end|> or another turn marked (each
    kind named), the stop token, a later reply or the reply's first token left out."""
    from labhelpers.views.display import token_roles, trained_spans

    roles, end = token_roles(tokenizer, ids), tokenizer.convert_tokens_to_ids("<|im_end|>")
    header = tokenizer.encode("<|im_start|>assistant\n", add_special_tokens=False)
    extra = [bool(g and not w) for g, w in zip(got, want)]
    missing = [bool(w and not g) for g, w in zip(got, want)]
    want_spans = trained_spans([bool(w) for w in want])
    if not any(got):
        return (f"your mask marks nothing: the assistant header was never found in the ids. Fix: look for the header's "
                f"ids, tokenizer.encode('<|im_start|>assistant\\n', add_special_tokens=False) ({header} here: "
                "'assistant' is more than one token), and compare them with slices of input_ids: a string, or a "
                "token that does not exist, never equals them")
    first = got.index(1)
    if want_spans and first == want_spans[0][0] and all(got[first:]) and not all(want[first:]):
        return (f"your mask never stops at <|im_end|>: it runs from the first reply (token {first}) to the end of the "
                "row. Fix: end each reply at its <|im_end|>, included; compare ids with ids: "
                "tokenizer.convert_tokens_to_ids('<|im_end|>') is an int, the string '<|im_end|>' never equals one")
    if any(extra):
        kinds: dict[str, tuple[str, str]] = {}
        for a, b in trained_spans(extra):
            text = tokenizer.decode(ids[a:b + 1])
            if roles[a] == "assistant" and a > 0 and ids[a - 1] == end:
                kinds.setdefault("newline", (
                    f"the newline after <|im_end|> (token {a}): the template writes it between turns, the model "
                    "never does", "stop the mask at <|im_end|>, included"))
            elif roles[a] == "assistant":
                kinds.setdefault("header", (
                    f"the assistant header at tokens {a}-{b} ({text!r}): the model reads it, it does not write it",
                    "start the mask right after the whole '<|im_start|>assistant\\n' header"))
            else:
                kinds.setdefault(roles[a], (
                    f"{roles[a]} tokens {a}-{b} ({text[:60]!r}): only assistant replies are written by the model",
                    "mark only what follows an '<|im_start|>assistant\\n' header, up to its <|im_end|>"))
        problems = [problem for problem, _ in kinds.values()]
        fixes = list(dict.fromkeys(fix for _, fix in kinds.values()))
        return f"you mark {', and '.join(problems[:3])}. Fix: {'; '.join(fixes[:3])}"
    spans = trained_spans(missing)
    a, b = spans[0]
    if a == b and ids[a] == end:
        return (f"the <|im_end|> closing the reply at token {a} is not marked: the model would never learn to stop. "
                "Fix: include the <|im_end|> that ends each reply")
    if len(want_spans) > 1 and (a, b) == want_spans[-1] and not any(missing[:want_spans[-1][0]]):
        reply = tokenizer.decode(ids[a:b + 1])[:40]
        return (f"only the first reply is marked; the reply at tokens {a}-{b} ({reply!r}) is not. Fix: a multi-turn "
                "conversation has one reply per assistant turn: look for every header")
    starts = {s for s, _ in want_spans}
    if all(x == y for x, y in spans) and {x for x, _ in spans} <= starts:
        return (f"the first token of the reply ({tokenizer.decode(ids[a:a + 1])!r}, token {a}) is not marked: you skip "
                "one token too many after the header. Fix: the reply starts right after the header's last token "
                "(its '\\n'): i += len(header), not len(header) + 1")
    return (f"reply tokens {a}-{b} ({tokenizer.decode(ids[a:b + 1])[:40]!r}) are not marked. Fix: mark every token "
            "after the header up to and including <|im_end|>")


def _as_flag(value: object) -> int | None:
    """``value`` as 0 or 1 (bools, ints, floats, numpy or 0-d torch values equal to 0 or 1), None otherwise.

    >>> _as_flag(True), _as_flag(0), _as_flag(1.0), _as_flag(-100), _as_flag("1")
    (1, 0, 1, None, None)
    """
    item = getattr(value, "item", None)
    if callable(item) and getattr(value, "ndim", 0) == 0:
        value = item()
    if isinstance(value, (bool, int, float)) and value in (0, 1):
        return int(value)
    return None


@student_code("assistant_mask_from_ids")
def check_assistant_mask_from_ids(assistant_mask_from_ids, tokenizer) -> None:
    """Compare the student's ``assistant_mask_from_ids(input_ids, tokenizer)`` (the optional harder TODO of 04) with
    the template's ``assistant_masks`` on a multi-turn and a single-turn conversation, naming the wrong span.

    The multi-turn conversation goes first: there a mask that never stops and one that stops at the next turn differ.
    Needs a real chat tokenizer; tests/test_checks_basics.py and tests/test_student_answers_nb04.py run it on the
    reference, on answers written differently and on typical mistakes.
    """
    hints = (
        ("is not in list", "list.index looks for one element, not a run of ids: compare slices, "
                           "input_ids[i:i + len(header)] == header"),
        ("IndexError", "keep every index below len(input_ids): check i < len(input_ids) before reading input_ids[i]"),
    )
    for conversation in sorted(LABEL_CHECK_CONVERSATIONS, key=len, reverse=True):
        enc = tokenizer.apply_chat_template(list(conversation), return_dict=True, return_assistant_tokens_mask=True)
        ids, want = list(enc["input_ids"]), [int(m) for m in enc["assistant_masks"]]
        got = call_student(assistant_mask_from_ids, list(ids), tokenizer, name="assistant_mask_from_ids", hints=hints)
        got = got.tolist() if hasattr(got, "tolist") else got
        require(isinstance(got, (list, tuple)) and len(got) == len(ids),
                f"assistant_mask_from_ids returned {_type_name(got)} of length "
                f"{len(got) if hasattr(got, '__len__') else '?'} for {len(ids)} input ids",
                "return one 0/1 value per input id, in order")
        flags = [_as_flag(x) for x in got]
        if None in flags:
            odd = sorted({repr(x) for x, f in zip(got, flags) if f is None})[:3]
            raise TodoCheckError(f"{len(conversation)}-message conversation: your mask holds values other than 0 and 1 "
                                 f"({', '.join(odd)}): labels (ids and -100) are build_labels' job. Fix: return 1 "
                                 "where the model writes the token, 0 elsewhere")
        if flags != want:
            raise TodoCheckError(f"{len(conversation)}-message conversation: "
                                 + _mask_problem(tokenizer, ids, flags, want))
    passed("your mask from the token ids alone equals the template's {% generation %} mask, replies and <|im_end|> "
           "included, on single- and multi-turn conversations")
