"""The wheels the rehearsal carries to an offline GPU machine: which (the lock's versions), checked, gathered, installed.

>>> mib(2 * 1024**2)
2.0
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

from tools.lock import canonical, read_lock
from tools.gpu_rehearsal.common import ROOT, WHEELS_DIR, WHEELS_LIMIT_MIB


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
