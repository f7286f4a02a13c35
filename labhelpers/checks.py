"""Feedback for the notebooks' TODO cells: each ``check_*`` runs the student's code on small inputs
and either prints what is right or raises :class:`TodoCheckError` saying what is wrong and how to fix it.

The checks compare against reference behaviour (library functions or small reference versions here);
they never fill a TODO in for the student.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from labhelpers.hardware import Recipe


class TodoCheckError(AssertionError):
    """A TODO cell's result is wrong; the message names what is wrong and the fix."""


def passed(message: str) -> None:
    """Print a check's success line.

    >>> passed("labels mask the prompt")
    ✓ labels mask the prompt
    """
    print(f"✓ {message}")


def require(condition: bool, problem: str, fix: str) -> None:
    """Raise :class:`TodoCheckError` with ``problem`` and ``fix`` unless ``condition`` holds.

    >>> require(True, "x", "y")
    >>> require(False, "your labels train the user turn", "set them to -100")
    Traceback (most recent call last):
    ...
    labhelpers.checks.TodoCheckError: your labels train the user turn. Fix: set them to -100
    """
    if not condition:
        raise TodoCheckError(f"{problem}. Fix: {fix}")


NOT_IMPLEMENTED = "not implemented yet: fill the TODO above"


def _is_todo_stub(err: BaseException) -> bool:
    """True for the ``NotImplementedError("TODO: ...")`` a student copy's stub raises (or a bare one).

    >>> _is_todo_stub(NotImplementedError("TODO: mask the prompt")), _is_todo_stub(NotImplementedError())
    (True, True)
    >>> _is_todo_stub(NotImplementedError("Could not run 'aten::mm' with arguments from the 'Meta' backend"))
    False
    """
    return isinstance(err, NotImplementedError) and (not str(err) or str(err).startswith("TODO"))


def _unfilled_todo_fails(fn, name: str):
    """``fn`` wrapped so that its unfilled TODO stub fails the check with one message, before any diagnosis."""
    import functools

    @functools.wraps(fn)
    def call(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except NotImplementedError as err:
            if not _is_todo_stub(err):
                raise
            raise TodoCheckError(f"{name} is {NOT_IMPLEMENTED}. Fix: replace its raise NotImplementedError(...) line "
                                 "with your code, run that cell, then this check") from None

    return call


def student_code(*params: str):
    """Decorator for a check: the named parameters are the student's functions. Calling one that still raises the
    TODO's ``NotImplementedError`` fails the check with "not implemented yet: fill the TODO above", whatever the
    check would otherwise catch (a ``NotImplementedError`` is also a ``RuntimeError``).

    >>> @student_code("double")
    ... def check_double(double):
    ...     require(double(2) == 4, "double(2) is wrong", "multiply by 2")
    >>> def double(x):
    ...     raise NotImplementedError("TODO: multiply by 2")
    >>> check_double(double)
    Traceback (most recent call last):
    ...
    labhelpers.checks.TodoCheckError: double is not implemented yet: fill the TODO above. Fix: replace its raise NotImplementedError(...) line with your code, run that cell, then this check
    """
    import functools
    import inspect

    def decorate(check):
        signature = inspect.signature(check)

        @functools.wraps(check)
        def run(*args, **kwargs):
            bound = signature.bind(*args, **kwargs)
            for name in params:
                if callable(bound.arguments.get(name)):
                    bound.arguments[name] = _unfilled_todo_fails(bound.arguments[name], name)
            return check(*bound.args, **bound.kwargs)

        run.student_params = params  # type: ignore[attr-defined]  # lets the tests find every such check
        return run

    return decorate


class TodoNotDoneError(TodoCheckError):
    """A cell that needs a TODO ran before the TODO was done; shown as one line in Jupyter (no traceback)."""

    def _render_traceback_(self) -> list[str]:  # IPython shows these lines instead of the traceback
        return [f"{type(self).__name__}: {self}"]


def _holds_todo_stub(value: object) -> bool:
    """True when ``value`` is a function (or a class with a method) whose code still raises the TODO stub.

    >>> def f(x):
    ...     raise NotImplementedError("TODO: double x")
    >>> _holds_todo_stub(f), _holds_todo_stub(lambda x: 2 * x), _holds_todo_stub(3)
    (True, False, False)
    """
    import inspect

    def stub_in(code) -> bool:
        if "NotImplementedError" in code.co_names and any(
                isinstance(c, str) and c.startswith("TODO: ") for c in code.co_consts):
            return True
        return any(stub_in(c) for c in code.co_consts if inspect.iscode(c))

    if inspect.isclass(value):
        return any(_holds_todo_stub(v) for v in vars(value).values())
    code = getattr(inspect.unwrap(value), "__code__", None) if callable(value) else None
    return code is not None and stub_in(code)


def require_todo(*names: str) -> None:
    """Stop a cell that needs the TODO above with one clear line unless each name is defined and done.

    The student notebooks call it at the top of every cell that depends on a TODO (``nbtools build`` writes the
    call); ``names`` are what the TODO defines. Looks the names up in the calling notebook's globals.

    >>> def build_labels(ids, mask):
    ...     raise NotImplementedError("TODO: keep the reply tokens")
    >>> require_todo("build_labels")
    Traceback (most recent call last):
    ...
    labhelpers.checks.TodoNotDoneError: run the TODO above first: build_labels is not implemented yet (its code still has the TODO's raise NotImplementedError line). Fix: fill in the TODO, run its cell and its check, then the cells below it in order
    >>> require_todo("packed")
    Traceback (most recent call last):
    ...
    labhelpers.checks.TodoNotDoneError: run the TODO above first (it defines `packed`). Fix: fill in the TODO, run its cell and its check, then the cells below it in order
    """
    import sys

    namespace = sys._getframe(1).f_globals
    fix = "fill in the TODO, run its cell and its check, then the cells below it in order"
    for name in names:
        if name not in namespace:
            raise TodoNotDoneError(f"run the TODO above first (it defines `{name}`). Fix: {fix}")
        if _holds_todo_stub(namespace[name]):
            raise TodoNotDoneError(f"run the TODO above first: {name} is not implemented yet (its code "
                                   f"still has the TODO's raise NotImplementedError line). Fix: {fix}")


# --------------------------------------------------------------------------- 01 · setup and hardware
@student_code("effective_batch_size", "optimizer_steps_per_epoch", "warmup_steps")
def check_batch_math(effective_batch_size, optimizer_steps_per_epoch, warmup_steps) -> None:
    """Compare the student's batch arithmetic with :func:`labhelpers.batching.effective_batch` on many cases.

    >>> import math
    >>> eff = lambda p, a, g: p * a * g
    >>> steps = lambda n, p, a, g: math.ceil(math.ceil(n / (p * g)) / a)
    >>> check_batch_math(eff, steps, lambda total, ratio: math.ceil(total * ratio))
    ✓ batch arithmetic matches HF Trainer on 840 layouts and 18 warmup cases
    >>> check_batch_math(eff, lambda n, p, a, g: n // (p * a * g), lambda t, r: math.ceil(t * r))
    Traceback (most recent call last):
    ...
    labhelpers.checks.TodoCheckError: optimizer_steps_per_epoch(n_examples=1, per_device=1, grad_accum=1, n_gpus=2) returned 0, HF Trainer runs 1 (each device gets ceil(1 / (1 x 2)) = 1 batches, then ceil(1 / 1) accumulation rounds). Fix: count the last, partial batch and the last, partial accumulation as full steps: round up (math.ceil), never down (//)
    """
    from labhelpers.batching import effective_batch

    layouts = [(p, a, g) for p in (1, 2, 3, 4, 8) for a in (1, 2, 4, 8, 16, 3) for g in (1, 2, 4, 8)]
    sizes = (1, 7, 64, 500, 501, 720, 9999)
    for p, a, g in layouts:
        want = p * a * g
        got = effective_batch_size(p, a, g)
        require(got == want, f"effective_batch_size(per_device={p}, grad_accum={a}, n_gpus={g}) returned {got!r}, "
                f"expected {want}", "every optimizer step sees per_device sequences on each of n_gpus devices, "
                "grad_accum times: multiply all three")
    for p, a, g in layouts:
        for n in sizes:
            want = effective_batch(p, a, g, n_examples=n).optimizer_steps_per_epoch
            got = optimizer_steps_per_epoch(n, p, a, g)
            batches = -(-n // (p * g))
            require(got == want, f"optimizer_steps_per_epoch(n_examples={n}, per_device={p}, grad_accum={a}, n_gpus={g}) "
                    f"returned {got!r}, HF Trainer runs {want} (each device gets ceil({n} / ({p} x {g})) = {batches} "
                    f"batches, then ceil({batches} / {a}) accumulation rounds)",
                    "count the last, partial batch and the last, partial accumulation as full steps: "
                    "round up (math.ceil), never down (//)")
    cases = [(t, r) for t in (8, 24, 96, 141, 250, 1000) for r in (0.0, 0.03, 0.1)]
    for total, ratio in cases:
        want = effective_batch(1, 1, 1, n_examples=total, warmup_ratio=ratio).warmup_steps
        got = warmup_steps(total, ratio)
        require(got == want, f"warmup_steps(total_steps={total}, ratio={ratio}) returned {got!r}, HF computes "
                f"math.ceil({total} * {ratio}) = {want}",
                "TrainingArguments.get_warmup_steps rounds the product up with math.ceil (int() and round() round down)")
    passed(f"batch arithmetic matches HF Trainer on {len(layouts) * len(sizes)} layouts and {len(cases)} warmup cases")


# --------------------------------------------------------------------------- 02 · baseline generation
GENERATION_CHECK_PROMPTS = ("Say hi.", "Name the three primary colours and say in one short sentence why they matter.")


def _generate_alone(model, tokenizer, prompt: str, max_new_tokens: int) -> str:
    """Reference: one prompt, no padding at all, greedy, new tokens only, special tokens skipped."""
    import torch

    text = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                         add_generation_prompt=True)
    enc = tokenizer(text, return_tensors="pt", add_special_tokens=False).to(model.device)
    from labhelpers.attention import model_autocast

    with torch.no_grad(), model_autocast(model):  # a flash kernel takes only half precision
        out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                             pad_token_id=tokenizer.pad_token_id)
    return tokenizer.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)


def _float32_twin(model):
    """(model to compare generations on, note for the message): ``model`` itself when it computes in float32, else a
    float32 copy. In bfloat16/float16 a padded batch and a single prompt round differently, and greedy decoding flips
    wherever the top two logits are within that rounding, so exact equality is only meaningful in float32."""
    import copy

    import torch

    dtype = getattr(model, "dtype", torch.float32)
    if dtype not in (torch.bfloat16, torch.float16) or getattr(model, "is_quantized", False):
        return model, f"exact match, {str(dtype).removeprefix('torch.')}"
    twin = copy.deepcopy(model).float()
    return twin, (f"exact match, compared in float32 on a float32 copy of your {str(dtype).removeprefix('torch.')} "
                  "model: half precision rounds a padded batch differently and can flip near-tied greedy tokens")


@student_code("generate_answers")
def check_generate_answers(generate_answers, model, tokenizer, max_new_tokens: int = 6) -> None:
    """Run the student's batched ``generate_answers`` on two prompts of different lengths and compare each reply
    with the same prompt generated alone (no padding, greedy). A bfloat16/float16 model is compared on a float32 copy
    (see :func:`_float32_twin`); the model itself is not changed. Needs the real model (see tests/test_checks_basics.py).
    """
    prompts = list(GENERATION_CHECK_PROMPTS)
    side = tokenizer.padding_side
    model, how = _float32_twin(model)
    got = generate_answers(model, tokenizer, prompts, max_new_tokens)
    tokenizer.padding_side = side
    require(isinstance(got, list) and len(got) == len(prompts) and all(isinstance(x, str) for x in got),
            f"generate_answers returned {type(got).__name__} {str(got)[:80]!r}, expected a list of {len(prompts)} strings",
            "return one decoded string per prompt, in the order of the prompts")
    for prompt, text in zip(prompts, got):
        require("<|im_" not in text and "<|endoftext|>" not in text,
                f"the reply to {prompt!r} contains special tokens: {text[:120]!r}",
                "decode with tokenizer.batch_decode(new_tokens, skip_special_tokens=True)")
        require(prompt not in text and "You are a helpful AI assistant" not in text,
                f"the reply to {prompt!r} contains the prompt itself: {text[:120]!r}",
                "decode only the new tokens: output_ids[:, input_ids.shape[1]:] (generate returns prompt + reply)")
    want = [_generate_alone(model, tokenizer, p, max_new_tokens) for p in prompts]
    short, long_ = 0, 1  # the short prompt is the one that gets padded in a batch
    if got[long_] == want[long_] and got[short] != want[short]:
        raise TodoCheckError(
            f"the padded (shorter) prompt {prompts[short]!r} gets {got[short][:80]!r} in your batch but "
            f"{want[short][:80]!r} alone ({how}); the unpadded one matches. Fix: pad on the LEFT "
            "(tokenizer.padding_side = 'left') and pass the attention_mask to generate, so every prompt ends right "
            "where its reply begins")
    require(got == want, f"your replies {[g[:60] for g in got]} differ from greedy replies generated one prompt at a "
            f"time {[w[:60] for w in want]} ({how})",
            "render each prompt with apply_chat_template(..., add_generation_prompt=True, tokenize=False), tokenize "
            "with add_special_tokens=False and padding_side='left', generate greedily (do_sample=False) with the "
            "attention_mask")
    passed(f"batched, left-padded greedy replies match one-at-a-time generation for {len(prompts)} prompts ({how})")


# --------------------------------------------------------------------------- 03 · chat formatting
def first_difference(got: str, want: str, context: int = 25) -> str:
    """Where two strings first differ, with a snippet of each around that position ('' when equal).

    >>> print(first_difference("<|im_start|>user\\nHi", "<|im_start|>user\\nHi<|im_end|>\\n", 8))
    first difference at character 19 (your text is shorter): yours '>user\\nHi' vs expected '>user\\nHi<|im_end'
    >>> first_difference("abc", "abc")
    ''
    """
    if got == want:
        return ""
    pos = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
    lo = max(pos - context, 0)
    note = " (your text is shorter)" if pos == len(got) else " (your text is longer)" if pos == len(want) else ""
    return (f"first difference at character {pos}{note}: yours {got[lo:pos + context]!r} "
            f"vs expected {want[lo:pos + context]!r}")


def chatml_check_cases() -> list[tuple[list[dict[str, str]], bool]]:
    """(messages, add_generation_prompt) pairs covering the template's branches.

    >>> len(chatml_check_cases()), chatml_check_cases()[0]
    (11, ([{'role': 'user', 'content': 'Hi!'}], True))
    """
    from labhelpers.chat import PROBE_CONVERSATIONS

    cases: list[tuple[list[dict[str, str]], bool]] = [
        ([{"role": "user", "content": "Hi!"}], True),
        ([{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Hi!"}], True),
        ([{"role": "user", "content": "  spaces and a trailing newline\n"}], False),
    ]
    for conversation in PROBE_CONVERSATIONS:
        cases.append((list(conversation), False))
        cases.append((list(conversation[:-1]), True))
    return cases


@student_code("format_chatml")
def check_format_chatml(format_chatml, tokenizer) -> None:
    """Compare the student's ``format_chatml(messages, add_generation_prompt)`` with the tokenizer's own rendering.

    >>> class Tok:  # renders like SmolLM2's template, without a default system prompt
    ...     def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=False):
    ...         s = "".join(f"<|im_start|>{m['role']}\\n{m['content']}<|im_end|>\\n" for m in messages)
    ...         return s + ("<|im_start|>assistant\\n" if add_generation_prompt else "")
    >>> check_format_chatml(lambda m, add_generation_prompt=False: Tok().apply_chat_template(m,
    ...     add_generation_prompt=add_generation_prompt), Tok())
    ✓ format_chatml reproduces apply_chat_template on 11 conversations (with and without a generation prompt)
    >>> check_format_chatml(lambda m, add_generation_prompt=False: Tok().apply_chat_template(m), Tok())
    Traceback (most recent call last):
    ...
    labhelpers.checks.TodoCheckError: case 1 of 11, add_generation_prompt=True, messages [{'role': 'user', 'content': 'Hi!'}]: first difference at character 31 (your text is shorter): yours 'tart|>user\\nHi!<|im_end|>\\n' vs expected 'tart|>user\\nHi!<|im_end|>\\n<|im_start|>assistant\\n'. Fix: with add_generation_prompt=True, end with '<|im_start|>assistant\\n' so the model knows it is its turn
    """
    cases = chatml_check_cases()
    for number, (messages, gen) in enumerate(cases, start=1):
        want = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=gen)
        got = format_chatml([dict(m) for m in messages], add_generation_prompt=gen)
        require(isinstance(got, str), f"format_chatml returned {type(got).__name__}, not a string",
                "build and return one string")
        if got == want:
            continue
        diff = first_difference(got, want)
        pos = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
        if gen and want.endswith("<|im_start|>assistant\n") and not got.endswith("<|im_start|>assistant\n"):
            fix = "with add_generation_prompt=True, end with '<|im_start|>assistant\\n' so the model knows it is its turn"
        elif not gen and got.endswith("<|im_start|>assistant\n"):
            fix = "add the generation prompt only when add_generation_prompt=True"
        elif messages[0]["role"] != "system" and want.startswith("<|im_start|>system") and pos < 100:
            fix = ("without a system message SmolLM2's template inserts its default one first: "
                   "'<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\\n'")
        elif messages[0]["role"] == "system" and got.count("<|im_start|>system") > 1:
            fix = "insert the default system prompt only when the first message is not a system message"
        else:
            fix = ("each message is '<|im_start|>' + role + '\\n' + content + '<|im_end|>' + '\\n', content unchanged "
                   "(no strip), nothing between messages")
        raise TodoCheckError(f"case {number} of {len(cases)}, add_generation_prompt={gen}, messages {messages}: {diff}. "
                             f"Fix: {fix}")
    passed(f"format_chatml reproduces apply_chat_template on {len(cases)} conversations "
           "(with and without a generation prompt)")


# --------------------------------------------------------------------------- 04 · loss masking
LABEL_CHECK_CONVERSATIONS = (
    ({"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "Blue."}),
    ({"role": "system", "content": "Be brief."}, {"role": "user", "content": "Capital of France?"},
     {"role": "assistant", "content": "Paris."}, {"role": "user", "content": "And of Italy?"},
     {"role": "assistant", "content": "Rome."}),
)


def _label_problem(tokenizer, ids: list[int], got: list[int], want: list[int]) -> str:
    """Describe the first wrong span of labels: which turn is trained or masked by mistake, decoded."""
    from labhelpers.display import token_roles, trained_spans

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


@student_code("build_labels")
def check_build_labels(build_labels, tokenizer) -> None:
    """Compare the student's ``build_labels(input_ids, assistant_mask)`` with the reference on a single-turn and a
    multi-turn conversation, naming the wrong span.

    Needs a real chat tokenizer; tests/test_checks_basics.py runs it on the reference and on typical mistakes.
    """
    for conversation in LABEL_CHECK_CONVERSATIONS:
        enc = tokenizer.apply_chat_template(list(conversation), return_dict=True, return_assistant_tokens_mask=True)
        ids, mask = list(enc["input_ids"]), list(enc["assistant_masks"])
        want = [i if m else -100 for i, m in zip(ids, mask)]
        got = build_labels(list(ids), list(mask))
        require(isinstance(got, list), f"build_labels returned a {_type_name(got)}, not a list (the later cells "
                f"compare your labels with lists, and {_type_name(got)} == list does not give True or False)",
                "return a Python list of ints: e.g. labels.tolist()" if hasattr(got, "tolist") else
                "return a Python list of ints, e.g. list(labels)")
        require(len(got) == len(ids), f"build_labels returned {len(got)} labels for {len(ids)} input ids",
                "return one label per input id")
        got = [int(x) for x in got]
        if got == want:
            continue
        if got[:-1] == want[1:] or got[:-1] == ids[1:]:
            raise TodoCheckError("your labels are shifted by one token (label[i] = input_ids[i+1]). Fix: do not shift: "
                                 "the model compares logits[i] with labels[i+1] itself")
        raise TodoCheckError(f"{len(conversation)}-message conversation: " + _label_problem(tokenizer, ids, got, want))
    passed("labels train exactly the assistant replies and their <|im_end|>; everything else is -100")


def _mask_problem(tokenizer, ids: list[int], got: list[int], want: list[int]) -> str:
    """Describe the first wrong span of a 0/1 assistant mask: the header, the newline after <|im_end|>, the stop token,
    a later reply, or a turn that is not the assistant's."""
    from labhelpers.display import token_roles, trained_spans

    roles, end = token_roles(tokenizer, ids), tokenizer.convert_tokens_to_ids("<|im_end|>")
    extra = [g and not w for g, w in zip(got, want)]
    missing = [w and not g for g, w in zip(got, want)]
    if any(extra):
        a, b = trained_spans(extra)[0]
        text = tokenizer.decode(ids[a:b + 1])
        if roles[a] == "assistant" and a > 0 and ids[a - 1] == end:
            return (f"you mark the newline after <|im_end|> (token {a}): the template writes it between turns, the model "
                    "never does. Fix: stop the mask at <|im_end|>, included")
        if roles[a] == "assistant":
            return (f"you mark the assistant header at tokens {a}-{b} ({text!r}): the model reads it, it does not "
                    "write it. Fix: start the mask right after the whole '<|im_start|>assistant\\n' header")
        return (f"you mark {roles[a]} tokens {a}-{b} ({text[:60]!r}): only assistant replies are written by the model. "
                "Fix: mark only what follows an '<|im_start|>assistant\\n' header, up to its <|im_end|>")
    spans, want_spans = trained_spans(missing), trained_spans([bool(w) for w in want])
    a, b = spans[0]
    if a == b and ids[a] == end:
        return (f"the <|im_end|> closing the reply at token {a} is not marked: the model would never learn to stop. "
                "Fix: include the <|im_end|> that ends each reply")
    if len(want_spans) > 1 and (a, b) == want_spans[-1] and not any(missing[:want_spans[-1][0]]):
        return (f"only the first reply is marked; the reply at tokens {a}-{b} ({tokenizer.decode(ids[a:b + 1])[:40]!r}) "
                "is not. Fix: a multi-turn conversation has one reply per assistant turn: look for every header")
    return (f"reply tokens {a}-{b} ({tokenizer.decode(ids[a:b + 1])[:40]!r}) are not marked. Fix: mark every token "
            "after the header up to and including <|im_end|>")


@student_code("assistant_mask_from_ids")
def check_assistant_mask_from_ids(assistant_mask_from_ids, tokenizer) -> None:
    """Compare the student's ``assistant_mask_from_ids(input_ids, tokenizer)`` (the optional harder TODO of 04) with
    the template's ``assistant_masks`` on a single-turn and a multi-turn conversation, naming the wrong span.

    Needs a real chat tokenizer; tests/test_checks_basics.py runs it on the reference and on typical mistakes.
    """
    for conversation in LABEL_CHECK_CONVERSATIONS:
        enc = tokenizer.apply_chat_template(list(conversation), return_dict=True, return_assistant_tokens_mask=True)
        ids, want = list(enc["input_ids"]), [int(m) for m in enc["assistant_masks"]]
        got = assistant_mask_from_ids(list(ids), tokenizer)
        got = got.tolist() if hasattr(got, "tolist") else got
        require(isinstance(got, (list, tuple)) and len(got) == len(ids),
                f"assistant_mask_from_ids returned {_type_name(got)} of length "
                f"{len(got) if hasattr(got, '__len__') else '?'} for {len(ids)} input ids",
                "return one 0/1 value per input id, in order")
        got = [int(bool(x)) for x in got]
        if got != want:
            raise TodoCheckError(f"{len(conversation)}-message conversation: " + _mask_problem(tokenizer, ids, got, want))
    passed("your mask from the token ids alone equals the template's {% generation %} mask, replies and <|im_end|> "
           "included, on single- and multi-turn conversations")


# ------------------------------------------------------------------------------------------------ 05 packing
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


# ------------------------------------------------------------------------------------------ 06 SFTConfig
# Why notebook 06's run needs each setting beyond the recipe's sizes (the values live in REFERENCE_RUN_SETTINGS
# and the recipe, so the check, the reference run and the sanity protocol cannot disagree).
WHY_SETTING: dict[str, str] = {
    "assistant_only_loss": "train on the assistant replies only (notebook 04)",
    "packing": "pack rows only where a variable-length attention kernel makes it pay (notebook 05; recipe.packing)",
    "train_sampling_strategy": "batch rows of similar length where packing does not pay (recipe.train_sampling_strategy)",
    "load_best_model_at_end": "keep the checkpoint with the lowest eval loss",
    "eval_on_start": "evaluate the untouched model first, so the eval curve starts at the base model's loss",
    "metric_for_best_model": "judge 'best' by the eval loss",
    "greater_is_better": "a lower eval loss is better",
    "save_total_limit": "keep the best and the newest checkpoint, not every one",
    "logging_nan_inf_filter": "the default replaces a NaN loss by a running average, hiding it",
    "eval_strategy": "evaluate every eval_steps steps",
    "save_strategy": "save every save_steps steps",
}


def _config_value(config: object, name: str) -> object:
    value = getattr(config, name)
    return value.value if hasattr(value, "value") else value


def check_sft_config(config: object, recipe: Recipe) -> None:
    """Compare the student's ``SFTConfig`` with notebook 06's run (``recipe.reference_config``), field by field."""
    from trl import SFTConfig

    from labhelpers.hardware import REFERENCE_RUN_SETTINGS

    require(isinstance(config, SFTConfig), f"config is a {type(config).__name__}, not an SFTConfig",
            "build it with SFTConfig(output_dir=..., ...)")
    reference = recipe.reference_config(config.output_dir)
    problems = []
    for name in {**recipe.sft_config_kwargs(), **REFERENCE_RUN_SETTINGS}:
        if name in {"report_to", "seed"}:
            continue
        have, want = _config_value(config, name), _config_value(reference, name)
        if have == want or (isinstance(want, float) and isinstance(have, float) and abs(have - want) < 1e-12):
            continue
        why = WHY_SETTING.get(name)
        problems.append(f"{name} is {have!r}; set {name}={want!r} to {why}" if why else
                        f"{name} is {have!r}, the recipe says {want!r}")
    require(not problems, "your SFTConfig differs from what this run needs:\n  - " + "\n  - ".join(sorted(problems)),
            "change those fields and re-run the cell")
    batching = "packing" if config.packing else f"{config.train_sampling_strategy} batches"
    passed(f"SFTConfig matches the {recipe.profile} recipe: max_length {config.max_length}, "
           f"lr {config.learning_rate}, effective batch {recipe.plan().effective_batch_size}, assistant-only loss, "
           f"{batching}")


def predict_run_cases() -> list[tuple[dict, int]]:
    """(config fields, train batches per epoch) for :func:`check_predict_run`: max_steps or epochs, ratios or step
    counts, gradient accumulation with a partial last group, intervals that do not divide the run.

    >>> [batches for _, batches in predict_run_cases()]
    [40, 125, 40, 10]
    """
    base = {"gradient_accumulation_steps": 1, "max_steps": -1, "num_train_epochs": 1, "eval_strategy": "steps",
            "save_strategy": "steps", "logging_strategy": "steps", "logging_steps": 1, "eval_on_start": False}
    return [
        ({**base, "max_steps": 40, "eval_steps": 5, "save_steps": 20, "warmup_steps": 0.1, "eval_on_start": True}, 40),
        ({**base, "num_train_epochs": 3, "gradient_accumulation_steps": 4, "eval_steps": 0.125, "save_steps": 0.125,
          "warmup_steps": 0.1}, 125),
        ({**base, "max_steps": 30, "eval_steps": 7, "save_steps": 14, "warmup_steps": 3}, 40),
        ({**base, "gradient_accumulation_steps": 4, "eval_steps": 0.5, "save_steps": 2, "warmup_steps": 0.1}, 10),
    ]


def _predict_run_problem(key: str, got: int, config: dict, batches: int, want: dict) -> str:
    accum, epochs = config["gradient_accumulation_steps"], config["num_train_epochs"]
    total = want["steps"]
    if key == "steps":
        if config["max_steps"] > 0:
            return f"max_steps={config['max_steps']} is set: it overrides num_train_epochs. Fix: if max_steps > 0, that is the step count"
        if got == math.floor(batches / accum) * epochs:
            return (f"{batches} batches with gradient_accumulation_steps={accum} make {math.ceil(batches / accum)} "
                    f"optimizer steps per epoch, not {batches // accum}: the last, partial group still steps. "
                    "Fix: ceil(batches / accum) per epoch")
        if got == batches * epochs:
            return f"one optimizer step consumes gradient_accumulation_steps={accum} batches. Fix: divide (rounding up)"
        return "Fix: steps = max_steps if > 0, else ceil(num_train_epochs * ceil(batches / accumulation))"
    every = config[f"{'eval' if key == 'evaluations' else 'save'}_steps"]
    if key in ("evaluations", "checkpoints"):
        interval = math.ceil(total * every) if every < 1 else int(every)
        if key == "evaluations" and config["eval_on_start"] and got == want[key] - 1:
            return "eval_on_start=True adds one evaluation before the first step. Fix: count it"
        if every < 1 and got != want[key]:
            return (f"{'eval' if key == 'evaluations' else 'save'}_steps={every} is below 1: a share of the run, "
                    f"every ceil({total} x {every}) = {interval} steps. Fix: convert shares to steps first")
        if got == total // interval:
            return (f"every {interval} steps in {total} gives {total // interval}, plus one at the last step "
                    f"({total}), which the Trainer adds when it is not a multiple of {interval}. Fix: count the final one")
        return f"Fix: one every {interval} steps, plus the final step when {total} is not a multiple of {interval}"
    ratio = config["warmup_steps"]
    if ratio < 1 and got == math.floor(total * ratio):
        return f"warmup_steps={ratio} is a share: the Trainer rounds it up, ceil({total} x {ratio}). Fix: use math.ceil"
    return "Fix: warmup_steps >= 1 is a step count; below 1, ceil(total steps x warmup_steps)"


@student_code("predict_run")
def check_predict_run(predict_run) -> None:
    """The optional harder TODO of 06: ``predict_run(config, batches_per_epoch)`` returns the run's optimizer steps,
    evaluations, checkpoints and warmup steps as the Trainer will count them (reference:
    :func:`labhelpers.sanity.config.plan_run`), on configs with accumulation, ratios and uneven intervals.
    """
    from types import SimpleNamespace

    from labhelpers.sanity.config import plan_run

    for n, (fields, batches) in enumerate(predict_run_cases(), start=1):
        plan = plan_run(SimpleNamespace(**fields), batches)
        want = {"steps": plan.total_steps, "evaluations": plan.eval_points, "checkpoints": plan.save_points,
                "warmup_steps": plan.warmup_steps}
        got = predict_run(SimpleNamespace(**fields), batches)
        require(isinstance(got, dict) and set(want) <= set(got),
                f"predict_run returned {str(got)[:80]!r}", f"return a dict with the keys {sorted(want)}")
        for key in want:  # in order: a wrong step count explains the rest
            if int(got[key]) != want[key]:
                shown = {k: fields[k] for k in fields if k not in ("eval_strategy", "save_strategy", "logging_strategy",
                                                                    "logging_steps")}
                raise TodoCheckError(f"case {n} ({shown}, {batches} batches per epoch): {key} {got[key]} but the "
                                     f"Trainer makes {want[key]}. " + _predict_run_problem(key, int(got[key]), fields,
                                                                                         batches, want))
    passed("your predictions match the Trainer's own arithmetic: steps, evaluations, checkpoints and warmup on "
           f"{len(predict_run_cases())} configs")


# ------------------------------------------------------------------------------------------ 07 loss plot
def _line_points(line: object) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in zip(line.get_xdata(), line.get_ydata())]


def check_loss_plot(figure: object, log_history: list[dict]) -> None:
    """Check the student's figure: one Axes with a 'train loss' and an 'eval loss' line holding the logged points."""
    from matplotlib.figure import Figure

    require(isinstance(figure, Figure), f"plot_losses returned {type(figure).__name__}", "return the Figure (fig)")
    require(len(figure.axes) >= 1, "the figure has no Axes", "draw on fig, ax = plt.subplots()")
    lines = {line.get_label(): line for ax in figure.axes for line in ax.get_lines()}
    expected = {
        "train loss": [(float(e["step"]), float(e["loss"])) for e in log_history if "loss" in e],
        "eval loss": [(float(e["step"]), float(e["eval_loss"])) for e in log_history if "eval_loss" in e],
    }
    for label, points in expected.items():
        require(label in lines, f"no line labelled {label!r} (labels found: {sorted(lines)})",
                f"pass label={label!r} to ax.plot")
        drawn = _line_points(lines[label])
        require(len(drawn) == len(points), f"the {label!r} line has {len(drawn)} points, the log has {len(points)}",
                "plot one point per log entry that has the key" + (" 'eval_loss'" if label == "eval loss" else " 'loss'"))
        require(all(abs(a[0] - b[0]) < 1e-9 and abs(a[1] - b[1]) < 1e-6 for a, b in zip(drawn, points)),
                f"the {label!r} line's points differ from the log (first: {drawn[:1]} vs {points[:1]})",
                "use x = entry['step'] and y = the loss value")
    ax = lines["train loss"].axes
    require(bool(ax.get_xlabel()) and bool(ax.get_ylabel()), "an axis has no label", "call ax.set_xlabel / ax.set_ylabel")
    passed(f"loss plot: {len(expected['train loss'])} train points and {len(expected['eval loss'])} eval points, labelled")


# ------------------------------------------------------------------- 08 · LR schedules, 11 · custom loop
def _reference_cosine_lrs(total_steps: int, warmup_steps: int, peak_lr: float) -> list[float]:
    """LR at steps 0..total_steps from ``transformers.get_scheduler("cosine")`` on a throwaway optimizer.

    >>> [round(x, 3) for x in _reference_cosine_lrs(4, 1, 1.0)]
    [0.0, 1.0, 0.75, 0.25, 0.0]
    """
    import torch
    from transformers import get_scheduler

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=peak_lr)
    sched = get_scheduler("cosine", opt, num_warmup_steps=warmup_steps, num_training_steps=total_steps)
    lrs = []
    for _ in range(total_steps + 1):
        lrs.append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
    return lrs


def _cosine_mistakes(step: int, total: int, warmup: int, peak: float) -> dict[str, float]:
    """LR at ``step`` under common wrong versions of cosine-with-warmup, keyed by the feedback to give."""
    import math

    cos = lambda p: 0.5 * (1 + math.cos(math.pi * p))  # noqa: E731
    decay = (step - warmup) / max(1, total - warmup)
    out = {
        "your warmup is off by one: it reaches peak_lr one step early (you used (step + 1) / warmup_steps); "
        "at step 0 the LR must be 0": peak * min(1.0, (step + 1) / max(1, warmup)) if step < warmup else peak * cos(decay),
        "your decay measures progress as step / total_steps; measure it from the end of warmup: "
        "(step - warmup_steps) / (total_steps - warmup_steps)": peak * cos(step / total) if step >= warmup else peak * step / max(1, warmup),
        "your cosine is missing the 0.5 * (1 + ...) that maps cos from [-1, 1] onto [0, 1]":
            peak * math.cos(math.pi * decay) if step >= warmup else peak * step / max(1, warmup),
        "your cosine runs a full period (cos(2*pi*progress)) and climbs back to peak; use cos(pi * progress) "
        "so it ends at 0": peak * 0.5 * (1 + math.cos(2 * math.pi * decay)) if step >= warmup else peak * step / max(1, warmup),
        "your LR goes up during decay: use 1 + cos(...), not 1 - cos(...)":
            peak * 0.5 * (1 - math.cos(math.pi * decay)) if step >= warmup else peak * step / max(1, warmup),
    }
    return out


def _digits_to_tell_apart(a: float, b: float) -> int:
    """Significant digits that print ``a`` and ``b`` differently (4 to 17), from their relative difference.

    >>> d = _digits_to_tell_apart(1.999e-05, 1.99900004e-05); d, f"{1.999e-05:.{d}g} vs {1.99900004e-05:.{d}g}"
    (10, '1.999e-05 vs 1.99900004e-05')
    >>> _digits_to_tell_apart(0.0, 2e-5), _digits_to_tell_apart(1.0, 1.0)
    (4, 4)
    """
    import math

    scale = max(abs(a), abs(b))
    if a == b or scale == 0 or not math.isfinite(scale):
        return 4
    relative = abs(a - b) / scale
    return min(17, max(4, math.ceil(-math.log10(relative)) + 2))


@student_code("cosine_with_warmup_lr")
def check_cosine_schedule(cosine_with_warmup_lr, cases=((96, 10, 2e-5), (8, 1, 1e-4), (20, 0, 5e-5), (30, 29, 1e-3))) -> None:
    """Compare ``cosine_with_warmup_lr(step, total_steps, warmup_steps, peak_lr)`` with ``get_scheduler("cosine")``
    at every step 0..total_steps of each (total_steps, warmup_steps, peak_lr) case.

    >>> import math
    >>> def good(step, total, warmup, peak):
    ...     if step < warmup:
    ...         return peak * step / warmup
    ...     return peak * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))
    >>> check_cosine_schedule(good)
    ✓ your cosine schedule matches get_scheduler("cosine") at all 158 steps of 4 schedules (warmup 0 to 29 steps)
    >>> check_cosine_schedule(lambda s, t, w, p: p * 0.5 * (1 + math.cos(math.pi * s / t)))
    Traceback (most recent call last):
    ...
    labhelpers.checks.TodoCheckError: at step 0 your LR is 2e-05 but warmup starts at 0 (total_steps=96, warmup_steps=10, peak_lr=2e-05). Fix: during warmup return peak_lr * step / warmup_steps: 0 at step 0, peak_lr at step warmup_steps
    """
    import math

    n_steps = 0
    for total, warmup, peak in cases:
        want_all = _reference_cosine_lrs(total, warmup, peak)
        where = f"(total_steps={total}, warmup_steps={warmup}, peak_lr={peak:g})"
        for step, want in enumerate(want_all):
            try:
                got = cosine_with_warmup_lr(step, total, warmup, peak)
            except ZeroDivisionError as err:
                raise TodoCheckError(f"at step {step} your function divided by zero {where}: {err}. Fix: with "
                                     "warmup_steps=0 there is no warmup phase; guard the division, e.g. "
                                     "max(1, warmup_steps), as transformers does") from err
            require(isinstance(got, (int, float)) and not isinstance(got, bool) and math.isfinite(got),
                    f"at step {step} your function returned {got!r} {where}", "return the LR as a Python float")
            if math.isclose(got, want, rel_tol=1e-6, abs_tol=peak * 1e-9):
                continue
            digits = _digits_to_tell_apart(got, want)
            tell = f"at step {step} your LR is {got:.{digits}g} but "
            if step == 0 and warmup > 0:
                require(False, tell + f"warmup starts at 0 {where}",
                        "during warmup return peak_lr * step / warmup_steps: 0 at step 0, peak_lr at step warmup_steps")
            if step < warmup:
                require(False, tell + f"warmup should be at {want:.{digits}g} = peak_lr * {step}/{warmup} {where}",
                        "ramp linearly: peak_lr * step / warmup_steps while step < warmup_steps")
            for mistake, value in _cosine_mistakes(step, total, warmup, peak).items():
                if math.isclose(got, value, rel_tol=1e-6, abs_tol=peak * 1e-9):
                    require(False, tell + f"get_scheduler('cosine') gives {want:.{digits}g} {where}: {mistake}",
                            "lr = peak_lr * 0.5 * (1 + cos(pi * progress)), progress = (step - warmup_steps) / "
                            "(total_steps - warmup_steps)")
            if step == warmup:
                require(False, tell + f"at the end of warmup the LR is the peak, {want:.{digits}g} {where}",
                        "for step >= warmup_steps use progress = (step - warmup_steps) / (total_steps - warmup_steps); "
                        "progress 0 gives peak_lr")
            require(False, tell + f"get_scheduler('cosine') gives {want:.{digits}g} {where}",
                    "after warmup: lr = peak_lr * 0.5 * (1 + cos(pi * progress)) with progress = (step - warmup_steps) "
                    "/ (total_steps - warmup_steps), which runs from 0 to 1")
        n_steps += len(want_all)
    warmups = [w for _, w, _ in cases]
    passed(f'your cosine schedule matches get_scheduler("cosine") at all {n_steps} steps of {len(cases)} schedules '
           f"(warmup {min(warmups)} to {max(warmups)} steps)")


def _loss_candidates(logits, labels) -> dict[str, object]:
    """Masked LM loss, right and in common wrong ways, on the same logits/labels: {name: scalar tensor}.

    >>> import torch
    >>> logits, labels = torch.zeros(1, 3, 4), torch.tensor([[-100, 1, 2]])
    >>> {k: round(float(v), 4) for k, v in _loss_candidates(logits, labels).items()}["reference"]
    1.3863
    """
    import torch
    import torch.nn.functional as F

    logits = logits.detach().float()
    vocab = logits.size(-1)

    def ce(lg, lb):
        per = F.cross_entropy(lg.reshape(-1, vocab), lb.reshape(-1), ignore_index=-100, reduction="none")
        return per.view(lb.shape), (lb != -100)

    out: dict[str, object] = {}
    per, mask = ce(logits[:, :-1], labels[:, 1:])
    n = mask.sum()
    out["reference"] = per.sum() / n.clamp(min=1)
    out["sum"] = per.sum()
    out["masked_in_mean"] = per.sum() / mask.numel()
    rows = mask.sum(1)
    out["mean_of_row_means"] = (per.sum(1) / rows).mean()  # NaN with a fully masked row
    kept = rows > 0
    out["mean_of_row_means_skipping_empty"] = (per.sum(1)[kept] / rows[kept]).mean() if kept.any() else torch.tensor(0.0)
    out["nan_when_empty"] = per.sum() / n  # plain cross_entropy(ignore_index) on an all-masked batch
    per0, mask0 = ce(logits, labels)
    out["no_shift"] = per0.sum() / mask0.sum().clamp(min=1)
    per1, mask1 = ce(logits[:, 1:], labels[:, :-1])
    out["wrong_shift"] = per1.sum() / mask1.sum().clamp(min=1)
    unmasked = labels.clamp(min=0)  # -100 replaced by token 0: the masked positions are trained too
    per2, _ = ce(logits[:, :-1], unmasked[:, 1:])
    out["ignored_nothing"] = per2.mean()
    return out


_LOSS_MISTAKES = (
    ("no_shift", "you did not shift labels: the logits at position t predict token t+1",
     "compare logits[:, :-1] with labels[:, 1:]"),
    ("wrong_shift", "you shifted the wrong way round (logits[:, 1:] against labels[:, :-1])",
     "drop the LAST logit and the FIRST label: logits[:, :-1] vs labels[:, 1:]"),
    ("masked_in_mean", "you averaged over masked tokens too (divided by every position, not just the trained ones)",
     "divide the summed loss by the number of labels != -100 (cross_entropy(..., ignore_index=-100) does this)"),
    ("ignored_nothing", "you trained the masked positions as well (the -100 labels were turned into real tokens)",
     "pass ignore_index=-100 to cross_entropy and leave the labels as they are"),
    ("sum", "you summed the per-token losses instead of averaging them",
     "divide by the number of trained tokens (labels != -100)"),
    ("mean_of_row_means_skipping_empty", "you averaged per-row means: a short reply then weighs as much as a long one",
     "average over all trained tokens of the batch at once, not row by row"),
)


def _scalar(value) -> float:
    import torch

    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise TodoCheckError(f"your loss has shape {tuple(value.shape)}, not a single number. Fix: reduce it to a "
                                 "scalar: the mean over trained tokens")
        return float(value.detach())
    return float(value)


def _diagnose_loss(got: float, candidates: dict[str, object], context: str, rtol: float = 1e-4) -> None:
    """Raise :class:`TodoCheckError` naming the mistake whose loss ``got`` matches (within ``rtol``), else the recipe."""
    import math

    want = float(candidates["reference"])
    if math.isnan(got) and not math.isnan(want):
        if math.isnan(float(candidates["mean_of_row_means"])):
            require(False, f"{context}: your loss is NaN because one row has no trained token and you averaged per-row "
                    "means (0/0 for that row)", "average over all trained tokens of the batch at once")
        require(False, f"{context}: your loss is NaN, expected {want:.6f}",
                "check for a division by a zero token count")
    for key, problem, fix in _LOSS_MISTAKES:
        value = float(candidates[key])
        if math.isfinite(value) and not math.isclose(value, want, rel_tol=2 * rtol, abs_tol=1e-6) \
                and math.isclose(got, value, rel_tol=rtol, abs_tol=1e-6):
            require(False, f"{context}: your loss is {got:.6f}, expected {want:.6f}: {problem}", fix)
    require(False, f"{context}: your loss is {got:.6f}, expected {want:.6f}",
            "shift by one (logits[:, :-1] vs labels[:, 1:]), flatten, cross_entropy with ignore_index=-100, "
            "mean over the trained tokens")


def _toy_batches() -> list[tuple[str, object, object]]:
    """(description, logits, labels) toy cases: unequal trained counts, a fully masked row, an all-masked batch."""
    import torch

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 7, 11, generator=g)
    labels = torch.randint(0, 11, (3, 7), generator=g)
    labels[0, :3] = -100  # prompt of row 0
    labels[1, :6] = -100  # row 1 trains a single token
    labels[2, :] = -100  # row 2 is fully masked (e.g. its reply was truncated away)
    first = torch.randint(0, 11, (3, 7), generator=g)  # labels[:, 0] vs labels[:, -1]: makes a missing shift visible
    unequal = labels.clone()
    unequal[0, 0] = first[0, 0]
    return [
        ("toy batch (3 rows: 4, 1 and 0 trained tokens)", logits, labels),
        ("toy batch with a trained first position", logits, unequal),
        ("toy batch with no trained token at all", logits[:1], torch.full((1, 7), -100)),
    ]


def loss_tolerance(dtype) -> tuple[float, float]:
    """(atol, rtol) for comparing a loss computed from logits of ``dtype`` with TRL's float32 loss.

    float32: 1e-5 each (TRL's fused LM head leaves a few 1e-6 of rounding). bfloat16 / float16: rtol = 2 x the dtype's
    epsilon (1.6e-2 / 2.0e-3): a cross-entropy computed in half precision rounds the log-softmax and the result to
    the dtype, up to about one epsilon relative (measured: 0.98 eps on random 49k-vocab logits).

    >>> import torch
    >>> loss_tolerance(torch.float32), loss_tolerance(torch.bfloat16), loss_tolerance(torch.float16)
    ((1e-05, 1e-05), (1e-05, 0.015625), (1e-05, 0.001953125))
    """
    import torch

    if dtype in (torch.bfloat16, torch.float16):
        return 1e-5, 2 * torch.finfo(dtype).eps
    return 1e-5, 1e-5


@student_code("masked_lm_loss")
def check_masked_lm_loss(masked_lm_loss, logits=None, labels=None, trainer_loss=None, atol: float | None = None,
                         rtol: float | None = None) -> None:
    """Test ``masked_lm_loss(logits, labels)`` on toy tensors, then (if given) against SFTTrainer's loss on a real batch.

    The toy batches are float32, on ``logits.device`` when a real batch is given. The real comparison passes when
    ``|yours - trainer's| <= atol + rtol * |trainer's|`` (torch.isclose's rule), with :func:`loss_tolerance` for the
    logits' dtype unless ``atol`` / ``rtol`` are given; the message states the tolerance used.

    >>> import torch.nn.functional as F
    >>> def good(logits, labels):
    ...     s = F.cross_entropy(logits[:, :-1].flatten(0, 1), labels[:, 1:].flatten(), ignore_index=-100, reduction="sum")
    ...     return s / (labels[:, 1:] != -100).sum().clamp(min=1)
    >>> check_masked_lm_loss(good)
    ✓ masked_lm_loss is right on 3 toy batches (shifted, -100 ignored, mean over trained tokens, 0 when nothing is trained)
    >>> check_masked_lm_loss(lambda lg, lb: F.cross_entropy(lg.flatten(0, 1), lb.flatten(), ignore_index=-100))
    Traceback (most recent call last):
    ...
    labhelpers.checks.TodoCheckError: toy batch (3 rows: 4, 1 and 0 trained tokens): your loss is 2.497338, expected 2.648924: you did not shift labels: the logits at position t predict token t+1. Fix: compare logits[:, :-1] with labels[:, 1:]
    """
    import math

    import torch

    device = logits.device if isinstance(logits, torch.Tensor) else torch.device("cpu")
    for what, lg, lb in _toy_batches():
        lg, lb = lg.to(device), lb.to(device)
        lb_before = lb.clone()
        lg_in = lg.clone().requires_grad_(True)
        try:
            out = masked_lm_loss(lg_in, lb)
        except (IndexError, RuntimeError) as err:
            if "-100" in str(err) or "out of bounds" in str(err) or "Target" in str(err):
                raise TodoCheckError(f"{what}: looking up the -100 labels as token ids failed ({err}). Fix: skip "
                                     "them: cross_entropy(..., ignore_index=-100), or mask labels != -100 before "
                                     "gathering log-probabilities") from err
            raise
        require(torch.equal(lb, lb_before), f"{what}: your function changed the labels tensor in place",
                "work on a copy (labels[:, 1:] is a view: do not assign into it)")
        got = _scalar(out)
        cands = _loss_candidates(lg, lb)
        want = float(cands["reference"])
        if "no trained token" in what:
            require(not math.isnan(got), f"{what}: your loss is NaN (0 trained tokens / 0): one such batch poisons "
                    "every weight through the optimizer (trl #1053)",
                    "divide by the trained-token count clamped to at least 1, e.g. n.clamp(min=1), "
                    "so the loss is 0 as in TRL")
        if not math.isclose(got, want, rel_tol=1e-5, abs_tol=1e-6):
            _diagnose_loss(got, cands, what)
        if "no trained token" not in what:
            require(isinstance(out, torch.Tensor) and out.requires_grad,
                    f"{what}: your loss does not carry a gradient back to the logits",
                    "build it from torch operations on logits (no .item(), .detach() or float())")
    if logits is None:
        passed("masked_lm_loss is right on 3 toy batches (shifted, -100 ignored, mean over trained tokens, "
               "0 when nothing is trained)")
        return
    default_atol, default_rtol = loss_tolerance(logits.dtype)
    atol = default_atol if atol is None else atol
    rtol = default_rtol if rtol is None else rtol
    labels = labels.to(logits.device)
    with torch.no_grad():
        got = _scalar(masked_lm_loss(logits, labels))
    want = _scalar(trainer_loss)
    diff = abs(got - want)
    dtype = str(logits.dtype).removeprefix("torch.")
    tolerance = f"tolerance {atol:.0e} + {rtol:.1e} x |loss| for {dtype} logits"
    if diff > atol + rtol * abs(want):
        cands = _loss_candidates(logits, labels)
        cands["reference"] = torch.tensor(want, device=logits.device)
        _diagnose_loss(got, cands, f"real batch vs SFTTrainer ({tolerance})", rtol=max(rtol, 1e-4))
    n = int((labels[:, 1:] != -100).sum())
    passed(f"masked_lm_loss passes 3 toy batches and equals SFTTrainer's loss on the real batch: "
           f"{got:.6f} vs {want:.6f} (|diff| {diff:.1e}, {tolerance}; {n} trained tokens)")


# ------------------------------------------------------------------------------------ 09 behaviour scores
@student_code("behaviour_scores")
def check_behaviour_scores(behaviour_scores: object) -> None:
    """Run the student's ``behaviour_scores(outputs, hit_limit)`` on toy replies with known answers."""
    good = "Answer: yes\n- a\n- b\n- c\nConfidence: high"
    cases = [
        (([good, "just text"], [False, True]), {"format_rate": 0.5, "hit_limit_rate": 0.5}),
        (([good, good, good, "Answer: x"], [False, False, False, False]), {"format_rate": 0.75, "hit_limit_rate": 0.0}),
    ]
    for (outputs, hit), want in cases:
        got = behaviour_scores(outputs, hit)
        require(isinstance(got, dict) and set(want) <= set(got),
                f"behaviour_scores returned {got!r}", 'return a dict with "format_rate" and "hit_limit_rate"')
        for key, value in want.items():
            require(abs(float(got[key]) - value) < 1e-9,
                    f"{key} is {got[key]!r} for {len(outputs)} outputs, expected {value}",
                    "divide the count by the number of outputs (a fraction, not a percentage)")
    passed("behaviour_scores gives the format and hit-limit shares")


REPLY_LOSS_CHECK_PAIRS = (
    ("Name a colour.", "Blue."),
    ("What is the capital of France?", "Answer: Paris is the capital of France.\n- It is on the Seine.\n"
                                       "- It has about two million inhabitants.\n- It hosts the Louvre.\nConfidence: high"),
)


def _reply_loss_variants(model, tokenizer, prompt: str, reply: str) -> dict[str, float]:
    """The right teacher-forced reply loss and the usual wrong ones, in nats per token (fp32 on the model's device)."""
    import torch
    import torch.nn.functional as F

    from labhelpers.generation import reply_token_span

    full, start, end = reply_token_span(tokenizer, prompt, reply)  # ids[start:end]: the reply and its <|im_end|>
    ids = torch.tensor([full], device=model.device)
    from labhelpers.attention import model_autocast

    with torch.no_grad(), model_autocast(model):
        logits = model(input_ids=ids).logits[0].float()
    nll = F.cross_entropy(logits[:-1], ids[0, 1:], reduction="none")  # nll[t - 1]: token t given tokens < t
    unshifted = F.cross_entropy(logits, ids[0], reduction="none")

    def mean(values) -> float:
        return float(values.mean())

    return {"right": mean(nll[start - 1:end - 1]),
            "prompt tokens included": mean(nll[:end - 1]),
            "<|im_end|> left out": mean(nll[start - 1:end - 2]),
            "newline after <|im_end|> included": mean(nll[start - 1:end]),
            "not shifted": mean(unshifted[start:end]),
            "summed, not averaged": float(nll[start - 1:end - 1].sum())}


_REPLY_LOSS_FIXES = {
    "prompt tokens included": "average only over the reply's tokens: positions from len(prompt ids) on",
    "<|im_end|> left out": "the <|im_end|> that ends the reply is part of it (the model must learn to stop): include it",
    "newline after <|im_end|> included": "stop at the reply's <|im_end|>: the newline after it is the template's",
    "not shifted": "logits[t - 1] predicts token t: compare logits[:-1] with the ids shifted by one (ids[1:])",
    "summed, not averaged": "divide by the number of reply tokens: the loss is per token (nats/token)",
}


@student_code("reply_loss")
def check_reply_loss(reply_loss, model, tokenizer) -> None:
    """The optional harder TODO of 09: ``reply_loss(model, tokenizer, prompt, reply)`` is the teacher-forced mean NLL
    of the reply's tokens and its ``<|im_end|>`` after the chat-templated prompt, as ``labhelpers.generation.
    reply_nll`` computes it; a wrong value is matched against the usual mistakes. Tolerance follows the dtype.
    """
    import torch

    rtol = 1e-4
    for prompt, reply in REPLY_LOSS_CHECK_PAIRS:
        got = reply_loss(model, tokenizer, prompt, reply)  # first: an unfilled TODO is named before anything else
        got = float(got.item() if hasattr(got, "item") else got)
        rtol = 1e-4 if next(model.parameters()).dtype == torch.float32 else 2e-2  # half precision rounds logits
        variants = _reply_loss_variants(model, tokenizer, prompt, reply)
        if math.isclose(got, variants["right"], rel_tol=rtol, abs_tol=1e-5):
            continue
        match = next((name for name, value in variants.items() if name != "right"
                      and math.isclose(got, value, rel_tol=rtol, abs_tol=1e-5)), None)
        reason = (f"that is the value with the {match}" if match and match.endswith(("included", "left out"))
                  else f"that is the value {match}" if match else "it matches none of the usual mistakes")
        raise TodoCheckError(f"the reply {reply[:30]!r} after {prompt!r}: your loss {got:.4f}, expected "
                             f"{variants['right']:.4f} nats/token; {reason}. Fix: "
                             + (_REPLY_LOSS_FIXES[match] if match else "score the reply's tokens and its <|im_end|>, "
                                "each from the logits one position earlier, and average"))
    passed(f"your reply loss equals the teacher-forced reply NLL on {len(REPLY_LOSS_CHECK_PAIRS)} replies "
           f"(within {rtol:g})")


# ----------------------------------------------------------------------------------- 10 preflight clean
def check_preflight_clean(trainer: object) -> object:
    """Run the quick preflight on the student's trainer; fail with every failing finding and its fix."""
    from trl import SFTTrainer

    from labhelpers.sanity import preflight

    require(isinstance(trainer, SFTTrainer), f"good_trainer is a {type(trainer).__name__}", "build an SFTTrainer(...)")
    require(trainer.eval_dataset is not None, "the trainer has no eval split", "pass eval_dataset=eval_rows")
    strategy = getattr(trainer.args.eval_strategy, "value", trainer.args.eval_strategy)
    require(strategy != "no", "evaluation is switched off (eval_strategy='no')",
            'pass eval_strategy="steps" and eval_steps=... so the eval loss is measured during training')
    report = preflight(trainer)
    failures = "\n  - ".join(f"{f.check}: {f.message} (fix: {f.fix})" for f in report.failed)
    require(report.ok, f"the preflight still fails:\n  - {failures}", "change the config as each fix says")
    passed(f"preflight passes ({len(report.warnings)} warning(s) to read below)")
    return report
