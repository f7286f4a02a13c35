"""Peak GPU memory per job: each process records its own torch peak at exit, and a sampler attributes nvidia-smi's
readings to the job whose process tree used them.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from tools.gpu_rehearsal.jobs import Job


# --------------------------------------------------------------------------------------------- GPU memory
_SITECUSTOMIZE = '''"""Written by tools/gpu_rehearsal/: at exit, a process that used CUDA through torch records its peak memory."""
import atexit, json, os, sys


def _lab_rehearsal_peak():
    folder, torch = os.environ.get("LAB_REHEARSAL_PEAK_DIR"), sys.modules.get("torch")
    try:
        if folder and torch is not None and torch.cuda.is_initialized():
            with open(os.path.join(folder, "%d.json" % os.getpid()), "w") as f:
                json.dump({"max_memory_allocated": torch.cuda.max_memory_allocated(),
                           "max_memory_reserved": torch.cuda.max_memory_reserved(), "argv": sys.argv[:3]}, f)
    except Exception:
        pass


atexit.register(_lab_rehearsal_peak)
_here = os.path.dirname(os.path.abspath(__file__))
for _p in sys.path[1:]:  # run the sitecustomize this one shadows, if any
    _f = os.path.join(_p or ".", "sitecustomize.py")
    if os.path.abspath(_p or ".") != _here and os.path.isfile(_f):
        exec(compile(open(_f).read(), _f, "exec"), {"__name__": "sitecustomize", "__file__": _f})
        break
'''


class MemorySampler(threading.Thread):
    """Samples ``nvidia-smi`` every ``interval`` s: the card's memory.used and each compute process's usage.

    ``owner(pid)`` maps a process to the job that launched it, asked at once, while the process still exists.
    """

    def __init__(self, owner: Any = lambda pid: None, interval: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.interval, self.samples, self.error, self.owner = interval, [], "", owner
        self._stop_event = threading.Event()
        self.available = shutil.which("nvidia-smi") is not None

    def _query(self, what: str) -> list[list[str]]:
        out = subprocess.run(["nvidia-smi", f"--query-{what}", "--format=csv,noheader,nounits"], capture_output=True,
                             text=True, timeout=10)
        return [[x.strip() for x in line.split(",")] for line in out.stdout.strip().splitlines() if line.strip()]

    def run(self) -> None:
        while self.available and not self._stop_event.is_set():
            try:
                used = sum(float(r[0]) for r in self._query("gpu=memory.used"))
                procs = {int(r[0]): float(r[1]) for r in self._query("compute-apps=pid,used_memory")
                         if len(r) == 2 and r[0].isdigit() and r[1].replace(".", "").isdigit()}
                self.samples.append((time.monotonic(), used, {pid: (mem, self.owner(pid)) for pid, mem in procs.items()}))
            except Exception as error:  # keep sampling; say what failed once
                self.error = self.error or f"{type(error).__name__}: {error}"
            self._stop_event.wait(self.interval)

    def stop(self) -> None:
        self._stop_event.set()


def _parent(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


class ProcessTree:
    """Which job launched a process: the job's subprocess pid among its ancestors (cached, read from /proc)."""

    def __init__(self) -> None:
        self.owner: dict[int, int | None] = {}

    def root_of(self, pid: int, roots: set[int]) -> int | None:
        if pid not in self.owner:
            chain, p = [], pid
            while p and p not in roots and len(chain) < 64:
                chain.append(p)
                p = _parent(p)
            self.owner[pid] = p if p in roots else None
        return self.owner[pid]


def attribute_memory(jobs: list[Job], sampler: MemorySampler) -> str:
    """Fill ``job.peak`` from the samples; return a note saying how the figures were measured."""
    matched = False
    for job in jobs:
        if job.started is None:
            continue
        end = job.ended or time.monotonic()
        window = [s for s in sampler.samples if job.started <= s[0] <= end]
        if window:
            job.peak["card_used_gib_max"] = round(max(s[1] for s in window) / 1024, 2)
            job.peak["concurrent_note"] = "the whole card while it ran, other jobs included"
        own = [sum(mem for mem, owner in s[2].values() if owner == job.pid) for s in window]
        if any(own):
            matched = True
            job.peak["process_used_gib_max"] = round(max(own) / 1024, 2)
    if not sampler.available:
        return "nvidia-smi not found: only torch.cuda.max_memory_allocated from the kernels (at exit)"
    return ("per-process memory from nvidia-smi --query-compute-apps (kernel processes matched to their notebook)"
            if matched else "nvidia-smi showed no process of ours (PID namespace?): card-wide memory.used only, "
            "shared by concurrent jobs") + "; plus torch.cuda.max_memory_allocated recorded by each kernel at exit"
