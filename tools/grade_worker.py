"""The grader's sandbox: run students' TODO cells against the release's checks, each in a fresh forked process.

Run by tools/grade.py as ``python tools/grade_worker.py SPEC.json RESULTS.jsonl`` with the release first on
PYTHONPATH (its ``labhelpers`` and checks are the ones used) and the network off (``HF_HUB_OFFLINE=1``). It imports
only the standard library until the spec says what to preload, so it runs against any release.

For each notebook of the spec a *zygote* process is forked that runs the notebook's setup code once (its parameters
and setup cells, then the stand-ins for costly cells); for each job (one student's TODO) the zygote forks a child that
gets its own run folder (``$LAB_RUN_DIR``, the working directory and the namespace's ``RUN``), runs the student's cell
and then the check code under a timer, and reports one verdict: ``pass``, ``wrong`` or ``not done`` (the check's own
words) or ``error`` (the cell or the check raised, did not finish, or the process died). A child that outlives its
timeout is killed. The tokenizer is loaded once per worker (``load_tokenizer`` is memoized before any fork).
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import io
import json
import linecache
import os
import select
import shutil
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any

CELL_FILE = "<your TODO cell>"
CHECK_FILE = "<the release's check>"
GRACE_S = 5.0  # how long after its own timer a child may take before it is killed


class GradeTimeout(BaseException):
    """Raised by the timer in a child: a BaseException, so a student's `except Exception` cannot swallow it."""


def _one_line(text: str, limit: int = 300) -> str:
    """`text` on one line, cut at `limit` characters.

    >>> _one_line("a\\n  b", 10), _one_line("x" * 20, 10)
    ('a b', 'xxxxxxxxx…')
    """
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _student_line(err: BaseException) -> str:
    """Where `err` left the student's cell: ' (line 3: `x = y[0]`)', or '' when it did not pass through it."""
    frames = [f for f in traceback.extract_tb(err.__traceback__) if f.filename == CELL_FILE]
    if not frames:
        return ""
    code = (frames[-1].line or "").strip()
    return f" (line {frames[-1].lineno}" + (f": `{code[:80]}`)" if code else ")")


def _is_stub(err: BaseException) -> bool:
    """True for the `NotImplementedError("TODO: ...")` of an unfilled TODO (or a bare one)."""
    return isinstance(err, NotImplementedError) and (not str(err) or str(err).startswith("TODO"))


def _verdict(err: BaseException, stage: str, timeout: float) -> tuple[str, str]:
    """(status, message) for what a job raised at `stage` ("cell" or "check")."""
    try:
        from labhelpers.checks.core import TodoCheckError, verdict_of
    except ImportError:  # a release older than the verdicts: classify by the class name alone
        TodoCheckError, verdict_of = (), None
    said = _one_line(f"{type(err).__name__}: {err}".rstrip(": "))
    if isinstance(err, GradeTimeout):
        what = "your TODO cell" if stage == "cell" else "the check (running your code)"
        return "error", f"no verdict after {timeout:g} s: {what} did not finish (an endless loop?)"
    if TodoCheckError and isinstance(err, TodoCheckError):
        return verdict_of(err)
    if _is_stub(err):
        return "not done", "the TODO is not filled in: its cell still raises NotImplementedError"
    if isinstance(err, SyntaxError) and stage == "cell":
        return "error", f"your TODO cell is not valid Python: {err.msg} (line {err.lineno})"
    if isinstance(err, (SystemExit, KeyboardInterrupt)):
        return "error", f"your code stopped the process ({said})"
    if stage == "cell":
        return "error", f"your TODO cell raised {said}{_student_line(err)}"
    return "error", f"the check stopped on {said}{_student_line(err)}"


def _passed_text(output: str) -> str:
    """The check's success line and the indented notes under it, from what the check printed.

    >>> _passed_text("x\\n✓ fits the run\\n  note: lr is yours\\nmore")
    'fits the run\\n  note: lr is yours'
    """
    lines = output.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("✓")), None)
    if start is None:
        return ""
    end = next((i for i in range(start + 1, len(lines)) if not lines[i][:1].isspace()), len(lines))
    return "\n".join([lines[start][1:].strip(), *lines[start + 1:end]])


def _alarm(_signum: int, _frame: Any) -> None:
    raise GradeTimeout()


def _run_code(source: str, filename: str, namespace: dict[str, Any]) -> None:
    """Execute `source` in `namespace`, its lines registered so tracebacks can quote them."""
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    exec(compile(source, filename, "exec"), namespace)  # noqa: S102  (running the student's code is the point)


def run_job(job: dict[str, Any], namespace: dict[str, Any]) -> dict[str, Any]:
    """The verdict of one job (in the child): run the student's cell, check it defines its names, run the check."""
    stage, captured = "cell", io.StringIO()
    signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, job["timeout"])
    try:
        with contextlib.redirect_stdout(captured), contextlib.redirect_stderr(captured):
            _run_code(job["cell"], CELL_FILE, namespace)
            missing = [name for name in job["defines"] if name not in namespace]
            if missing:
                signal.setitimer(signal.ITIMER_REAL, 0)
                return {"status": "error", "message": f"your TODO cell does not define {', '.join(missing)} (renamed "
                        "or deleted?): the check calls it by that name"}
            stage = "check"
            _run_code(job["check"], CHECK_FILE, namespace)
        signal.setitimer(signal.ITIMER_REAL, 0)
        return {"status": "pass", "message": _one_line(_passed_text(captured.getvalue()) or "the check passed", 1000)}
    except BaseException as err:  # noqa: BLE001  (every way a submission fails becomes its row)
        signal.setitimer(signal.ITIMER_REAL, 0)
        status, message = _verdict(err, stage, job["timeout"])
        return {"status": status, "message": message}
    finally:
        Path(job["log"]).write_text(captured.getvalue(), encoding="utf-8", errors="replace")


def _enter_run_folder(job: dict[str, Any], namespace: dict[str, Any]) -> None:
    """Give the child its own run folder: environment, working directory, and the notebook's RUN / RUN_DIR."""
    run = Path(job["run_dir"])
    run.mkdir(parents=True, exist_ok=True)
    os.environ["LAB_RUN_DIR"] = str(run)
    os.chdir(run)
    for name in ("RUN", "RUN_DIR"):
        if name in namespace:
            namespace[name] = run if name == "RUN" else str(run)


def _child(job: dict[str, Any], namespace: dict[str, Any], write_fd: int) -> None:
    """Body of a job's process: never returns."""
    try:
        log = os.open(job["log"] + ".out", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(log, 1)  # output from C code (torch, tokenizers) goes to the job's log, not the worker's
        os.dup2(log, 2)
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(1)  # no thread pool inherited across fork
        _enter_run_folder(job, namespace)
        result = run_job(job, namespace)
    except BaseException as err:  # noqa: BLE001
        result = {"status": "error", "message": f"the grader failed on this job: {_one_line(repr(err))}"}
    os.write(write_fd, json.dumps(result).encode())
    os._exit(0)


def _wait_for(pid: int, read_fd: int, deadline: float) -> tuple[bytes, str]:
    """(what the child reported, '' or why it has no verdict), killing it at `deadline`."""
    data, why = b"", ""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            os.kill(pid, signal.SIGKILL)
            why = "killed"
            break
        ready, _, _ = select.select([read_fd], [], [], left)
        if ready:
            chunk = os.read(read_fd, 65536)
            if not chunk:
                break
            data += chunk
    os.close(read_fd)
    _, status = os.waitpid(pid, 0)
    if not why and not data:
        why = f"signal {-os.waitstatus_to_exitcode(status)}" if os.WIFSIGNALED(status) else \
            f"exit code {os.waitstatus_to_exitcode(status)}"
    return data, why


def grade_job(job: dict[str, Any], namespace: dict[str, Any]) -> dict[str, Any]:
    """Fork a child for `job` and return its verdict (an error verdict when it timed out or died)."""
    read_fd, write_fd = os.pipe()
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        _child(job, namespace, write_fd)
    os.close(write_fd)
    data, why = _wait_for(pid, read_fd, started + job["timeout"] + GRACE_S)
    if why == "killed":
        result = {"status": "error", "message": f"no verdict after {job['timeout']:g} s: the process was killed "
                  "(an endless loop the timer could not stop?)"}
    elif why:
        result = {"status": "error", "message": f"the process running your code ended without a verdict ({why}): "
                  "does your cell call exit() or crash Python?"}
    else:
        result = json.loads(data)
    return {**result, "key": job["key"], "seconds": round(time.monotonic() - started, 2)}


def _setup(notebook: dict[str, Any]) -> dict[str, Any]:
    """Run the notebook's setup code once in its own run folder; the namespace every job starts from."""
    folder = Path(notebook["setup_dir"])
    folder.mkdir(parents=True, exist_ok=True)
    stored = notebook.get("stored") or {"files": []}
    for name in stored["files"]:  # a finished run's metrics, read back by the setup cell instead of training (07)
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(Path(stored["root"]) / name, folder / name)
    os.environ["LAB_RUN_DIR"] = str(folder)
    os.chdir(folder)
    namespace: dict[str, Any] = {"__name__": "__main__"}
    signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, notebook["setup_timeout"])
    with open(folder / "setup.log", "w", encoding="utf-8") as log, contextlib.redirect_stdout(log), \
            contextlib.redirect_stderr(log):
        _run_code(notebook["setup"], "<the release's setup cells>", namespace)
    signal.setitimer(signal.ITIMER_REAL, 0)
    return namespace


def _zygote(notebook: dict[str, Any], results: Path) -> None:
    """Body of a notebook's zygote: set up, grade every job, append the verdicts to `results`; never returns."""
    with open(results, "a", encoding="utf-8") as out:
        try:
            started = time.monotonic()
            namespace = _setup(notebook)
            print(f"{notebook['notebook']}: setup cells and stand-ins ran in {time.monotonic() - started:.1f} s",
                  flush=True)
        except BaseException as err:  # noqa: BLE001  (the instructor's setup failed: every job says so)
            said = _one_line(f"{type(err).__name__}: {err}")
            for job in notebook["jobs"]:
                out.write(json.dumps({"key": job["key"], "status": "error", "message": f"the grader could not run "
                                      f"the notebook's setup cells ({said}); see {notebook['setup_dir']}/setup.log"})
                          + "\n")
            os._exit(1)
        for job in notebook["jobs"]:
            out.write(json.dumps(grade_job(job, namespace)) + "\n")
            out.flush()
    os._exit(0)


def _share_loads(warm: bool) -> None:
    """Load the tokenizer once for every process forked after this (a grader speed-up: students never change it);
    with `warm`, load the default one now, before the first fork."""
    import inspect

    try:
        models = importlib.import_module("labhelpers.model.loading")
    except ImportError:  # a release made before labhelpers was split into floors
        models = importlib.import_module("labhelpers.models")
    original = models.load_tokenizer
    default = inspect.signature(original).parameters["model_id"].default
    loaded: dict[Any, Any] = {}

    @functools.wraps(original)
    def load_tokenizer(model_id: str = default, *args: Any, **kwargs: Any) -> Any:
        key = (model_id, args, tuple(sorted(kwargs.items())))
        if key not in loaded:
            loaded[key] = original(model_id, *args, **kwargs)
        return loaded[key]

    models.load_tokenizer = load_tokenizer
    if warm:
        load_tokenizer()


def main(argv: list[str]) -> int:
    """Grade every notebook of the spec (see the module doc); returns 0."""
    spec = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    results = Path(argv[1]).resolve()
    started = time.monotonic()
    for statement in spec.get("preload", []):
        try:
            exec(statement, {})  # noqa: S102  (the release's own import lines; a failing one fails its setup later)
        except Exception:  # noqa: BLE001
            print(f"worker: could not preload {statement!r}", flush=True)
    _share_loads(spec.get("warm_tokenizer", False))
    print(f"worker: preloaded {len(spec.get('preload', []))} imports (tokenizer: {spec.get('warm_tokenizer')}) in "
          f"{time.monotonic() - started:.1f} s", flush=True)
    for notebook in spec["notebooks"]:
        pid = os.fork()
        if pid == 0:
            _zygote(notebook, results)
        os.waitpid(pid, 0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
