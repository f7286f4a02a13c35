"""The machinery every lesson's TODO checks share: the error a check raises (:class:`TodoCheckError`), its success
line (:func:`passed`), :func:`require`, the :func:`student_code` decorator that names an unfilled TODO before any
diagnosis, :func:`call_student` (an error raised inside the student's code becomes one named failure with its line and
a fix), and the :func:`require_todo` guard the student copies call in cells that depend on a TODO. In Jupyter every
:class:`TodoCheckError` shows as its message alone (the mistake and its fix), without a traceback.

The checks themselves live one module per notebook next to this one (``nb05_packing.py`` holds notebook 05's).

Every TODO has a stable id, :func:`todo_id`: the notebook's number and the name its check judges
(``check_build_labels`` in notebook 04 judges ``04.build_labels``). Each verdict a check reaches in a notebook (its
:func:`passed` line, or the :class:`TodoCheckError` Jupyter shows) is appended to the run folder's progress file
(:mod:`labhelpers.views.progress`) without changing what the check prints; nothing is recorded when no run folder is
found, and recording never fails a check.
"""

from __future__ import annotations

import re


class TodoCheckError(AssertionError):
    """A TODO cell's result is wrong; the message names what is wrong and the fix. Jupyter shows only the message
    (no traceback: the lines inside the check would say nothing about the student's code).

    >>> TodoCheckError("your labels train the user turn. Fix: set them to -100")._render_traceback_()
    ['TodoCheckError: your labels train the user turn. Fix: set them to -100']
    """

    # Students see this name in tracebacks (and the doctests show it): the path they import it from, not this module's.
    __module__ = "labhelpers.checks"

    def _render_traceback_(self) -> list[str]:  # IPython shows these lines instead of the traceback
        if not getattr(self, "_recorded", False):  # shown once per failure: record it once (a %tb shows it again)
            self._recorded = True
            _record_verdict(_traceback_frames(self.__traceback__), *verdict_of(self))
        return [f"{type(self).__name__}: {self}"]


def passed(message: str) -> None:
    """Print a check's success line (and record the pass in the run folder's progress file, see the module doc).

    >>> passed("labels mask the prompt")
    ✓ labels mask the prompt
    """
    print(f"✓ {message}")
    _record_verdict(_stack_frames(), "pass", "pass")


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


def _student_line(err: BaseException) -> str:
    """Where ``err`` left the student's own code: ``" (your line 3: `x = y[0]`)"``, or ``""`` when no frame of the
    traceback is the student's (every frame in a library, in ``labhelpers`` or in Python itself)."""
    import os
    import sysconfig
    import traceback

    own = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # labhelpers/
    libraries = {os.path.abspath(p) for p in (sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["purelib"],
                                              sysconfig.get_paths()["platlib"])}
    line = ""
    for frame in traceback.extract_tb(err.__traceback__):
        path = os.path.abspath(frame.filename)
        if (path.startswith(own + os.sep) or any(path.startswith(lib + os.sep) for lib in libraries)
                or "site-packages" in path or "dist-packages" in path):
            continue
        code = (frame.line or "").strip()
        line = f" (your line {frame.lineno}" + (f": `{code[:100]}`)" if code else ")")
    return line


def call_student(fn, *args, name: str, hints: tuple[tuple[str, str], ...] = (), **kwargs):
    """``fn(*args, **kwargs)``, with any error it raises turned into one :class:`TodoCheckError` that names the call,
    the error, the student's line and a fix: the first of ``hints`` (substring of ``"Type: message"``, fix) that
    matches, else "run the call in a cell of its own". A :class:`TodoCheckError` (an unfilled TODO) passes through.

    >>> def first_word(text):
    ...     return text.split()[0]
    >>> call_student(first_word, "", name="first_word", hints=(("IndexError", "return '' for an empty text"),))
    Traceback (most recent call last):
    ...
    labhelpers.checks.TodoCheckError: first_word raised IndexError: list index out of range (your line 2: `return text.split()[0]`). Fix: return '' for an empty text
    """
    try:
        return fn(*args, **kwargs)
    except TodoCheckError:
        raise
    except Exception as err:  # noqa: BLE001  (whatever the student's code raises is named, not shown as a traceback)
        said = f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}".rstrip(": ")
        fix = next((fix for pattern, fix in hints if pattern in f"{type(err).__name__}: {err}"),
                   f"run {name}(...) in a cell of its own to see the whole traceback, fix that line, then this check")
        raise TodoCheckError(f"{name} raised {said[:300]}{_student_line(err)}. Fix: {fix}") from None


class TodoNotDoneError(TodoCheckError):
    """A cell that needs a TODO ran before the TODO was done; shown as one line in Jupyter (no traceback), as every
    :class:`TodoCheckError`."""

    __module__ = "labhelpers.checks"  # as for TodoCheckError: the public path in tracebacks


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


# --- TODO ids and verdicts: what the progress file (labhelpers.views.progress) and the grader (tools/grade.py) record ------

_CHECK_MODULE = re.compile(r"^labhelpers\.checks\.nb(\d+)_")


def todo_id(notebook: str, judged: str) -> str:
    """The stable id of a TODO: the notebook's number (from its file name or its checks module) and the name the TODO's
    check judges (the check function's name without ``check_``), e.g. ``04.build_labels``.

    >>> todo_id("04_loss_masking", "check_build_labels"), todo_id("solutions/06_sft_trainer.ipynb", "config")
    ('04.build_labels', '06.config')
    >>> todo_id("labhelpers.checks.nb06_sft_trainer", "check_sft_config")
    '06.sft_config'
    """
    stem = notebook.rsplit("/", 1)[-1].rsplit(".", 1)[0] if notebook.endswith(".ipynb") else notebook
    number = _CHECK_MODULE.match(stem) or re.match(r"^(\d+)", stem)
    return f"{number.group(1) if number else stem}.{judged.removeprefix('check_')}"


def one_line(message: str, limit: int = 300) -> str:
    """``message`` on one line (its lines joined, spaces collapsed), cut at ``limit`` characters.

    >>> one_line("your SFTConfig differs:\\n  - bf16 is True\\n  - packing is True. Fix: change them")
    'your SFTConfig differs: - bf16 is True - packing is True. Fix: change them'
    >>> len(one_line("x" * 500, limit=40))
    40
    """
    text = " ".join(str(message).split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def verdict_of(err: BaseException) -> tuple[str, str]:
    """(status, the named mistake on one line) for what a check raised: "not done" for an unfilled TODO (or a cell
    run before it), "wrong" for any other :class:`TodoCheckError`.

    >>> verdict_of(TodoCheckError("your labels train the user turn. Fix: set them to -100"))
    ('wrong', 'your labels train the user turn. Fix: set them to -100')
    >>> verdict_of(TodoCheckError(f"build_labels is {NOT_IMPLEMENTED}. Fix: ..."))[0]
    'not done'
    """
    unfilled = isinstance(err, TodoNotDoneError) or NOT_IMPLEMENTED in str(err)
    return ("not done" if unfilled else "wrong"), one_line(str(err), limit=1000)


def _check_todo(frame) -> str | None:
    """The TODO id a frame judges when it runs a ``check_*`` function of a ``labhelpers.checks.nbNN_*`` module."""
    module = frame.f_globals.get("__name__", "")
    if frame.f_code.co_name.startswith("check_") and _CHECK_MODULE.match(module):
        return todo_id(module, frame.f_code.co_name)
    return None


def _stack_frames() -> list:
    """The calling frames, outermost first."""
    import sys

    frames, frame = [], sys._getframe(1)
    while frame is not None:
        frames.append(frame)
        frame = frame.f_back
    return frames[::-1]


def _traceback_frames(tb) -> list:
    """The frames of a traceback, outermost first."""
    frames = []
    while tb is not None:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    return frames


def _record_verdict(frames: list, status: str, line: str) -> None:
    """Append the verdict of the outermost check among ``frames`` to the progress file of the notebook that called it
    (its ``RUN``, else ``$LAB_RUN_DIR``); no check among them, no run folder or any error: nothing happens."""
    try:
        check = next((f for f in frames if _check_todo(f)), None)
        if check is None:
            return
        caller = check.f_back
        while caller is not None and caller.f_globals.get("__name__", "").startswith("labhelpers"):
            caller = caller.f_back  # a wrapper (student_code) or a check calling another one
        from labhelpers.views import progress

        run = progress.run_folder(caller.f_globals if caller is not None else None)
        if run is not None:
            progress.record_check(run, _check_todo(check), status, line)
    except Exception:  # noqa: BLE001  (the student's progress is a courtesy: it never breaks a check)
        return
