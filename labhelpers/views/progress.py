"""The student's own side of the TODOs: the record of the checks (``<run folder>/progress.jsonl``, one JSON line per
check verdict or hint revealed), :func:`hint` (up to three hints per TODO, a nudge first and a near-solution last, from
``labhelpers/checks/hints.json``) and :func:`show_progress`, the table the last cell of every notebook shows. It all
stays in the run folder: nothing is sent anywhere.

A check line: ``{"todo": "04.build_labels", "status": "wrong", "verdict": "<the named mistake, one line>",
"attempt": 2, "hint_tier": 1, "time": "2026-12-08T09:30:00+00:00"}`` (``status`` is pass / wrong / not done,
``verdict`` is "pass" or the mistake, ``hint_tier`` the highest hint revealed so far). A hint line:
``{"todo": ..., "hint": 2, "time": ...}``. The checks write them (``labhelpers.checks.core``), ``hint()`` writes
the hint lines.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

PROGRESS_FILE = "progress.jsonl"
HINTS_FILE = Path(__file__).resolve().parents[1] / "checks" / "hints.json"  # {todo id: [nudge, ..., near-solution]}
MAX_TIERS = 3


def run_folder(namespace: dict[str, Any] | None = None) -> Path | None:
    """The run folder to record in: the notebook's ``RUN`` (``labhelpers.run.folder.run_dir``) when it is an existing
    folder, else ``$LAB_RUN_DIR`` when that exists, else None (record nothing).

    >>> import tempfile; folder = tempfile.mkdtemp(); run_folder({"RUN": Path(folder)}) == Path(folder)
    True
    >>> run_folder({"RUN": "/nowhere/at/all"}) is None or "LAB_RUN_DIR" in os.environ
    True
    """
    chosen = (namespace or {}).get("RUN")
    if isinstance(chosen, (str, os.PathLike)) and Path(chosen).is_dir():
        return Path(chosen)
    env = os.environ.get("LAB_RUN_DIR", "").strip()
    return Path(env).expanduser() if env and Path(env).expanduser().is_dir() else None


def read_records(run: Path | None) -> list[dict[str, Any]]:
    """Every line of ``run``'s progress file (unreadable lines skipped; [] without a file).

    >>> import tempfile; read_records(Path(tempfile.mkdtemp()))
    []
    """
    path = Path(run) / PROGRESS_FILE if run is not None else None
    if path is None or not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut by a disconnect: the others still count
    return records


def hints_used(records: list[dict[str, Any]], todo: str) -> int:
    """The highest hint tier revealed for ``todo`` (0: none).

    >>> hints_used([{"todo": "04.build_labels", "hint": 1}, {"todo": "04.build_labels", "hint": 2}], "04.build_labels")
    2
    """
    return max((r["hint"] for r in records if r.get("todo") == todo and isinstance(r.get("hint"), int)), default=0)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _append(run: Path, entry: dict[str, Any]) -> dict[str, Any]:
    with open(Path(run) / PROGRESS_FILE, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(entry, ensure_ascii=False) + "\n")
    return entry


def record_check(run: Path, todo: str, status: str, verdict: str) -> dict[str, Any]:
    """Append one check verdict (its attempt number and the hint tier used so far are counted here); return it.

    >>> import tempfile; run = Path(tempfile.mkdtemp())
    >>> _ = record_check(run, "08.cosine_schedule", "wrong", "your LR at step 0 is 2e-05. Fix: ramp from 0")
    >>> entry = record_check(run, "08.cosine_schedule", "pass", "pass")
    >>> entry["attempt"], entry["hint_tier"], entry["status"]
    (2, 0, 'pass')
    """
    records = read_records(run)
    attempt = 1 + sum(1 for r in records if r.get("todo") == todo and "status" in r)
    return _append(run, {"todo": todo, "status": status, "verdict": verdict, "attempt": attempt,
                         "hint_tier": hints_used(records, todo), "time": _now()})


def record_hint(run: Path, todo: str, tier: int) -> dict[str, Any]:
    """Append that hint ``tier`` of ``todo`` was revealed; return the entry.

    >>> import tempfile; record_hint(Path(tempfile.mkdtemp()), "04.build_labels", 1)["hint"]
    1
    """
    return _append(run, {"todo": todo, "hint": tier, "time": _now()})


def progress_rows(records: list[dict[str, Any]], todos: list[str]) -> list[dict[str, Any]]:
    """One row per TODO in ``todos``: its latest status and verdict, attempts, hints used and when it first passed.

    >>> rows = progress_rows([{"todo": "01.batch_math", "status": "wrong", "verdict": "x. Fix: y", "attempt": 1,
    ...                        "hint_tier": 0, "time": "t1"},
    ...                       {"todo": "01.batch_math", "status": "pass", "verdict": "pass", "attempt": 2,
    ...                        "hint_tier": 0, "time": "t2"}], ["01.batch_math"])
    >>> rows[0]["status"], rows[0]["attempts"], rows[0]["first passed"]
    ('pass', 2, 't2')
    """
    rows = []
    for todo in todos:
        checks = [r for r in records if r.get("todo") == todo and "status" in r]
        last = checks[-1] if checks else {}
        rows.append({"todo": todo, "status": last.get("status", "not run yet"),
                     "last verdict": last.get("verdict", ""), "attempts": len(checks),
                     "hints used": hints_used(records, todo),
                     "first passed": next((r["time"] for r in checks if r["status"] == "pass"), "")})
    return rows


def _known_todos(notebook: str | None, records: list[dict[str, Any]]) -> list[str]:
    """The series' TODO ids (the hints file lists every one) of ``notebook`` ("04"), plus any recorded others."""
    recorded = [r["todo"] for r in records if isinstance(r.get("todo"), str)]
    ids = list(dict.fromkeys([*load_hints(), *recorded]))
    return [t for t in ids if notebook is None or t.split(".")[0] == str(notebook).zfill(2)]


def show_progress(run: str | os.PathLike | None = None, notebook: str | None = None):
    """The table of your TODOs (``notebook``: "04" for one notebook's, None for the series'): latest status and
    verdict, attempts, hints used, when each first passed. ``run`` is the run folder (default: the calling notebook's
    ``RUN``). Returns a pandas DataFrame (a notebook cell shows it); prints where the record is kept.
    """
    import pandas as pd

    folder = Path(run) if run is not None else run_folder(sys._getframe(1).f_globals)
    records = read_records(folder)
    rows = progress_rows(records, _known_todos(notebook, records))
    where = f"{folder / PROGRESS_FILE}" if folder is not None else "nowhere (no run folder found)"
    print(f"your checks' verdicts, kept in {where} (on this machine only)")
    return pd.DataFrame(rows).set_index("todo") if rows else pd.DataFrame(columns=["status"])


# --- hints --------------------------------------------------------------------------------------------------------


def load_hints(path: Path = HINTS_FILE) -> dict[str, list[str]]:
    """{TODO id: its hints, nudge first}: every TODO of the series, in order.

    >>> hints = load_hints(); "04.build_labels" in hints and 1 <= len(hints["04.build_labels"]) <= MAX_TIERS
    True
    """
    return {todo: list(tiers) for todo, tiers in json.loads(path.read_text(encoding="utf-8")).items()
            if not todo.startswith("_")}


_SHOWN: dict[str, int] = {}  # tiers revealed in this kernel, for when there is no run folder to record them in


def hint(todo: str) -> None:
    """Print the next hint for TODO ``todo`` (its id, e.g. "04.build_labels": the TODO cell's metadata and the
    notebook's first cell name it): the first call gives a nudge, later calls say more, the last is close to the
    answer. The tier is recorded in the run folder's progress file.

    >>> hint("01.batch_math")  # doctest: +ELLIPSIS
    Hint 1 of 3 for 01.batch_math: ...
    >>> hint("04.labels")
    Traceback (most recent call last):
    ...
    ValueError: no TODO '04.labels'; notebook 04's TODOs: 04.build_labels, 04.assistant_mask_from_ids
    """
    hints = load_hints()
    if todo not in hints:
        same = [t for t in hints if t.split(".")[0] == todo.split(".")[0]]
        listed = f"notebook {todo.split('.')[0]}'s TODOs: {', '.join(same)}" if same else f"the TODOs: {', '.join(hints)}"
        raise ValueError(f"no TODO {todo!r}; {listed}")
    run = run_folder(sys._getframe(1).f_globals)
    shown = max(hints_used(read_records(run), todo), _SHOWN.get(todo, 0))
    tiers = hints[todo]
    tier = min(shown + 1, len(tiers))
    _SHOWN[todo] = tier
    if run is not None:
        try:
            record_hint(run, todo, tier)
        except OSError:
            pass  # a read-only run folder: the hint still shows
    last = " (the last one)" if tier == len(tiers) and shown >= tier else ""
    print(f"Hint {tier} of {len(tiers)} for {todo}{last}: {tiers[tier - 1]}")
