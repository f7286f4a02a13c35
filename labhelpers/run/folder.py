"""The run folder: one place per profile where every notebook saves and finds its artifacts.

Layout (all optional; each notebook recomputes what is missing)::

    <run>/baseline/generations.json   base-model answers (notebook 02), reused for before/after
    <run>/sft/                        SFTTrainer checkpoints and the final model (notebook 06)
    <run>/plots/*.png                 every figure, also shown inline
    <run>/metrics/*.json              numbers each notebook measured (losses, scores, timings)
    <run>/executed/*.ipynb            executed notebooks when run headless (``./lab.sh run``)

A result that is costly and exactly repeatable (a finished training log, greedy replies, the protocol's verdict, a
measured peak) is stored beside its inputs with :func:`reuse_or_compute`: a re-run cell, another notebook or CI's
second pass reads it back when the inputs are the same, and computes it again when anything changed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import time
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

T = TypeVar("T")


def project_root(start: Path | None = None) -> Path | None:
    """The sft-lab checkout containing ``start`` (default: cwd), or None outside one (e.g. in Colab).

    >>> project_root(Path("/")) is None
    True
    >>> project_root(Path(__file__).parent) == Path(__file__).resolve().parents[2]  # this checkout
    True
    """
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "labhelpers" / "__init__.py").is_file() and (folder / "solutions").is_dir():
            return folder
    return None


def dataset_slug(dataset: str | None) -> str:
    """The run-folder suffix for ``dataset``: '' for the lesson's bundled data, else a short path-safe name.

    >>> dataset_slug(None), dataset_slug("sft-lab/house-format"), dataset_slug("HuggingFaceH4/no_robots")
    ('', '', 'huggingfaceh4-no-robots')
    >>> dataset_slug("/data/my chats.jsonl")
    'my-chats'
    """
    from labhelpers.data.datasets import LAB_DATASET

    if dataset in (None, LAB_DATASET):
        return ""
    name = Path(dataset).stem if Path(dataset).suffix else str(dataset)
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:60]


def default_run_dir(profile: str, override: str | os.PathLike | None = None, dataset: str | None = None) -> Path:
    """Path of the run folder for ``profile`` (not created): ``override``, else ``$LAB_RUN_DIR``, else
    ``$LAB_RUN_ROOT/<profile>`` (set by the Colab install cell for Google Drive), else
    ``<checkout>/runs/<profile>`` (``./sft-lab-runs/<profile>`` outside a checkout). Another ``dataset`` than the
    lesson's gets its own folder, ``<profile>-<dataset>``, so its runs never mix with the lesson's.

    >>> default_run_dir("ci", "/tmp/sft-doc-run").as_posix()
    '/tmp/sft-doc-run'
    """
    chosen = override or os.environ.get("LAB_RUN_DIR")
    if chosen:
        return Path(chosen).expanduser()
    name = "-".join(filter(None, (profile, dataset_slug(dataset))))
    if os.environ.get("LAB_RUN_ROOT"):
        return Path(os.environ["LAB_RUN_ROOT"]).expanduser() / name
    root = project_root()
    return root / "runs" / name if root else Path.cwd() / "sft-lab-runs" / name


def checkpoint_dir(run: Path) -> Path:
    """Where a run's training checkpoints go: ``$LAB_CHECKPOINT_ROOT/<run folder name>/sft`` when set (the Colab install
    cell sets it to the runtime's disk when the run folder is on Google Drive: checkpoints are ~1.6 GB each with
    optimizer state and rotated, and files deleted from Drive keep counting against its quota from the trash), else
    ``<run>/sft``. The final model (``<run>/sft/final``) and metrics stay in the run folder, where notebooks share them.

    >>> checkpoint_dir(Path("/tmp/runs/ci")).parts[-2:]
    ('ci', 'sft')
    """
    root = os.environ.get("LAB_CHECKPOINT_ROOT", "").strip()
    return Path(root).expanduser() / run.name / "sft" if root else run / "sft"


def experiment_dir(checkpoints: Path, **changes: Any) -> Path:
    """The checkpoint folder of a run whose settings a student changed (``None`` values: unchanged), kept apart from
    the recipe's run: ``sft`` stays the recipe's, ``sft-learning_rate0.0001-max_length256`` holds that experiment, so
    resuming never mixes two configurations and the recipe's checkpoints are never refused or overwritten.

    >>> experiment_dir(Path("runs/ci/sft"), learning_rate=None).name, experiment_dir(Path("runs/ci/sft"), learning_rate=1e-4).name
    ('sft', 'sft-learning_rate0.0001')
    """
    named = [f"{key}{value:g}" if isinstance(value, float) else f"{key}{value}"
             for key, value in sorted(changes.items()) if value is not None]
    return checkpoints.with_name("-".join([checkpoints.name, *named])) if named else checkpoints


DATASET_FILE = "dataset.txt"  # which dataset a run folder's results come from


def run_dir(profile: str, override: str | os.PathLike | None = None, dataset: str | None = None) -> Path:
    """The run folder (see :func:`default_run_dir`), created if missing; with ``dataset``, it is recorded there, and a
    folder already holding another dataset's results is refused (its trained models would pass for this data's).

    >>> run_dir("ci", "/tmp/sft-doc-run").is_dir()
    True
    """
    folder = default_run_dir(profile, override, dataset)
    folder.mkdir(parents=True, exist_ok=True)
    if dataset is not None:
        marker = folder / DATASET_FILE
        recorded = marker.read_text().strip() if marker.is_file() else None
        if recorded is not None and recorded != str(dataset):
            raise ValueError(f"the run folder {folder} holds results trained on {recorded!r}, not on {dataset!r}: "
                             "its fine-tuned model and metrics would be read as this dataset's. Fix: set RUN_DIR to "
                             "another folder (or leave it None: each dataset gets its own runs/<profile>-<dataset>), "
                             "or delete the folder")
        marker.write_text(f"{dataset}\n")
    return folder


def save_metrics(run: Path, name: str, figures: dict[str, Any]) -> Path:
    """Write ``figures`` to ``<run>/metrics/<name>.json`` (replacing an earlier run's) and return the path.

    >>> import tempfile; p = save_metrics(Path(tempfile.mkdtemp()), "demo", {"loss": 1.5}); p.name
    'demo.json'
    """
    path = run / "metrics" / f"{name}.json"
    write_json(path, figures, indent=2, sort_keys=True)
    return path


def write_json(path: Path, value: Any, **dumps: Any) -> None:
    """Write ``value`` as JSON through a temporary file of this process, so neither a disconnect mid-write nor a reader
    at the same moment (another notebook, a test) ever sees half a file.

    >>> import tempfile; p = Path(tempfile.mkdtemp()) / "a" / "b.json"; write_json(p, {"x": 1})
    >>> json.loads(p.read_text())
    {'x': 1}
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f"{path.suffix}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(value, default=str, **dumps) + "\n")
    tmp.replace(path)


def load_metrics(run: Path, name: str) -> dict[str, Any] | None:
    """The figures saved under ``name`` by an earlier notebook, or None when that notebook has not run.

    >>> import tempfile; run = Path(tempfile.mkdtemp()); load_metrics(run, "x") is None
    True
    """
    path = run / "metrics" / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


_HELD: dict[Path, int] = {}  # the locks this process holds, and how deep: a nested held_alone of the same lock passes


@contextlib.contextmanager
def held_alone(lock: Path, what: str) -> Iterator[bool]:
    """Run the block while no other process holds ``lock`` (a lock file); when one does (another notebook of this run
    folder doing ``what`` right now), say so and wait for it. Yields whether it waited. The lock goes with its process,
    so a crashed or restarted kernel never leaves it behind; this process may nest it. Where the file system has no
    locks (some network mounts, Windows), the block runs unlocked.

    >>> import tempfile; lock = Path(tempfile.mkdtemp()) / "demo.lock"
    >>> with held_alone(lock, "the demo") as waited, held_alone(lock, "the demo, nested") as again:
    ...     waited, again
    (False, False)
    """
    key = lock.resolve()
    try:
        import fcntl
    except ImportError:  # Windows: no flock
        fcntl = None
    if fcntl is None or key in _HELD:
        _HELD[key] = _HELD.get(key, 0) + 1
        try:
            yield False
        finally:
            _HELD[key] -= 1
            if not _HELD[key]:
                del _HELD[key]
        return
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a+") as handle:
        waited = False
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            print(f"waiting: {holder} is doing {what} ({lock}); this cell goes on when it is done", flush=True)
            start = time.monotonic()
            fcntl.flock(handle, fcntl.LOCK_EX)
            print(f"waited {time.monotonic() - start:.0f} s for it", flush=True)
            waited = True
        except OSError:  # no locks on this file system
            handle = None
        if handle is not None:
            handle.seek(0)
            handle.truncate()
            handle.write(f"process {os.getpid()} (since {time.strftime('%H:%M:%S')})")
            handle.flush()
        _HELD[key] = 1
        try:
            yield waited
        finally:
            del _HELD[key]
            if handle is not None:
                fcntl.flock(handle, fcntl.LOCK_UN)


def content_key(value: Any) -> str:
    """A short stable hash of JSON-able content (rows, prompts): what a stored result's key holds instead of the data.

    >>> content_key([{"a": 1}]) == content_key([{"a": 1}]), content_key([1]) == content_key([2])
    (True, False)
    """
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


def reuse_or_compute(path: Path, key: dict[str, Any], compute: Callable[[], T], what: str = "the result",
                     encode: Callable[[T], Any] = lambda x: x, decode: Callable[[Any], T] = lambda x: x) -> T:
    """``compute()``'s result, stored at ``path`` with ``key``; a later call with the same key reads it back instead.

    ``key`` names every input that changes the result (settings, a content hash of the rows, a weights
    fingerprint); any difference computes again and replaces the stored copy. ``encode``/``decode`` turn the result
    into JSON and back. Delete the file to force a new computation.

    >>> import tempfile; path = Path(tempfile.mkdtemp()) / "r.json"; calls = []
    >>> def work(): calls.append(1); return {"loss": 2.0}
    >>> first = reuse_or_compute(path, {"lr": 1e-3}, work)
    >>> again = reuse_or_compute(path, {"lr": 1e-3}, work)  # doctest: +ELLIPSIS
    reused the result from .../r.json (same inputs; delete the file to compute it again)
    >>> other = reuse_or_compute(path, {"lr": 2e-3}, work)
    >>> again == first, len(calls)
    (True, 2)
    """
    key = json.loads(json.dumps(key, sort_keys=True, default=str))
    if path.is_file():
        try:
            stored = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            stored = {}  # a half-written file (a disconnect mid-write) is recomputed, not trusted
        if stored.get("key") == key:
            print(f"reused {what} from {path} (same inputs; delete the file to compute it again)")
            return decode(stored["value"])
    result = compute()
    write_json(path, {"key": key, "value": encode(result)})
    return result
