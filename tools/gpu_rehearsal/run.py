"""Running the rehearsal: jobs in parallel under a deadline, the GPU check and ``pytest -m gpu`` beside them, one report.
"""

from __future__ import annotations

import atexit
import datetime
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

from tools.gpu_rehearsal.common import PROFILE, RECIPES, ROOT
from tools.gpu_rehearsal.wheels import install_wheels
from tools.gpu_rehearsal.model import build_random_model, real_model_path
from tools.gpu_rehearsal.jobs import AFTER, DEFAULT_ESTIMATE_S, DEPENDS, ESTIMATE_OTHER_S, ESTIMATE_S, Job, plan_jobs, steps_caps
from tools.gpu_rehearsal.memory import MemorySampler, ProcessTree, _SITECUSTOMIZE, attribute_memory


# --------------------------------------------------------------------------------------------- running
class Log:
    """Print and append to the log file."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.file = path.open("a", encoding="utf-8")

    def __call__(self, text: str) -> None:
        text = text.rstrip()
        if text:
            print(text, flush=True)
            self.file.write(text + "\n")
            self.file.flush()


def _tail(path: Path, n: int = 3000) -> str:
    return path.read_text(errors="replace")[-n:] if path.is_file() else ""


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _base_env(work: Path) -> dict[str, str]:
    site = work / "site"
    site.mkdir(parents=True, exist_ok=True)
    (site / "sitecustomize.py").write_text(_SITECUSTOMIZE)
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               MPLBACKEND="Agg", TOKENIZERS_PARALLELISM="false", PYTHONUNBUFFERED="1",
               PYTHONPATH=os.pathsep.join([str(site), str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    env.pop("LAB_RUN_DIR", None)
    return env


def run_jobs(jobs: list[Job], work: Path, deadline: float, n_parallel: int, log: Log, on_change: Any) -> None:
    """Run the jobs, ``n_parallel`` at a time, dependencies first; skip what would start after ``deadline``."""
    env = _base_env(work)
    running: dict[int, tuple[Job, subprocess.Popen, Path]] = {}
    by_key = {(j.recipe, j.prefix): j for j in jobs}
    needed = {d for ds in [*DEPENDS.values(), *AFTER.values()] for d in ds}  # start what others wait for first
    order = sorted(jobs, key=lambda j: -ESTIMATE_S.get(j.prefix, DEFAULT_ESTIMATE_S) - 1000 * (j.prefix in needed))
    try:
        while any(j.status in ("pending", "running") for j in jobs):
            for job in order:
                if job.status != "pending" or len(running) >= n_parallel:
                    continue
                deps = [by_key.get((job.recipe, d)) for d in DEPENDS.get(job.prefix, ())]
                if any(d is not None and d.status in ("failed", "timeout", "skipped") for d in deps):
                    job.status, job.error = "skipped", (f"needs {', '.join(d.notebook.stem for d in deps if d)}, which "
                                                        "did not finish (it would train the uncapped reference run)")
                    log(f"[{job.name}] skipped: {job.error}")
                    continue
                if any(d is not None and d.status != "ok" for d in deps):
                    continue
                if any(a is not None and a.status in ("pending", "running")
                       for a in (by_key.get((job.recipe, p)) for p in AFTER.get(job.prefix, ()))):
                    continue
                if time.monotonic() + ESTIMATE_S.get(job.prefix, DEFAULT_ESTIMATE_S) > deadline:
                    job.status, job.error = "skipped", "the rehearsal's time budget would run out"
                    log(f"[{job.name}] skipped: {job.error}")
                    continue
                peaks = work / "peaks" / job.recipe / job.prefix
                peaks.mkdir(parents=True, exist_ok=True)
                out = work / "runs" / job.recipe / "executed" / job.notebook.name
                out.parent.mkdir(parents=True, exist_ok=True)
                logfile = work / "logs" / f"{job.recipe}_{job.notebook.stem}.log"
                logfile.parent.mkdir(parents=True, exist_ok=True)
                cmd = [sys.executable, "-m", "tools.gpu_rehearsal", "--execute-one", str(job.notebook), str(out),
                       json.dumps(job.parameters)]
                job_env = {**env, "LAB_FORCE_HARDWARE": job.recipe, "LAB_PROFILE": str(job.parameters["PROFILE"]),
                           "LAB_REHEARSAL_PEAK_DIR": str(peaks)}
                with logfile.open("w") as handle:
                    proc = subprocess.Popen(cmd, cwd=ROOT, env=job_env, stdout=handle, stderr=subprocess.STDOUT,
                                            start_new_session=True)
                job.status, job.started, job.pid = "running", time.monotonic(), proc.pid
                running[proc.pid] = (job, proc, logfile)
                log(f"[{job.name}] started: {' '.join(f'{k}={v}' for k, v in job.parameters.items() if k not in ('RUN_DIR', 'MODEL_ID'))}")
                on_change()
            for pid, (job, proc, logfile) in list(running.items()):
                code = proc.poll()
                over = time.monotonic() > deadline + 30
                if code is None and not over:
                    continue
                if code is None:
                    _kill(proc)
                    proc.wait()
                    job.status, job.error = "timeout", "killed: the rehearsal's time budget ran out"
                else:
                    _kill(proc)  # a kernel left behind would hold GPU memory
                    job.status = "ok" if code == 0 else "failed"
                    if code != 0:
                        lines = [ln for ln in _tail(logfile).splitlines() if ln.strip()]
                        job.error = next((ln for ln in reversed(lines) if ln.startswith("FAILED")), lines[-1] if lines else f"exit {code}")
                job.ended = time.monotonic()
                job.seconds = round(job.ended - job.started, 1)
                job.peak.update(_torch_peak(work / "peaks" / job.recipe / job.prefix))
                del running[pid]
                log(f"[{job.name}] {job.status} in {job.seconds:.0f} s" + (f": {job.error}" if job.error else ""))
                if job.status != "ok":
                    log(_tail(logfile, 2500))
                on_change()
            time.sleep(0.5)
    finally:
        for job, proc, _ in running.values():
            _kill(proc)


def _torch_peak(folder: Path) -> dict[str, Any]:
    peaks = [json.loads(p.read_text()) for p in folder.glob("*.json")] if folder.is_dir() else []
    if not peaks:
        return {}
    return {"torch_max_allocated_gib": round(max(p["max_memory_allocated"] for p in peaks) / 2**30, 2),
            "torch_max_reserved_gib": round(max(p["max_memory_reserved"] for p in peaks) / 2**30, 2)}


def failure_summary(text: str) -> str:
    r"""The failing cell and the exception's lines from a papermill error's text (ANSI colours removed).

    >>> failure_summary('Exception encountered at "In [14]":\n\x1b[31mTraceback\x1b[0m ...\n'
    ...                 'TodoCheckError: the preflight still fails:\n  - loss_at_init: bad')
    'In [14]: TodoCheckError: the preflight still fails: / - loss_at_init: bad'
    """
    import re

    lines = [ln.rstrip() for ln in re.sub(r"\x1b\[[0-9;]*m", "", text).splitlines() if ln.strip()]
    cell = next((re.sub(r'.*Exception encountered at "?([^"]*)"?:?', r"\1", ln) for ln in lines
                 if "Exception encountered at" in ln), "")
    start = max((i for i, ln in enumerate(lines) if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b", ln)),
                default=len(lines) - 1)
    message = " / ".join(ln.strip() for ln in lines[start:start + 4]) if lines else "no error text"
    return f"{cell}: {message}" if cell else message


def execute_one(notebook: str, out: str, parameters: str) -> int:
    """Child process of a job: execute one notebook with tools.series.execute; print where it failed."""
    from tools.series import execute

    try:
        seconds = execute(Path(notebook), Path(out), json.loads(parameters))
    except Exception as error:  # papermill's error names the cell; keep that and the exception's own lines
        print(f"FAILED {Path(notebook).name}: {failure_summary(str(error))}"[:800], flush=True)
        return 1
    print(f"OK {Path(notebook).name} in {seconds:.1f} s")
    return 0


def run_step(cmd: list[str], log: Log, timeout: float, env: dict[str, str], name: str) -> dict[str, Any]:
    """Run one command to completion (killed after ``timeout`` s) with its output in the log."""
    start = time.perf_counter()
    log(f"$ {' '.join(cmd)}")
    try:
        done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=max(1.0, timeout))
        code, output = done.returncode, done.stdout + done.stderr
    except subprocess.TimeoutExpired as error:
        code, output = None, f"{error.stdout or ''}{error.stderr or ''}"
        output = output.decode(errors="replace") if isinstance(output, bytes) else output
    log(output[-6000:])
    return {"name": name, "exit_code": code, "seconds": round(time.perf_counter() - start, 1),
            "status": "timeout" if code is None else "ok" if code == 0 else "failed"}


def device_facts() -> dict[str, Any]:
    import torch

    facts = {"torch": torch.__version__, "cuda": torch.version.cuda, "python": sys.version.split()[0]}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        facts.update(name=torch.cuda.get_device_name(0), capability=list(torch.cuda.get_device_capability(0)),
                     memory_gib=round(props.total_memory / 2**30, 1), cores=os.cpu_count())
    return facts


def summary_table(jobs: list[Job]) -> str:
    """The per-notebook table printed at the end."""
    rows = [("recipe", "notebook", "status", "s", "torch peak GiB", "process GiB", "card GiB", "note")]
    for job in jobs:
        p = job.peak
        rows.append((job.recipe, job.notebook.stem, job.status, "" if job.seconds is None else f"{job.seconds:.0f}",
                     str(p.get("torch_max_allocated_gib", "")), str(p.get("process_used_gib_max", "")),
                     str(p.get("card_used_gib_max", "")), job.error[:70]))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(" | ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


KNOWN_CAUSES = {  # a failure's text -> what it means with random weights (not a bug of the code under test)
    "loss_at_init": "expected with RANDOM weights until labhelpers/sanity/preflight.py's loss_at_init honours "
                    "labhelpers.model.loading.has_random_weights (see the rehearsal's README section)",
}


def rehearse(out: Path, steps: int, n_parallel: int, budget_s: float, wheels: Path, keep: bool) -> int:
    """The full rehearsal on a CUDA machine; 0 when every notebook ran to its end."""
    t0 = time.monotonic()
    deadline = t0 + budget_s - ESTIMATE_OTHER_S["archive"]
    out.mkdir(parents=True, exist_ok=True)
    log = Log(out / "gpu_rehearsal.log")
    work = Path(tempfile.mkdtemp(prefix="gpu-rehearsal-"))
    if not keep:
        atexit.register(shutil.rmtree, work, True)
    report: dict[str, Any] = {
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(["python -m tools.gpu_rehearsal"] + sys.argv[1:]), "profile": PROFILE, "recipes": RECIPES,
        "caps": {"steps": steps, "per_notebook": steps_caps(steps), "parallel_jobs": n_parallel,
                 "budget_s": budget_s, "other": "every notebook also gets PROFILE, RUN_DIR and MODEL_ID"},
        "work_dir": str(work),
    }
    jobs: list[Job] = []

    def save() -> None:
        report["notebooks"] = [{"recipe": j.recipe, "notebook": j.notebook.name, "status": j.status,
                                "seconds": j.seconds, "error": j.error, "peak_memory": j.peak,
                                "parameters": {k: v for k, v in j.parameters.items() if k not in ("RUN_DIR",)}}
                               for j in jobs]
        report["elapsed_s"] = round(time.monotonic() - t0, 1)
        (out / "gpu_rehearsal.json").write_text(json.dumps(report, indent=2, default=str) + "\n")

    log(f"GPU rehearsal: profile {PROFILE}, {steps} steps per training run, {n_parallel} notebooks at a time, "
        f"budget {budget_s:.0f} s; work folder {work}; results in {out}")
    import torch  # torch is the machine's and stays; transformers may be replaced below, so it is not imported yet

    if not torch.cuda.is_available():
        log("no CUDA device: the full rehearsal needs one (use --dry-run on this machine)")
        save()
        return 2
    report["device"] = device_facts()
    log(f"device: {report['device']}")
    # 1. wheels
    report["install"] = install_wheels(wheels, log)
    install = report["install"]
    log(f"install: {install['status']} in {install.get('seconds')} s" + (f" ({install['error']})" if install.get("error") else ""))
    save()
    if install["status"] == "fail":
        return 1
    # 2. the model
    start = time.perf_counter()
    real = real_model_path()
    model = real or str(build_random_model(work / "model-random"))
    report["model"] = {"path": model, "weights": "real (offline cache)" if real else "RANDOM (from config, seed 0)",
                       "seconds": round(time.perf_counter() - start, 1)}
    log(f"model: {report['model']}")
    save()
    env = _base_env(work)
    # 3. gpu_check alone (its timings would suffer from company), then the notebooks beside pytest -m gpu
    report["gpu_check"] = run_step([sys.executable, "-m", "benchmarks.gpu_check", "--out", str(out)], log,
                                   min(240.0, deadline - time.monotonic() - 120), env, "gpu_check")
    save()
    tree = ProcessTree()
    sampler = MemorySampler(lambda pid: tree.root_of(pid, {j.pid for j in list(jobs) if j.pid}))
    sampler.start()
    pytest_out = work / "logs" / "pytest_gpu.log"
    pytest_out.parent.mkdir(parents=True, exist_ok=True)
    with pytest_out.open("w") as handle:
        pytest_proc = subprocess.Popen([sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-o",
                                        "addopts=-p no:cacheprovider", "tests"], cwd=ROOT, env=env, stdout=handle,
                                       stderr=subprocess.STDOUT, start_new_session=True)
    pytest_start = time.perf_counter()
    jobs.extend(plan_jobs(ROOT / "solutions", steps, work / "runs", model))
    try:
        run_jobs(jobs, work, deadline, n_parallel, log, save)
    finally:
        sampler.stop()
    try:
        code = pytest_proc.wait(timeout=max(1.0, deadline + 30 - time.monotonic()))
    except subprocess.TimeoutExpired:
        _kill(pytest_proc)
        code = None
    text = _tail(pytest_out, 4000)
    log("pytest -m gpu:\n" + text)
    report["pytest_gpu"] = {"exit_code": code, "seconds": round(time.perf_counter() - pytest_start, 1),
                            "status": {0: "ok", 5: "no tests are marked gpu"}.get(code, "timeout" if code is None else "failed"),
                            "last_line": (text.strip().splitlines() or [""])[-1]}
    report["memory_note"] = attribute_memory(jobs, sampler) + (f" (sampler: {sampler.error})" if sampler.error else "")
    for job in jobs:
        for key, cause in KNOWN_CAUSES.items():
            if job.status == "failed" and key in job.error:
                job.error += f" [{cause}]"
    # 4. what comes back: executed notebooks, metrics and plots (not checkpoints), at most 15 MiB
    archive = out / "executed.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for recipe in RECIPES:
            for sub in ("executed", "metrics", "plots"):
                folder = work / "runs" / recipe / sub
                if folder.is_dir():
                    tar.add(folder, arcname=f"{recipe}/{sub}")
    if archive.stat().st_size > 15 * 2**20:
        archive.unlink()
        report["archive"] = "executed.tar.gz was over 15 MiB and was dropped"
    save()
    failed = [j for j in jobs if j.status != "ok"]
    log("\n" + summary_table(jobs))
    log(f"gpu_check: {report['gpu_check']['status']} ({report['gpu_check']['seconds']} s); pytest -m gpu: "
        f"{report['pytest_gpu']['status']}; memory: {report['memory_note']}")
    log(f"{len(jobs) - len(failed)} of {len(jobs)} notebook runs finished; total {time.monotonic() - t0:.0f} s "
        f"(budget {budget_s:.0f} s); wrote {out / 'gpu_rehearsal.json'}")
    return 1 if failed or report["gpu_check"]["status"] != "ok" else 0
